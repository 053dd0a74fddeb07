import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { run } from "../proc.ts";
import { poll } from "../util.ts";
import { cgroupMode, removeCgroupTree } from "./cgroups.ts";
import { joinFirst } from "./join.ts";
import { listenNotify } from "./notify.ts";
import { preflightHost, preflightImage, preflightRootfs } from "./preflight.ts";
import { disabledUnits, type Prepared, prepare, type StartOptions, writeRootfs } from "./prepare.ts";
import { mountSlotRoot, slotOfRootfs, unmountSlotRoot } from "./slot-root.ts";
import {
  type BubbleState,
  bubbleDir,
  detachLog,
  findByRootfs,
  listStates,
  ownerAlive,
  pidAlive,
  procStart,
  pruneStateRoot,
  RUNC_ROOT,
  readState,
  runcStatus,
  STATE_ROOT,
  withBubbleLock,
  writeState,
} from "./state.ts";
import { restoreSysctlsIfLast, snapshotSysctls } from "./sysctls.ts";

export { initialCluster, type Member, parseDnsList } from "./flags.ts";
export { bubbleId, prepare, type StartOptions } from "./prepare.ts";

const log = logger("bubble");

/** Removes everything a bubble left on the host: runc state, cgroups, state dir; restores sysctls. */
export async function cleanup(id: string, state: BubbleState | null): Promise<void> {
  const rs = await runcStatus(id);
  if (rs) {
    if (rs.status === "running" || rs.status === "paused") await run(["runc", "--root", RUNC_ROOT, "kill", id, "KILL"]);
    for (let i = 0; i < 50; i++) {
      const res = await run(["runc", "--root", RUNC_ROOT, "delete", "--force", id]);
      if (res.exitCode === 0 || !(await runcStatus(id))) break;
      await Bun.sleep(100);
    }
  }
  removeCgroups(id);
  const slot = state ? slotOfRootfs(state.rootfs) : null;
  if (slot) await unmountSlotRoot(slot);
  // A start killed with -9 may leave its READY=1 listener behind.
  if (state?.notifyPid && pidAlive(state.notifyPid) && /socat/.test(readComm(state.notifyPid)))
    process.kill(state.notifyPid, "SIGKILL");
  restoreSysctlsIfLast(id);
  rmSync(bubbleDir(id), { recursive: true, force: true });
  pruneStateRoot();
}

function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8");
  } catch {
    return "";
  }
}

/** runc deletes the bubble's cgroups; this catches any a crash left behind (deepest first). */
function removeCgroups(id: string): void {
  for (const d of removeCgroupTree(id, cgroupMode())) log.warn(`cgroup ${d} not removed (processes left in it?)`);
}

/** Refuses a second bubble for the same cluster or rootfs; cleans up after a crashed one. */
async function claim(id: string, rootfs: string): Promise<void> {
  const other = findByRootfs(rootfs);
  if (other && other.id !== id && ownerAlive(other))
    throw new PlanetError(
      "ALREADY_RUNNING",
      `${rootfs} already runs as bubble ${other.id} (planet start pid ${other.pid}); stop it first: planet stop`,
    );
  const state = readState(id);
  const rs = await runcStatus(id);
  if (state && ownerAlive(state) && state.pid !== process.pid)
    throw new PlanetError(
      "ALREADY_RUNNING",
      `bubble ${id} is already running (planet start pid ${state.pid}, phase ${state.phase}); stop it first: planet stop`,
    );
  if (!state && !rs) return;
  // Two starts may find the same crashed bubble: one cleans up, under the lock; the other steps back.
  const busy = (pid: number): never => {
    throw new PlanetError(
      "ALREADY_RUNNING",
      `another planet start (pid ${pid}) is cleaning up after bubble ${id}'s crashed one; stop it first: planet stop`,
    );
  };
  await withBubbleLock(
    id,
    async () => {
      // What the other start may have done while this one waited: cleaned up, or started again.
      const now = readState(id);
      if (now && ownerAlive(now) && now.pid !== process.pid) busy(now.pid);
      if (!now && !(await runcStatus(id))) return;
      log.warn(`bubble ${id}: cleaning up after a planet start that died (pid ${now?.pid ?? "unknown"})`);
      await haltOrphan(id, 60);
      await cleanup(id, now);
    },
    busy,
  );
}

/**
 * A bubble whose `planet start` is gone is still halted through systemd (SIGRTMIN+3), so that the
 * units' own cleanup runs — cni0, flannel.1, pod routes and iptables rules go with them — before the
 * host's part is done in its place. Returns whether it had to be killed instead.
 */
async function haltOrphan(id: string, timeoutSec: number): Promise<boolean> {
  if ((await runcStatus(id))?.status !== "running") return false;
  await run(["runc", "--root", RUNC_ROOT, "kill", id, "37"]);
  const halted = await poll(async () => (await runcStatus(id))?.status !== "running", timeoutSec * 1000, 100);
  if (halted.value === true) return false;
  log.warn(`${id} did not halt within ${timeoutSec}s: killing it`);
  return true;
}

/** True once `cond` holds, false after `timeoutMs`. */
async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  return (await poll(cond, timeoutMs, stepMs)).value === true;
}

/** `systemctl is-active` of the role's units, printed like the original's `[OK] unit`. */
async function reportUnits(id: string, p: Prepared): Promise<string[]> {
  const off = disabledUnits(p);
  const units = [...new Set(p.roles.flatMap((r) => p.manifest.units[r]))].filter(
    (u) => !u.endsWith(".timer") && !off.includes(u),
  );
  if (units.length === 0) return [];
  const res = await run(["runc", "--root", RUNC_ROOT, "exec", id, "systemctl", "is-active", ...units]);
  const states = res.stdout.trim().split("\n");
  const failed: string[] = [];
  units.forEach((u, i) => {
    const st = states[i] ?? "unknown";
    const owner = p.manifest.unitOwners[u] ?? "?";
    if (st === "active" || st === "activating") log.info(`[OK] ${u} (${owner}) ${st}`);
    else {
      failed.push(u);
      log.warn(`[${st.toUpperCase()}] ${u} (${owner})`);
    }
  });
  return failed;
}

/**
 * Boots the bubble and stays in the foreground until it halts, like the original: SIGINT/SIGTERM
 * become a clean halt (SIGRTMIN+3 to systemd). Returns the exit code for the CLI.
 */
export async function start(opts: StartOptions): Promise<number> {
  preflightHost();
  preflightRootfs(opts.rootfs);
  const rootfs = realpathSync(opts.rootfs);
  let p = prepare({ ...opts, rootfs });
  try {
    await claim(p.id, rootfs);
    if (opts.join) {
      await joinFirst(p, opts, opts.join, rootfs);
      // The join told this host the cluster's masters (a joining master: etcd's members, itself last).
      p = prepare({ ...opts, rootfs });
    }
    await preflightImage(p, opts);
  } catch (e) {
    pruneStateRoot(); // `runc state` creates its root; a refused start leaves nothing behind
    throw e;
  }
  const dir = bubbleDir(p.id);
  // The state dir is the lock: of two starts racing past claim(), one creates it, the other stops.
  mkdirSync(STATE_ROOT, { recursive: true });
  try {
    mkdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    throw new PlanetError("ALREADY_RUNNING", `another planet start of bubble ${p.id} is under way; stop it first: planet stop`);
  }
  const state: BubbleState = {
    id: p.id,
    rootfs,
    clusterId: opts.clusterId,
    pid: process.pid,
    pidStart: procStart(process.pid) ?? undefined,
    phase: "booting",
    startedAt: new Date().toISOString(),
    netns: opts.netns,
    dataDir: p.dataDir,
    ...(opts.args ? { args: opts.args } : {}),
  };
  writeState(state);
  // Another cluster id on the same rootfs, claimed at the same moment: the later one steps back.
  const first = (o: BubbleState) => o.startedAt < state.startedAt || (o.startedAt === state.startedAt && o.id < p.id);
  const twin = listStates().find((o) => o.rootfs === rootfs && o.id !== p.id && ownerAlive(o) && first(o));
  if (twin) {
    rmSync(dir, { recursive: true, force: true });
    pruneStateRoot();
    throw new PlanetError(
      "ALREADY_RUNNING",
      `${rootfs} is being started as bubble ${twin.id} (pid ${twin.pid}); stop it first: planet stop`,
    );
  }
  snapshotSysctls();
  let runc: ChildProcess | undefined;
  let notify: ChildProcess | undefined;
  try {
    for (const d of p.dataDirs) mkdirSync(d, { recursive: true });
    // A slot is never written: the bubble boots on an overlay of it (see upgrade/slots.ts).
    const slot = slotOfRootfs(rootfs);
    if (slot) p.spec.root.path = await mountSlotRoot(slot);
    writeRootfs(p.spec.root.path, p);
    writeFileSync(join(dir, "config.json"), `${JSON.stringify(p.spec, null, 2)}\n`);

    let ready = false;
    let status = "";
    // systemd writes to it directly (bound into the bubble, see bubbleSpec), for the bubble's whole life.
    mkdirSync(join(dir, "notify"), { recursive: true });
    const sock = join(dir, "notify", "notify.sock");
    notify = listenNotify(sock, (f) => {
      if (f.STATUS && f.STATUS !== status) {
        status = f.STATUS;
        log.debug(`systemd: ${status}`);
      }
      if (f.READY === "1") ready = true;
    });
    if (!(await waitFor(() => existsSync(sock), 5000)))
      throw new PlanetError("NOTIFY_SOCKET", `socat did not create ${sock}`, { phase: "start" });
    state.notifyPid = notify.pid;
    writeState(state);

    const t0 = performance.now();
    log.start(`booting ${p.id}: ${rootfs} as ${p.roles.join("+")}${opts.netns ? ` in network namespace ${opts.netns}` : ""}`);
    const console = openSync(join(dir, "console.log"), "a");
    mkdirSync(RUNC_ROOT, { recursive: true });
    runc = spawn("runc", ["--root", RUNC_ROOT, "run", "--bundle", dir, p.id], {
      detached: true, // its own session: a terminal's Ctrl-C reaches planet, which halts systemd cleanly
      stdio: ["ignore", console, console],
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "NOTIFY_SOCKET")),
    });
    let exited: number | null = null;
    const exitedP = new Promise<number>((resolve) =>
      runc?.on("exit", (code, signal) => {
        exited = code ?? (signal ? 128 : 1);
        resolve(exited);
      }),
    );

    let stopping = false;
    const halt = async (why: string) => {
      if (stopping) {
        log.warn(`${why} again: forcing the bubble down`);
        await run(["runc", "--root", RUNC_ROOT, "kill", p.id, "KILL"]);
        return;
      }
      stopping = true;
      state.phase = "stopping";
      writeState(state);
      log.info(`${why}: halting ${p.id}`);
      await run(["runc", "--root", RUNC_ROOT, "kill", p.id, "37"]); // SIGRTMIN+3 = halt
    };
    const onSignal = (sig: string) => void halt(sig);
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("SIGHUP", () => {});

    const booted = await waitFor(() => ready || exited !== null, opts.readyTimeout * 1000, 10);
    if (exited !== null || !booted) {
      const tail = readFileSync(join(dir, "console.log"), "utf8").trim().split("\n").slice(-3).join(" / ");
      if (!booted) {
        // A clean halt, so the units' stop jobs remove what they put on the host (links, rules); forced after 60 s.
        await halt("boot timeout");
        await Promise.race([exitedP, Bun.sleep(60_000)]);
      }
      throw new PlanetError(
        "BOOT_FAILED",
        booted ? `runc exited ${exited} before systemd was ready: ${tail}` : `systemd not ready after ${opts.readyTimeout}s`,
        { phase: "start" },
      );
    }
    const bootSeconds = Math.round(performance.now() - t0) / 1000;
    const failed = await reportUnits(p.id, p);
    // Logged before the state says ready: `start --detach` returns as soon as it reads that.
    log.success(`${p.id} ready in ${bootSeconds}s${failed.length ? ` (${failed.length} units not active)` : ""}`);
    state.phase = "ready";
    state.readyAt = new Date().toISOString();
    state.bootSeconds = bootSeconds;
    if (failed.length) state.error = `units not active: ${failed.join(", ")}`;
    writeState(state);

    const code = await exitedP;
    log.info(`${p.id} halted (runc exit ${code})`);
    return stopping ? 0 : code === 0 ? 0 : 1;
  } catch (err) {
    state.phase = "failed";
    state.error = err instanceof Error ? err.message : String(err);
    throw err;
  } finally {
    if (runc && runc.exitCode === null) await run(["runc", "--root", RUNC_ROOT, "kill", p.id, "KILL"]);
    notify?.kill();
    await cleanup(p.id, state);
  }
}

/** Finds the bubble booted from `rootfs`. */
export function findBubble(rootfs: string): BubbleState {
  const real = existsSync(rootfs) ? realpathSync(rootfs) : rootfs;
  const state = findByRootfs(real);
  if (!state) throw new PlanetError("NOT_RUNNING", `no bubble runs from ${real} (start it: planet start)`);
  return state;
}

/**
 * Halts the bubble: SIGRTMIN+3 to systemd, waits for `planet start` to finish its cleanup, and
 * forces it down after `timeoutSec`. Afterwards the host holds nothing of the bubble.
 */
export async function stop(rootfs: string, timeoutSec: number): Promise<{ forced: boolean; seconds: number }> {
  const t0 = performance.now();
  const state = findBubble(rootfs);
  const id = state.id;
  let forced = false;
  if (ownerAlive(state)) {
    await run(["runc", "--root", RUNC_ROOT, "kill", id, "37"]);
    const done = await waitFor(() => !ownerAlive(state), timeoutSec * 1000, 50);
    if (!done) {
      forced = true;
      log.warn(`${id} did not halt within ${timeoutSec}s: killing it`);
      await run(["runc", "--root", RUNC_ROOT, "kill", id, "KILL"]);
      if (!(await waitFor(() => !ownerAlive(state), 10_000, 50))) {
        process.kill(state.pid, "SIGKILL");
        await cleanup(id, state);
      }
    }
  } else {
    // planet start is gone (crashed or killed): halted through systemd all the same, then cleaned up here.
    forced = await haltOrphan(id, timeoutSec);
    await cleanup(id, state);
  }
  rmSync(detachLog(id), { force: true });
  pruneStateRoot();
  return { forced, seconds: Math.round(performance.now() - t0) / 1000 };
}
