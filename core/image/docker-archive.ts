import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { runOk } from "../proc.ts";

/** Deterministic tar flags: same inputs, same bytes. */
const TAR_REPRO = [
  "--sort=name",
  "--mtime=@0",
  "--owner=0",
  "--group=0",
  "--numeric-owner",
  "--format=posix",
  "--pax-option=delete=atime,delete=ctime",
];

export interface ImageSpec {
  ref: string;
  /** Absolute host file → path inside the image. */
  files: Record<string, string>;
  links?: Record<string, string>;
  entrypoint?: string[];
  cmd?: string[];
}

/** The image's architecture in Go's and OCI's words: that of the binaries the build put in it (this host's). */
export function imageArch(nodeArch: string = process.arch): string {
  const arch = (
    { x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" } as Record<string, string>
  )[nodeArch];
  if (!arch) throw new Error(`no container image architecture for ${nodeArch}`);
  return arch;
}

/**
 * Writes a single-layer image archive in the `docker save` layout (manifest.json, config, layer.tar),
 * which `ctr images import` reads — so the cluster needs no registry to run its own pods.
 */
export async function writeDockerArchive(spec: ImageSpec, out: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "planet-image-"));
  try {
    const tree = join(work, "tree");
    for (const [src, dest] of Object.entries(spec.files)) {
      const p = join(tree, dest);
      mkdirSync(dirname(p), { recursive: true });
      copyFileSync(src, p);
    }
    for (const [link, target] of Object.entries(spec.links ?? {})) {
      const p = join(tree, link);
      mkdirSync(dirname(p), { recursive: true });
      symlinkSync(target, p);
    }
    const layerPath = join(work, "layer.tar");
    await runOk(["tar", ...TAR_REPRO, "-cf", layerPath, "-C", tree, "."], { phase: "images" });
    const layer = readFileSync(layerPath);
    const diffId = createHash("sha256").update(layer).digest("hex");
    const config = {
      architecture: imageArch(),
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: {
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        Entrypoint: spec.entrypoint ?? null,
        Cmd: spec.cmd ?? null,
        WorkingDir: "/",
      },
      rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
      history: [{ created: "1970-01-01T00:00:00Z", created_by: "planet build" }],
    };
    const configText = JSON.stringify(config);
    const configId = createHash("sha256").update(configText).digest("hex");
    const pkg = join(work, "pkg");
    mkdirSync(join(pkg, diffId), { recursive: true });
    copyFileSync(layerPath, join(pkg, diffId, "layer.tar"));
    writeFileSync(join(pkg, `${configId}.json`), configText);
    writeFileSync(
      join(pkg, "manifest.json"),
      JSON.stringify([{ Config: `${configId}.json`, RepoTags: [spec.ref], Layers: [`${diffId}/layer.tar`] }]),
    );
    const [repo, tag] = [spec.ref.slice(0, spec.ref.lastIndexOf(":")), spec.ref.slice(spec.ref.lastIndexOf(":") + 1)];
    writeFileSync(join(pkg, "repositories"), JSON.stringify({ [repo]: { [tag]: diffId } }));
    mkdirSync(dirname(out), { recursive: true });
    await runOk(["tar", ...TAR_REPRO, "-cf", out, "-C", pkg, "."], { phase: "images" });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
