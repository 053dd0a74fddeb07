import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { PlanetError } from "../errors.ts";
import { run } from "../proc.ts";
import { readJsonOrNull, writeDurably } from "../util.ts";

/** Host-side state of running bubbles; a tmpfs, so a host reboot forgets them. */
export const STATE_ROOT = process.env.PLANET_STATE_DIR ?? "/run/planet";
/** runc's own state, kept apart from the host's default /run/runc. */
export const RUNC_ROOT = join(STATE_ROOT, "runc");

export type Phase = "booting" | "ready" | "stopping" | "failed";

/** What `planet start` records about the bubble it runs (`<STATE_ROOT>/<id>/start.json`). */
export interface BubbleState {
  id: string;
  rootfs: string;
  clusterId: string;
  /** PID of the `planet start` process that owns the bubble. */
  pid: number;
  /**
   * That process's start time (the kernel's, /proc/<pid>/stat): after a crash the PID may be another
   * process's, which is never taken for the owner nor signalled.
   */
  pidStart?: string;
  phase: Phase;
  startedAt: string;
  readyAt?: string;
  /** Seconds from `runc run` to READY=1. */
  bootSeconds?: number;
  netns?: string;
  /** PID of the socat receiving systemd's READY=1. */
  notifyPid?: number;
  /** The flags `planet start` was given, less --rootfs and --detach: how `planet upgrade` starts it again. */
  args?: string[];
  /** Host folder of the data volumes (and of the slots, the upgrade journal). */
  dataDir?: string;
  error?: string;
}

/**
 * Host sysctls as they were before the first running bubble started, shared by every bubble on
 * the host and restored when the last one stops (`<STATE_ROOT>/host-sysctls.json`).
 */
export const HOST_SYSCTLS_FILE = join(STATE_ROOT, "host-sysctls.json");

/** Output of a `planet start --detach`ed bubble; removed by `planet stop`. */
export function detachLog(id: string): string {
  return join(STATE_ROOT, `${id}.log`);
}

export function bubbleDir(id: string): string {
  return join(STATE_ROOT, id);
}

/**
 * The state `planet start` wrote for bubble `id`, or null when there is none. A file that does not
 * parse as one is an error, never "no state": its bubble may be alive, and would be killed as an orphan.
 */
export function readState(id: string): BubbleState | null {
  const file = join(bubbleDir(id), "start.json");
  let s: Partial<BubbleState> | null;
  try {
    s = readJsonOrNull<Partial<BubbleState>>(file);
  } catch {
    // Not JSON: refused below like any other file that is not a bubble state.
    s = {};
  }
  if (!s) return null;
  if (typeof s.id !== "string" || typeof s.rootfs !== "string" || typeof s.pid !== "number" || typeof s.phase !== "string")
    throw new PlanetError(
      "CORRUPT_STATE",
      `${file} is not a bubble state: see whether its planet start still runs (ps aux | grep "planet start"), stop that by hand, then remove ${bubbleDir(id)}`,
    );
  return s as BubbleState;
}

export function writeState(state: BubbleState): void {
  const dir = bubbleDir(state.id);
  mkdirSync(dir, { recursive: true });
  writeDurably(join(dir, "start.json"), `${JSON.stringify(state, null, 2)}\n`);
}

/** Every bubble this host knows of. */
export function listStates(): BubbleState[] {
  if (!existsSync(STATE_ROOT)) return [];
  return readdirSync(STATE_ROOT)
    .filter((d) => d !== "runc" && !d.endsWith(".log") && !d.endsWith(".json") && !d.endsWith(".lock"))
    .flatMap((d) => {
      try {
        return readState(d) ?? [];
      } catch {
        return []; // another bubble's broken state is for its own start to report
      }
    });
}

export function findByRootfs(rootfs: string): BubbleState | undefined {
  return listStates().find((s) => s.rootfs === rootfs);
}

export function pidAlive(pid: number, start?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  // Given the start time it had, the same process: not a later one that got its PID.
  return start === undefined || procStart(pid) === start;
}

/** When a process started (clock ticks after boot, field 22 of /proc/<pid>/stat), or null when it is gone. */
export function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may hold spaces and parentheses) start at field 3.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the `planet start` that owns a bubble still runs (its PID, and the process that had it). */
export const ownerAlive = (st: Pick<BubbleState, "pid" | "pidStart">): boolean => pidAlive(st.pid, st.pidStart);

/** runc's view of a container: its status, or null when runc does not know it. */
export async function runcStatus(id: string): Promise<{ status: string; pid: number } | null> {
  const res = await run(["runc", "--root", RUNC_ROOT, "state", id]);
  if (res.exitCode !== 0) return null;
  const s = JSON.parse(res.stdout) as { status: string; pid: number };
  return { status: s.status, pid: s.pid };
}

/** Removes the runc root and the state root once no bubble uses them. */
export function pruneStateRoot(): void {
  for (const dir of [RUNC_ROOT, STATE_ROOT])
    try {
      rmdirSync(dir);
    } catch {
      // not empty (another bubble) or already gone
    }
}

/**
 * Runs `work` holding bubble `id`'s cleanup lock (`<STATE_ROOT>/<id>.lock`, made with O_EXCL and
 * naming its holder): of two starts that find a crashed bubble, one cleans up, and the other finds
 * the lock held and steps back (`busy`). A lock whose holder died (a PID gone, or another process's
 * now) is stale and taken over.
 */
export async function withBubbleLock<T>(
  id: string,
  work: () => Promise<T>,
  busy: (pid: number) => never,
  root = STATE_ROOT,
): Promise<T> {
  mkdirSync(root, { recursive: true });
  const file = join(root, `${id}.lock`);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, `${process.pid} ${procStart(process.pid) ?? ""}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw e;
      const [pid, start] = (existsSync(file) ? readFileSync(file, "utf8") : "").trim().split(" ");
      if (pid && pidAlive(Number(pid), start || undefined)) busy(Number(pid));
      rmSync(file, { force: true });
    }
  }
  try {
    return await work();
  } finally {
    rmSync(file, { force: true });
  }
}
