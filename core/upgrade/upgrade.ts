/**
 * `planet upgrade` on one host: preflight → stage → (plugins' `before`: drain…) → stop → save the
 * volumes a rollback restores → switch slots → start → health gate → (plugins' `after`: uncordon…)
 * → commit. A failed start or gate rolls back by itself: previous slot, volumes as they were, the
 * old bubble started again. Each phase is journaled first, so a killed upgrade converges when run
 * again (`--resume`): to the old image before the switch, through the gate after it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stop } from "../bubble/bubble.ts";
import { execRun } from "../bubble/exec.ts";
import { bubbleId } from "../bubble/prepare.ts";
import { bubbleRoot, type Slot, slotOfRootfs } from "../bubble/slot-root.ts";
import { ownerAlive, pidAlive, readState } from "../bubble/state.ts";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { type Manifest, manifestDigest, readManifest } from "../manifest.ts";
import { run, selfCommand } from "../proc.ts";
import { freeBytes, poll } from "../util.ts";
import { failingChecks, gate } from "./gate.ts";
import { archiveJournal, ended, type Journal, readJournal, writeJournal } from "./journal.ts";
import { lockHost, releaseClusterLock, takeClusterLock } from "./locks.ts";
import { checkSkew } from "./skew.ts";
import { imageBytes, imageSource, installSlot, listSlots, pointer, pruneSlots, setPointer } from "./slots.ts";
import { restorePlan, restoreVolumes, savedDir, saveVolumes } from "./volumes.ts";

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
  const st = readState(bubbleId(clusterId, netns));
  return st?.dataDir ?? `/var/lib/planet/${bubbleId(clusterId, netns).replace(/^planet-/, "")}`;
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
  return !!st && ownerAlive(st) && st.phase === "ready";
}

async function stopIfRunning(j: Journal): Promise<void> {
  const st = readState(j.box);
  if (st) await stop(st.rootfs, 60);
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

/** Upgrades this host's bubble to `o.image`, or resumes the journaled upgrade. Returns what changed. */
export async function upgrade(o: UpgradeOptions): Promise<Journal> {
  const box = bubbleId(o.clusterId, o.netns);
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
  if (!state || !ownerAlive(state))
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
