/**
 * A bubble's root when it runs from a slot (an image installed under `<data-dir>/slots/`, see
 * core/upgrade/slots.ts): an overlay whose lower layer is the slot's rootfs, never written, and whose
 * upper layer (`<slot>/upper`) holds what the bubble writes, mounted at `<slot>/root`. The box mounts
 * it at start; the agent's client and exec find the bubble's files through it.
 */
import { existsSync, mkdirSync, readFileSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { PlanetError } from "../errors.ts";
import { run } from "../proc.ts";

/** What `<slot>/slot.json` records about an installed image. */
export interface SlotInfo {
  name: string;
  /** sha256 of the image's manifest file. */
  digest: string;
  version: string;
  commit: string;
  target: string;
  /** Asset name → version, as the manifest lists them. */
  assets: Record<string, string>;
  source: string;
  installedAt: string;
}

export interface Slot {
  /** `<data-dir>/slots/<name>` */
  dir: string;
  rootfs: string;
  info: SlotInfo;
}

/** The slot a rootfs path belongs to (`<slots>/<name>/rootfs`), or null for a plain rootfs. */
export function slotOfRootfs(rootfs: string): Slot | null {
  if (basename(rootfs) !== "rootfs") return null;
  const dir = dirname(rootfs);
  const file = join(dir, "slot.json");
  if (!existsSync(file)) return null;
  return { dir, rootfs, info: readSlotInfo(file) };
}

export function readSlotInfo(file: string): SlotInfo {
  let v: Partial<SlotInfo>;
  try {
    v = JSON.parse(readFileSync(file, "utf8")) as Partial<SlotInfo>;
  } catch {
    v = {};
  }
  if (typeof v.name !== "string" || typeof v.digest !== "string" || typeof v.version !== "string" || !v.assets)
    throw new PlanetError("CORRUPT_SLOT", `${file} is not a slot record: reinstall that image (planet install)`);
  return v as SlotInfo;
}

/** Where the host sees a bubble's root: the slot's overlay for a slot, else the rootfs itself. */
export function bubbleRoot(rootfs: string): string {
  return slotOfRootfs(rootfs) ? join(dirname(rootfs), "root") : rootfs;
}

/** Whether a folder is a mount point (the slot overlay mounted there). */
export function isMounted(path: string): boolean {
  const want = existsSync(path) ? realpathSync(path) : path;
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === want);
}

/**
 * The root a bubble from this slot boots on: an overlay of the slot's rootfs (read-only, lower)
 * and `<slot>/upper`, mounted at `<slot>/root`.
 */
export async function mountSlotRoot(slot: Slot): Promise<string> {
  const root = join(slot.dir, "root");
  if (isMounted(root)) return root;
  for (const d of ["upper", "work", "root"]) mkdirSync(join(slot.dir, d), { recursive: true });
  const res = await run([
    "mount",
    "-t",
    "overlay",
    "overlay",
    "-o",
    `lowerdir=${slot.rootfs},upperdir=${join(slot.dir, "upper")},workdir=${join(slot.dir, "work")}`,
    root,
  ]);
  if (res.exitCode !== 0)
    throw new PlanetError("SLOT_MOUNT", `cannot mount the overlay of slot ${slot.info.name}: ${res.stderr.trim()}`, {
      phase: "start",
    });
  return root;
}

export async function unmountSlotRoot(slot: Slot): Promise<void> {
  const root = join(slot.dir, "root");
  if (!isMounted(root)) return;
  const res = await run(["umount", root]);
  if (res.exitCode !== 0) await run(["umount", "-l", root]);
}
