/**
 * `planet upgrade` on one host: preflight → stage → (plugins' `before`: drain…) → stop → save the
 * volumes a rollback restores → switch slots → start → health gate → (plugins' `after`: uncordon…)
 * → commit. A failed start or gate rolls back by itself: previous slot, volumes as they were, the
 * old bubble started again. Each phase is journaled first, so a killed upgrade converges when run
 * again (`--resume`): to the old image before the switch, through the gate after it.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CheckStatus } from "../agent/checks.ts";
import { agentSocket, ask } from "../agent/client.ts";
import { stop } from "../box/box.ts";
import { execRun } from "../box/exec.ts";
import { boxId } from "../box/prepare.ts";
import { pidAlive, readState } from "../box/state.ts";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { type Manifest, manifestDigest, readManifest } from "../manifest.ts";
import { run, runOk, selfCommand } from "../proc.ts";
import { freeBytes, poll } from "../util.ts";
import { archiveJournal, ended, type Journal, readJournal, upgradeDir, writeJournal } from "./journal.ts";
import { checkSkew } from "./skew.ts";
import {
  bubbleRoot,
  imageBytes,
  imageSource,
  installSlot,
  listSlots,
  pointer,
  pruneSlots,
  type Slot,
  setPointer,
  slotOfRootfs,
} from "./slots.ts";

const log = logger("upgrade");

export interface UpgradeOptions {
  /** Image to move to; not needed with `resume`. */
  image?: string;
  /** Host folder of the data and slots (default: the running bubble's, else /var/lib/planet/<id>). */
  dataDir?: string;
  clusterId: string;
  netns?: string;
  /** Seconds the new bubble has to pass its checks. */
  gateTimeout: number;
  /** Seconds `planet start` waits for systemd. */
  readyTimeout: number;
  /** Admin kubeconfig for the plugins' steps (drain) on hosts that hold none. */
  kubeconfig?: string;
  resume?: boolean;
  /** The cluster's upgrade lock is held by this owner already (a roll): take it as that owner, leave it held. */
  lockOwner?: string;
}

/** Where a bubble's data dir is: its state says, else the default. */
function dataDirOf(clusterId: string, netns?: string): string {
  const st = readState(boxId(clusterId, netns));
  return st?.dataDir ?? `/var/lib/planet/${boxId(clusterId, netns).replace(/^planet-/, "")}`;
}

/** The manifest of an image to install and its digest, read without unpacking it. */
async function candidateManifest(image: string): Promise<{ manifest: Manifest; digest: string }> {
  const src = imageSource(image);
  if (src.kind === "rootfs") {
    const m = readManifest(src.path);
    if (!m) throw new PlanetError("NOT_AN_IMAGE", `${image} is not a planet image`);
    return m;
  }
  const res = await run(["tar", "-xOf", src.path, "planet.json"]);
  try {
    return { manifest: JSON.parse(res.stdout) as Manifest, digest: manifestDigest(res.stdout) };
  } catch {
    throw new PlanetError("NOT_AN_IMAGE", `${image} is not a planet image (no planet.json in it)`);
  }
}

const critical = (checks: CheckStatus[]) => checks.filter((c) => c.severity !== "warning");

/**
 * The running bubble's critical checks that are not ok, or (with `since`) not probed since then, or
 * (with `redSince`) red at any of their last probes since then — each with what it said (agent
 * unreachable → one entry).
 */
async function failingChecks(rootfs: string, since = 0, redSince = 0): Promise<string[]> {
  try {
    const checks = critical(await ask<CheckStatus[]>(agentSocket(rootfs), "/checks"));
    // A green older than `since` is no evidence: the host may have changed since it was probed.
    const flapped = (c: CheckStatus) => !!redSince && c.results.some((r) => !r.ok && Date.parse(r.at) >= redSince);
    const bad = checks.filter((c) => c.state !== "ok" || Date.parse(c.results[0]?.at ?? "") < since || flapped(c));
    return checks.length
      ? bad.map(
          (c) =>
            `${c.name} (${c.state !== "ok" ? (c.results[0]?.error ?? c.state) : flapped(c) ? "red at a probe since the window began" : "not probed again yet"})`,
        )
      : ["no checks yet"];
  } catch (e) {
    return [`agent: ${(e as Error).message}`];
  }
}

/** Where the admin kubeconfig given with --kubeconfig is, inside the bubble, while its steps run. */
const STEP_KUBECONFIG = "/var/lib/planet/upgrade.kubeconfig";

/**
 * Runs the plugins' steps of one kind in the running bubble; the first that fails throws. Steps
 * get PLANET_UPGRADE_KUBECONFIG when the admin's kubeconfig was given.
 */
async function runSteps(rootfs: string, manifest: Manifest, kind: "before" | "after", kubeconfig?: string) {
  const inView = join(bubbleRoot(rootfs), STEP_KUBECONFIG);
  if (kubeconfig) writeFileSync(inView, readFileSync(kubeconfig), { mode: 0o600 });
  try {
    for (const p of manifest.plugins)
      for (const cmd of p.upgrade?.[kind] ?? []) {
        log.info(`${kind} (${p.name}): ${cmd.join(" ")}`);
        const res = await execRun(rootfs, cmd, kubeconfig ? { PLANET_UPGRADE_KUBECONFIG: STEP_KUBECONFIG } : {});
        for (const line of `${res.stdout}${res.stderr}`.trim().split("\n").filter(Boolean)) log.info(`  ${line}`);
        if (res.exitCode !== 0)
          throw new PlanetError(
            "UPGRADE_STEP_FAILED",
            `${p.name}'s ${kind}-upgrade step ${cmd.join(" ")} exited ${res.exitCode}: ${res.stderr.trim().split("\n").at(-1) ?? ""}`,
          );
      }
  } finally {
    rmSync(inView, { force: true });
  }
}

/** Volumes the plugins want restored on rollback, and whether it is safe here (their `if`). */
async function restorePlan(rootfs: string, manifest: Manifest): Promise<{ volumes: string[]; safe: boolean }> {
  const volumes: string[] = [];
  let safe = true;
  for (const p of manifest.plugins) {
    const r = p.upgrade?.restore;
    if (!r) continue;
    if (r.if && (await execRun(rootfs, r.if)).exitCode !== 0) {
      log.info(`${p.name}: its volumes ${r.volumes.join(", ")} are not restored on rollback (${r.if.join(" ")} said no)`);
      safe = false;
      continue;
    }
    volumes.push(...r.volumes);
  }
  return { volumes, safe };
}

const savedDir = (dataDir: string) => join(upgradeDir(dataDir), "saved");

async function saveVolumes(dataDir: string, volumes: string[]): Promise<void> {
  const dir = savedDir(dataDir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const v of volumes)
    if (existsSync(join(dataDir, v)))
      await runOk(["cp", "-a", "--reflink=auto", join(dataDir, v), join(dir, v)], { phase: "upgrade" });
}

async function restoreVolumes(dataDir: string, volumes: string[]): Promise<void> {
  for (const v of volumes) {
    const saved = join(savedDir(dataDir), v);
    if (!existsSync(saved)) continue;
    const live = join(dataDir, v);
    const aside = `${live}.rollback-${process.pid}`;
    // The saved copy is copied again, so a kill mid-restore leaves it for the next try.
    await runOk(["cp", "-a", "--reflink=auto", saved, `${aside}.new`], { phase: "upgrade" });
    if (existsSync(live)) renameSync(live, aside);
    renameSync(`${aside}.new`, live);
    rmSync(aside, { recursive: true, force: true });
    log.info(`restored volume ${v} as it was before the upgrade`);
  }
}

/** `planet start --detach` of `slot` with the bubble's own flags. */
async function startSlot(slot: Slot, j: Journal, readyTimeout: number): Promise<void> {
  const res = await run([
    ...selfCommand(),
    "start",
    "--rootfs",
    slot.rootfs,
    ...j.args,
    "--ready-timeout",
    String(readyTimeout),
    "--detach",
  ]);
  if (res.exitCode !== 0) {
    const why =
      res.stderr
        .trim()
        .split("\n")
        .filter((l) => !/^\s*$/.test(l))
        .at(-1) ?? `exit ${res.exitCode}`;
    throw new PlanetError("BOOT_FAILED", `${slot.info.name} did not start: ${why}`);
  }
}

function running(box: string): boolean {
  const st = readState(box);
  return !!st && pidAlive(st.pid) && st.phase === "ready";
}

async function stopIfRunning(j: Journal): Promise<void> {
  const st = readState(j.box);
  if (st) await stop(st.rootfs, 60);
}

/** How long every critical check must stay green, with no unit restarting, before the gate passes. */
const GATE_WINDOW_MS = Number(process.env.PLANET_GATE_WINDOW_MS ?? 15_000);
/** Restarts of one unit while the gate watches that make it a crash loop: the gate fails at once. */
const CRASH_LOOP_RESTARTS = 2;

/** The image's service units and how often systemd restarted each (`NRestarts`), in the running bubble. */
async function unitRestarts(rootfs: string): Promise<Map<string, number>> {
  const units = [...new Set(Object.values(readManifest(rootfs)?.manifest.units ?? {}).flat())].filter((u) =>
    u.endsWith(".service"),
  );
  const out = new Map<string, number>();
  if (!units.length) return out;
  const res = await execRun(rootfs, ["systemctl", "show", "--property=Id,NRestarts", ...units]).catch(() => null);
  for (const block of (res?.stdout ?? "").split("\n\n")) {
    const id = /^Id=(.+)$/m.exec(block)?.[1];
    const n = Number(/^NRestarts=(\d+)$/m.exec(block)?.[1] ?? Number.NaN);
    if (id && Number.isFinite(n)) out.set(id, n);
  }
  return out;
}

/**
 * Watches the new bubble until every critical check has stayed green through a whole window
 * (`GATE_WINDOW_MS`, each check probed again within it) with no unit restarting: a check that caught a
 * crash-looping unit in a green instant does not pass it. A unit systemd restarts during the window
 * starts the window again; one restarted `CRASH_LOOP_RESTARTS` times fails the gate at once. Fails too
 * when the bubble dies, or at the deadline.
 */
async function gate(j: Journal, slot: Slot, seconds: number): Promise<string | null> {
  const end = Date.now() + seconds * 1000;
  const base = await unitRestarts(slot.rootfs);
  let last = base;
  let failing: string[] = [];
  let greenSince = 0;
  while (Date.now() < end) {
    const st = readState(j.box);
    if (!st || !pidAlive(st.pid)) return "the new bubble stopped while its checks ran";
    const now = await unitRestarts(slot.rootfs);
    const looping = [...now].filter(([u, n]) => n - (base.get(u) ?? n) >= CRASH_LOOP_RESTARTS);
    if (looping.length)
      return `crash-looping: ${looping.map(([u, n]) => `${u} restarted ${n - (base.get(u) ?? 0)} times`).join(", ")} while the gate watched`;
    const restarted = [...now].filter(([u, n]) => n > (last.get(u) ?? n)).map(([u]) => `${u} restarted`);
    last = now;
    // Red now, or red at any probe since the window began: the window starts again.
    failing = [...restarted, ...(await failingChecks(slot.rootfs, 0, greenSince))];
    if (failing.length) greenSince = 0;
    else if (!greenSince) greenSince = Date.now();
    // The window is whole once it lasted and every check was probed again inside it.
    else if (Date.now() - greenSince >= GATE_WINDOW_MS && !(await failingChecks(slot.rootfs, greenSince)).length) return null;
    await Bun.sleep(1000);
  }
  return `checks not passing after ${seconds}s: ${failing.slice(0, 4).join("; ")}`;
}

function slotByName(dataDir: string, name: string | undefined | null): Slot | null {
  return name ? (listSlots(dataDir).find((s) => s.info.name === name) ?? null) : null;
}

/** Back to the old image: stop the new one, put the volumes back, point `current` at the old slot, start it. */
async function rollback(j: Journal, o: UpgradeOptions, reason: string): Promise<never> {
  log.warn(`rolling back: ${reason}`);
  j.reason = reason;
  writeJournal(j, "rolling-back");
  const from = slotByName(j.dataDir, j.from);
  if (!from) throw new PlanetError("UPGRADE_FAILED", `cannot roll back: slot ${j.from} is gone`);
  const cur = readState(j.box);
  if (cur && slotOfRootfs(cur.rootfs)?.info.name !== j.from) await stop(cur.rootfs, 60);
  const touched = j.history.some((h) => h.phase === "switched");
  if (touched && j.restore.volumes.length) await restoreVolumes(j.dataDir, j.restore.volumes);
  setPointer(j.dataDir, "current", from);
  setPointer(j.dataDir, "previous", slotByName(j.dataDir, j.previousBefore));
  if (!running(j.box)) await startSlot(from, j, o.readyTimeout);
  const still = await gate(j, from, o.gateTimeout);
  if (still) log.warn(`the old image is back but not healthy yet: ${still}`);
  await runSteps(from.rootfs, readManifest(from.rootfs)?.manifest as Manifest, "after", o.kubeconfig).catch((e) =>
    log.warn((e as Error).message),
  );
  writeJournal(j, "rolled-back");
  await finish(j);
  throw new PlanetError("UPGRADE_ROLLED_BACK", `upgrade to ${j.to ?? o.image} rolled back: ${reason}`);
}

/**
 * Takes the cluster's upgrade lock through the agent of the bubble at `rootfs`. False when that
 * agent keeps none (an image older than the lock, or a node, whose agent holds no etcd credential):
 * the upgrade goes on without one, said aloud.
 */
export async function takeClusterLock(rootfs: string, owner: string, what: string): Promise<boolean> {
  try {
    await ask(agentSocket(rootfs), "/upgrade/lock", "POST", { owner, what });
    return true;
  } catch (e) {
    if (!(e instanceof PlanetError && e.code === "NOT_FOUND")) throw e;
    log.warn(`the running bubble's agent keeps no cluster upgrade lock (${e.message}): upgrading without it`);
    return false;
  }
}

/**
 * Releases the cluster's upgrade lock held by `owner` (or whatever holds it, with `force`) through
 * the agent of the bubble at `rootfs`, waiting up to `waitMs` for an agent that is still starting.
 */
export async function releaseClusterLock(
  rootfs: string,
  owner: string | null,
  waitMs = 0,
): Promise<{ owner: string; what: string } | null> {
  const query = owner ? `owner=${encodeURIComponent(owner)}` : "force=1";
  const { value, error } = await poll(
    () => ask<{ released: { owner: string; what: string } | null }>(agentSocket(rootfs), `/upgrade/lock?${query}`, "DELETE"),
    waitMs,
    2000,
  );
  if (!value) throw error;
  return value.released;
}

/** Ends the journal: into the history; the saved volumes and the slots no pointer names are dropped. */
async function finish(j: Journal): Promise<void> {
  j.endedAt = new Date().toISOString();
  writeJournal(j);
  archiveJournal(j);
  rmSync(savedDir(j.dataDir), { recursive: true, force: true });
  const pruned = pruneSlots(j.dataDir);
  if (pruned.length) log.info(`removed slots no longer needed: ${pruned.join(", ")}`);
  if (!j.lock?.own) return;
  const st = readState(j.box);
  try {
    if (!st) throw new Error("the bubble is not running");
    await releaseClusterLock(st.rootfs, j.lock.owner, 120_000);
  } catch (e) {
    log.warn(
      `the cluster's upgrade lock stays held (${(e as Error).message}): release it with planet upgrade --unlock --lock-owner ${j.lock.owner}`,
    );
  }
}

/**
 * One `planet upgrade` per host at a time: `<data-dir>/upgrade/lock` is created exclusively with our
 * PID (a lock whose process is gone is taken over) and removed when this process exits.
 */
function lockHost(dataDir: string): void {
  const file = join(upgradeDir(dataDir), "lock");
  mkdirSync(upgradeDir(dataDir), { recursive: true });
  for (let i = 0; i < 2; i++)
    try {
      writeFileSync(file, String(process.pid), { flag: "wx" });
      process.on("exit", () => rmSync(file, { force: true }));
      return;
    } catch {
      const pid = Number(readFileSync(file, "utf8"));
      if (pid && pid !== process.pid && pidAlive(pid))
        throw new PlanetError("UPGRADE_RUNNING", `an upgrade is already running on this host (pid ${pid})`);
      rmSync(file, { force: true });
    }
  throw new PlanetError("UPGRADE_RUNNING", `cannot take ${file}: another upgrade is starting`);
}

/** Upgrades this host's bubble to `o.image`, or resumes the journaled upgrade. Returns what changed. */
export async function upgrade(o: UpgradeOptions): Promise<Journal> {
  const box = boxId(o.clusterId, o.netns);
  const dataDir = o.dataDir ?? dataDirOf(o.clusterId, o.netns);
  lockHost(dataDir);
  const open = readJournal(dataDir);
  if (open && !ended(open)) {
    if (pidAlive(open.pid) && open.pid !== process.pid)
      throw new PlanetError(
        "UPGRADE_RUNNING",
        `an upgrade is already running on this host (pid ${open.pid}, phase ${open.phase})`,
      );
    if (!o.resume)
      throw new PlanetError(
        "UPGRADE_RUNNING",
        `an upgrade to ${open.to ?? open.image} stopped at phase ${open.phase}: finish it with planet upgrade --resume`,
      );
    open.pid = process.pid;
    return resume(open, o);
  }
  if (o.resume) throw new PlanetError("UPGRADE_REFUSED", "there is no unfinished upgrade on this host to resume");
  if (!o.image)
    throw new PlanetError("BAD_FLAG", "planet upgrade needs the image to move to (a build folder, rootfs or planet.tar.gz)");
  if (o.kubeconfig && !existsSync(o.kubeconfig))
    throw new PlanetError("BAD_KUBECONFIG", `--kubeconfig ${o.kubeconfig} does not exist`);

  // Preflight: nothing is written or stopped until every check passed.
  const state = readState(box);
  if (!state || !pidAlive(state.pid))
    throw new PlanetError("NOT_RUNNING", `bubble ${box} is not running: start it first (planet start --data-dir ${dataDir})`);
  const from = slotOfRootfs(state.rootfs);
  if (!from)
    throw new PlanetError(
      "NOT_A_SLOT",
      `bubble ${box} runs ${state.rootfs}, not an installed image: install it (planet install ${state.rootfs} --data-dir ${dataDir}) and start it from its slot (planet start --data-dir ${dataDir})`,
    );
  if (!state.args)
    throw new PlanetError("NOT_A_SLOT", `bubble ${box} was started without its flags on record: restart it with this planet`);
  const fromManifest = readManifest(from.rootfs)?.manifest as Manifest;
  const candidate = await candidateManifest(o.image);
  if (candidate.digest === from.info.digest)
    throw new PlanetError("UPGRADE_REFUSED", `${o.image} is the image this host runs (${from.info.name})`);
  const changes = checkSkew(fromManifest, candidate.manifest);
  const need = (await imageBytes(o.image)) + 512 * 1024 * 1024;
  const free = freeBytes(dataDir);
  if (free < need)
    throw new PlanetError(
      "NO_SPACE",
      `${dataDir} has ${Math.round(free / 2 ** 20)} MiB free, the upgrade needs ${Math.round(need / 2 ** 20)} MiB (the image and room for saved volumes)`,
    );
  // A check can flap on a loaded host: green once within a minute will do.
  let failing: string[] = [];
  const asked = Date.now();
  await poll(
    async () => {
      failing = await failingChecks(from.rootfs, asked);
      return failing.length === 0;
    },
    60_000,
    2000,
  );
  if (failing.length)
    throw new PlanetError(
      "CLUSTER_UNHEALTHY",
      `this host is not healthy, so nothing was stopped: ${failing.slice(0, 4).join("; ")}`,
    );

  // The cluster's lock last: a refusal before it leaves nothing to release.
  const id = new Date().toISOString().replace(/[:.]/g, "-");
  const owner = o.lockOwner ?? `upgrade-${id}@${box}`;
  const what = `planet upgrade of ${box} to ${candidate.manifest.target} ${candidate.manifest.version}`;
  const lock = (await takeClusterLock(from.rootfs, owner, what)) ? { owner, own: !o.lockOwner } : undefined;
  const j: Journal = writeJournal(
    {
      id,
      pid: process.pid,
      dataDir,
      box,
      args: state.args,
      image: imageSource(o.image).path,
      from: from.info.name,
      previousBefore: pointer(dataDir, "previous")?.info.name ?? null,
      restore: { volumes: [], safe: true },
      changes,
      lock,
      phase: "preflight",
      history: [],
      startedAt: new Date().toISOString(),
    },
    "preflight",
  );
  log.start(`upgrading ${box}: ${changes.join(", ") || "same versions, another build"}`);
  try {
    const { slot: to } = await installSlot(dataDir, o.image);
    j.to = to.info.name;
    writeJournal(j, "staged");
  } catch (e) {
    if (readJournal(dataDir) && !ended(j)) {
      j.reason = (e as Error).message;
      writeJournal(j, "rolled-back");
      await finish(j);
    }
    throw e;
  }
  try {
    await runSteps(from.rootfs, fromManifest, "before", o.kubeconfig);
  } catch (e) {
    return rollback(j, o, (e as Error).message);
  }
  j.restore = await restorePlan(from.rootfs, fromManifest);
  writeJournal(j, "drained");
  return resume(j, o);
}

/** Carries the journaled upgrade on from its phase. */
async function resume(j: Journal, o: UpgradeOptions): Promise<Journal> {
  const from = slotByName(j.dataDir, j.from);
  const to = slotByName(j.dataDir, j.to);
  if (!from) throw new PlanetError("UPGRADE_FAILED", `slot ${j.from} of the running image is gone; look at ${j.dataDir}/slots`);
  const at = (p: Journal["phase"]) => j.phase === p;
  try {
    if (at("preflight") || at("staged")) {
      // Killed before anything stopped: the old bubble still runs, undo the drain if it began.
      return await rollback(j, o, `the upgrade was interrupted at phase ${j.phase}`);
    }
    if (at("rolling-back")) return await rollback(j, o, j.reason ?? "resumed a rollback");
    if (!to) return await rollback(j, o, `slot ${j.to} of the new image is gone`);
    if (at("drained")) {
      await stopIfRunning(j);
      writeJournal(j, "stopped");
    }
    if (at("stopped")) {
      await saveVolumes(j.dataDir, j.restore.volumes);
      writeJournal(j, "saved");
    }
    if (at("saved")) {
      setPointer(j.dataDir, "previous", from);
      setPointer(j.dataDir, "current", to);
      writeJournal(j, "switched");
    }
    if (at("switched")) {
      const st = readState(j.box);
      if (st && slotOfRootfs(st.rootfs)?.info.name !== to.info.name) await stop(st.rootfs, 60);
      if (!running(j.box)) await startSlot(to, j, o.readyTimeout);
      writeJournal(j, "started");
    }
    if (at("started")) {
      // A test makes one host's gate fail (a cluster roll halting on its second master).
      const why =
        process.env.PLANET_FAILPOINT === "upgrade-gate"
          ? "failpoint upgrade-gate: the gate was made to fail"
          : await gate(j, to, o.gateTimeout);
      if (why) return await rollback(j, o, why);
      writeJournal(j, "healthy");
    }
    if (at("healthy")) {
      await runSteps(to.rootfs, readManifest(to.rootfs)?.manifest as Manifest, "after", o.kubeconfig);
      writeJournal(j, "committed");
      await finish(j);
      log.success(`${j.box} now runs ${to.info.name}`);
    }
    return j;
  } catch (e) {
    if (e instanceof PlanetError && (e.code === "UPGRADE_ROLLED_BACK" || e.code === "UPGRADE_FAILED")) throw e;
    return rollback(j, o, (e as Error).message);
  }
}

/** `planet install`: an image into a slot; the first one becomes `current`. */
export async function install(dataDir: string, image: string): Promise<{ slot: Slot; current: boolean }> {
  const { slot } = await installSlot(dataDir, image);
  if (!pointer(dataDir, "current")) {
    setPointer(dataDir, "current", slot);
    return { slot, current: true };
  }
  return { slot, current: false };
}
