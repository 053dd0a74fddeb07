/**
 * The volumes an upgrade gives back on rollback: which ones the plugins name (and whether it is safe
 * here), their copy saved before the switch, and that copy put back in place.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { execRun } from "../bubble/exec.ts";
import { logger } from "../log.ts";
import type { Manifest } from "../manifest.ts";
import { runOk } from "../proc.ts";
import { upgradeDir } from "./journal.ts";

const log = logger("upgrade");

/** Volumes the plugins want restored on rollback, and whether it is safe here (their `if`). */
export async function restorePlan(rootfs: string, manifest: Manifest): Promise<{ volumes: string[]; safe: boolean }> {
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

export const savedDir = (dataDir: string) => join(upgradeDir(dataDir), "saved");

export async function saveVolumes(dataDir: string, volumes: string[]): Promise<void> {
  const dir = savedDir(dataDir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const v of volumes)
    if (existsSync(join(dataDir, v)))
      await runOk(["cp", "-a", "--reflink=auto", join(dataDir, v), join(dir, v)], { phase: "upgrade" });
}

export async function restoreVolumes(dataDir: string, volumes: string[]): Promise<void> {
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
