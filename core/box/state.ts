import { existsSync, mkdirSync, readdirSync, rmdirSync } from "node:fs";
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
export interface BoxState {
  id: string;
  rootfs: string;
  clusterId: string;
  /** PID of the `planet start` process that owns the bubble. */
  pid: number;
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

export function boxDir(id: string): string {
  return join(STATE_ROOT, id);
}

/**
 * The state `planet start` wrote for bubble `id`, or null when there is none. A file that does not
 * parse as one is an error, never "no state": its bubble may be alive, and would be killed as an orphan.
 */
export function readState(id: string): BoxState | null {
  const file = join(boxDir(id), "start.json");
  let s: Partial<BoxState> | null;
  try {
    s = readJsonOrNull<Partial<BoxState>>(file);
  } catch {
    // Not JSON: refused below like any other file that is not a bubble state.
    s = {};
  }
  if (!s) return null;
  if (typeof s.id !== "string" || typeof s.rootfs !== "string" || typeof s.pid !== "number" || typeof s.phase !== "string")
    throw new PlanetError(
      "CORRUPT_STATE",
      `${file} is not a bubble state: see whether its planet start still runs (ps aux | grep "planet start"), stop that by hand, then remove ${boxDir(id)}`,
    );
  return s as BoxState;
}

export function writeState(state: BoxState): void {
  const dir = boxDir(state.id);
  mkdirSync(dir, { recursive: true });
  writeDurably(join(dir, "start.json"), `${JSON.stringify(state, null, 2)}\n`);
}

/** Every bubble this host knows of. */
export function listStates(): BoxState[] {
  if (!existsSync(STATE_ROOT)) return [];
  return readdirSync(STATE_ROOT)
    .filter((d) => d !== "runc" && !d.endsWith(".log") && !d.endsWith(".json"))
    .flatMap((d) => {
      try {
        return readState(d) ?? [];
      } catch {
        return []; // another bubble's broken state is for its own start to report
      }
    });
}

export function findByRootfs(rootfs: string): BoxState | undefined {
  return listStates().find((s) => s.rootfs === rootfs);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

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
