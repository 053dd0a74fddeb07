/**
 * Slots: the images a host has installed, side by side under `<data-dir>/slots/`, each verified
 * against its manifest when it is installed and never written again. `current` and `previous`
 * are symlinks switched atomically; a bubble started from a slot boots on an overlay whose lower
 * layer is the slot's rootfs and whose upper layer (`<slot>/upper`) holds what the bubble writes.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, join, resolve } from "node:path";
import { isMounted, readSlotInfo, type Slot, type SlotInfo } from "../bubble/slot-root.ts";
import { PlanetError } from "../errors.ts";
import { sha256File } from "../image/assets.ts";
import { logger } from "../log.ts";
import { MANIFEST_PATH, type Manifest, readManifest } from "../manifest.ts";
import { runOk } from "../proc.ts";

const log = logger("upgrade");

export const POINTERS = ["current", "previous"] as const;
export type Pointer = (typeof POINTERS)[number];

export function slotsDir(dataDir: string): string {
  return join(resolve(dataDir), "slots");
}

/** The slot a pointer names, or null. */
export function pointer(dataDir: string, name: Pointer): Slot | null {
  const link = join(slotsDir(dataDir), name);
  if (!isLink(link)) return null;
  const dir = join(slotsDir(dataDir), readlinkSync(link));
  if (!existsSync(join(dir, "slot.json"))) return null;
  return { dir, rootfs: join(dir, "rootfs"), info: readSlotInfo(join(dir, "slot.json")) };
}

/** Points `name` at slot `slot` (or removes it), atomically: a new link renamed over the old. */
export function setPointer(dataDir: string, name: Pointer, slot: Slot | null): void {
  const link = join(slotsDir(dataDir), name);
  if (!slot) {
    rmSync(link, { force: true });
    return;
  }
  const tmp = `${link}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(basename(slot.dir), tmp);
  renameSync(tmp, link);
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

export function listSlots(dataDir: string): Slot[] {
  const root = slotsDir(dataDir);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => !n.startsWith(".") && !isLink(join(root, n)) && existsSync(join(root, n, "slot.json")))
    .map((n) => ({ dir: join(root, n), rootfs: join(root, n, "rootfs"), info: readSlotInfo(join(root, n, "slot.json")) }));
}

/** An image to install: a rootfs folder, a build folder holding `rootfs/`, or a `planet.tar.gz`. */
export function imageSource(path: string): { kind: "rootfs" | "tarball"; path: string } {
  const p = resolve(path);
  if (!existsSync(p)) throw new PlanetError("NOT_AN_IMAGE", `${path} does not exist`);
  if (lstatSync(p).isDirectory()) {
    if (existsSync(join(p, MANIFEST_PATH))) return { kind: "rootfs", path: realpathSync(p) };
    if (existsSync(join(p, "rootfs", MANIFEST_PATH))) return { kind: "rootfs", path: realpathSync(join(p, "rootfs")) };
    throw new PlanetError("NOT_AN_IMAGE", `${path} is not a planet image (no ${MANIFEST_PATH}, no rootfs/ with one)`);
  }
  if (/\.tar(\.gz)?$/.test(p)) return { kind: "tarball", path: p };
  throw new PlanetError("NOT_AN_IMAGE", `${path} is not a planet image: give a rootfs folder, a build folder or a planet.tar.gz`);
}

/**
 * Checks an unpacked image against its own manifest: it parses, and every file the manifest lists
 * for its assets (the binaries) has the sha256 the build recorded.
 */
export async function verifyImage(rootfs: string): Promise<{ manifest: Manifest; digest: string }> {
  const image = readManifest(rootfs);
  if (!image) throw new PlanetError("NOT_AN_IMAGE", `${rootfs} is not a planet image (no ${MANIFEST_PATH})`);
  if (!existsSync(join(rootfs, "sbin/init")))
    throw new PlanetError("NOT_AN_IMAGE", `${rootfs} is not a planet image (no /sbin/init)`);
  for (const a of image.manifest.assets)
    for (const [path, want] of Object.entries(a.files)) {
      const file = join(rootfs, path);
      if (!existsSync(file))
        throw new PlanetError("IMAGE_CORRUPT", `${file} is missing (asset ${a.name} of the image's manifest)`);
      const got = sha256File(file);
      if (got !== want)
        throw new PlanetError(
          "IMAGE_CORRUPT",
          `${file} does not match the image's manifest (sha256 ${got.slice(0, 12)}, expected ${want.slice(0, 12)})`,
        );
    }
  return image;
}

/**
 * Installs an image into a new slot (or returns the slot that already holds the same manifest):
 * unpacked or copied under a temporary name, verified, then renamed into place. A slot's rootfs is
 * never written: it is only ever an overlay's lower layer.
 */
export async function installSlot(dataDir: string, source: string): Promise<{ slot: Slot; fresh: boolean }> {
  const src = imageSource(source);
  const root = slotsDir(dataDir);
  mkdirSync(root, { recursive: true });
  const staging = join(root, `.staging-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging);
  try {
    const rootfs = join(staging, "rootfs");
    if (src.kind === "rootfs") {
      // A copy, not hard links: the source may be booted or rebuilt in place later.
      await runOk(["cp", "-a", "--reflink=auto", src.path, rootfs], { phase: "install" });
    } else {
      // planet.tar.gz holds planet.json and rootfs/.
      await runOk(["tar", "-xf", src.path, "-C", staging, "--numeric-owner", "rootfs"], { phase: "install" });
    }
    const { manifest, digest } = await verifyImage(rootfs);
    const name = `${manifest.target}-${manifest.version}-${digest.replace(/^sha256:/, "").slice(0, 12)}`;
    const existing = listSlots(dataDir).find((s) => s.info.digest === digest);
    if (existing) return { slot: existing, fresh: false };
    const info: SlotInfo = {
      name,
      digest,
      version: manifest.version,
      commit: manifest.commit,
      target: manifest.target,
      assets: Object.fromEntries(manifest.assets.map((a) => [a.name, a.version])),
      source: src.path,
      installedAt: new Date().toISOString(),
    };
    writeFileSync(join(staging, "slot.json"), `${JSON.stringify(info, null, 2)}\n`);
    const dir = join(root, name);
    renameSync(staging, dir);
    log.info(`installed ${name} from ${src.path}`);
    return { slot: { dir, rootfs: join(dir, "rootfs"), info }, fresh: true };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Removes slots no pointer names, except `keep`. */
export function pruneSlots(dataDir: string, keep: Slot[] = []): string[] {
  const named = new Set([...POINTERS.map((p) => pointer(dataDir, p)?.dir), ...keep.map((s) => s.dir)]);
  const removed: string[] = [];
  for (const s of listSlots(dataDir))
    if (!named.has(s.dir) && !isMounted(join(s.dir, "root"))) {
      rmSync(s.dir, { recursive: true, force: true });
      removed.push(s.info.name);
    }
  return removed;
}

/** Bytes an image takes (apparent size of the rootfs or the tarball, unpacked ≈ 2.5 × gzip). */
export async function imageBytes(source: string): Promise<number> {
  const src = imageSource(source);
  if (src.kind === "tarball") return Math.round((await Bun.file(src.path).size) * 2.5);
  const out = await runOk(["du", "-sb", src.path], { phase: "preflight" });
  return Number(out.split("\t")[0]);
}
