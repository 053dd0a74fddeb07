/**
 * The upgrade's locks: one `planet upgrade` per host (a file in the data dir), and one host of the
 * cluster at a time (the lock the agents keep in etcd).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { agentSocket, ask } from "../agent/client.ts";
import { pidAlive } from "../bubble/state.ts";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { poll } from "../util.ts";
import { upgradeDir } from "./journal.ts";

const log = logger("upgrade");

/**
 * One `planet upgrade` per host at a time: `<data-dir>/upgrade/lock` is created exclusively with our
 * PID (a lock whose process is gone is taken over) and removed when this process exits.
 */
export function lockHost(dataDir: string): void {
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
