/**
 * Container images as OCI image layouts (a folder: `oci-layout`, `index.json`, `blobs/sha256/…`),
 * assembled from asset files and, when asked, a Debian userland. One gzip layer per image. The same
 * folder feeds `ctr images import` (as a tar stream) and `planet images push` (blob by blob).
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { PlanetError } from "../errors.ts";
import { parseRef } from "../image-ref.ts";
import type { ImageDef } from "../plugin.ts";
import { have, run, runOk } from "../proc.ts";

/** Deterministic tar flags: same inputs, same bytes. */
export const TAR_REPRO = [
  "--sort=name",
  "--mtime=@0",
  "--owner=0",
  "--group=0",
  "--numeric-owner",
  "--format=posix",
  "--pax-option=delete=atime,delete=ctime",
];

export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

/** What the writer needs: an image definition's build fields, with asset files resolved to host paths. */
export type ImageSpec = Omit<ImageDef, "ref" | "aliases" | "debian" | "files" | "path"> & {
  /** Full references the image is tagged with, e.g. `docker.io/library/busybox:latest`. */
  refs: string[];
  /** A tar of a root tree to start from (e.g. a Debian userland), unpacked first. */
  base?: string;
  /** Absolute host file → path inside the image. */
  files?: Record<string, string>;
};

/** The image's architecture in Go's and OCI's words: that of the binaries the build put in it (this host's). */
export function imageArch(nodeArch: string = process.arch): string {
  const arch = (
    { x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" } as Record<string, string>
  )[nodeArch];
  if (!arch) throw new Error(`no container image architecture for ${nodeArch}`);
  return arch;
}

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Writes a blob into the layout and returns its descriptor. */
function putBlob(layout: string, data: Buffer | string, mediaType: string): { mediaType: string; digest: string; size: number } {
  const hex = sha256(data);
  const path = join(layout, "blobs/sha256", hex);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  return { mediaType, digest: `sha256:${hex}`, size: Buffer.byteLength(data) };
}

/**
 * Writes an OCI image layout folder at `out` (replaced atomically): the tree from `spec`, one gzip
 * layer, a config and one index entry per reference (annotated with the ref for `ctr images import`).
 */
export async function writeOciLayout(spec: ImageSpec, out: string): Promise<void> {
  for (const ref of spec.refs) parseRef(ref);
  const work = mkdtempSync(join(dirname(out), ".image-"));
  try {
    const tree = join(work, "tree");
    mkdirSync(tree, { recursive: true });
    if (spec.base)
      await runOk(["tar", "-xf", spec.base, "-C", tree, "--numeric-owner", "--exclude=./dev/*"], { phase: "images" });
    for (const [src, dest] of Object.entries(spec.files ?? {})) {
      const p = join(tree, dest);
      mkdirSync(dirname(p), { recursive: true });
      copyFileSync(src, p);
      chmodSync(p, statSync(src).mode & 0o7777);
    }
    for (const [dest, text] of Object.entries(spec.write ?? {})) {
      const p = join(tree, dest);
      mkdirSync(dirname(p), { recursive: true });
      rmSync(p, { force: true });
      writeFileSync(p, text, { mode: text.startsWith("#!") ? 0o755 : 0o644 });
    }
    for (const [link, target] of Object.entries(spec.links ?? {})) {
      const p = join(tree, link);
      mkdirSync(dirname(p), { recursive: true });
      rmSync(p, { force: true });
      symlinkSync(target, p);
    }
    for (const [p, mode] of Object.entries(spec.modes ?? {})) chmodSync(join(tree, p), mode);
    for (const cmd of spec.run ?? []) {
      const res = await run(["chroot", tree, ...cmd], { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" } });
      if (res.exitCode !== 0)
        throw new PlanetError(
          "IMAGE_RUN",
          `image ${spec.refs[0]}: ${cmd.join(" ")} exited ${res.exitCode}: ${res.stderr.trim().split("\n").at(-1) ?? ""}`,
          { phase: "images" },
        );
    }
    const layerTar = join(work, "layer.tar");
    await runOk(["tar", ...TAR_REPRO, "-cf", layerTar, "-C", tree, "."], { phase: "images" });
    const diffId = sha256(readFileSync(layerTar));
    await runOk(["sh", "-c", `${have("pigz") ? "pigz" : "gzip"} -n -6 < "$0" > "$0.gz"`, layerTar], { phase: "images" });
    const layout = join(work, "layout");
    mkdirSync(layout);
    writeFileSync(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    const layer = putBlob(layout, readFileSync(`${layerTar}.gz`), MEDIA.layer);
    const config = {
      architecture: imageArch(),
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: {
        Env: Object.entries({ PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...spec.env }).map(
          ([k, v]) => `${k}=${v}`,
        ),
        ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
        ...(spec.cmd ? { Cmd: spec.cmd } : {}),
        WorkingDir: spec.workdir ?? "/",
        ...(spec.user ? { User: spec.user } : {}),
        ...(spec.ports ? { ExposedPorts: Object.fromEntries(spec.ports.map((p) => [`${p}/tcp`, {}])) } : {}),
      },
      rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
      history: [{ created: "1970-01-01T00:00:00Z", created_by: "planet build" }],
    };
    const configDesc = putBlob(layout, JSON.stringify(config), MEDIA.config);
    const manifest = { schemaVersion: 2, mediaType: MEDIA.manifest, config: configDesc, layers: [layer] };
    const manifestDesc = putBlob(layout, JSON.stringify(manifest), MEDIA.manifest);
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA.index,
      manifests: spec.refs.map((ref) => ({
        ...manifestDesc,
        platform: { architecture: imageArch(), os: "linux" },
        annotations: { "io.containerd.image.name": ref, "org.opencontainers.image.ref.name": parseRef(ref).tag },
      })),
    };
    writeFileSync(join(layout, "index.json"), JSON.stringify(index));
    rmSync(out, { recursive: true, force: true });
    renameSync(layout, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** One image of a layout folder as `planet images push` sees it. */
export interface LayoutImage {
  ref: string;
  manifest: { mediaType: string; digest: string; size: number; path: string };
  blobs: { digest: string; size: number; path: string }[];
}

/** Reads the images (one per reference) of an OCI layout folder. */
export function readOciLayout(dir: string): LayoutImage[] {
  const indexPath = join(dir, "index.json");
  if (!existsSync(indexPath)) throw new PlanetError("IMAGE_LAYOUT", `${dir} is not an OCI image layout (no index.json)`);
  const blob = (digest: string) => join(dir, "blobs", ...digest.split(":"));
  let index: { manifests?: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };
  try {
    index = JSON.parse(readFileSync(indexPath, "utf8"));
  } catch {
    throw new PlanetError("IMAGE_LAYOUT", `${indexPath} is not JSON`);
  }
  return (index.manifests ?? []).map((m) => {
    const ref = m.annotations?.["io.containerd.image.name"];
    if (!ref) throw new PlanetError("IMAGE_LAYOUT", `${indexPath}: an entry has no io.containerd.image.name annotation`);
    if (m.mediaType !== MEDIA.manifest)
      throw new PlanetError(
        "IMAGE_LAYOUT",
        `${indexPath}: ${ref} is a ${m.mediaType}, only single-platform OCI manifests are pushed`,
      );
    const man = JSON.parse(readFileSync(blob(m.digest), "utf8")) as {
      config: { digest: string; size: number };
      layers: { digest: string; size: number }[];
    };
    return {
      ref,
      manifest: { mediaType: m.mediaType, digest: m.digest, size: m.size, path: blob(m.digest) },
      blobs: [man.config, ...man.layers].map((b) => ({ digest: b.digest, size: b.size, path: blob(b.digest) })),
    };
  });
}
