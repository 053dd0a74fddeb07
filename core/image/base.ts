/**
 * The base rootfs: Debian bookworm by mmdebstrap (minbase + the packages plugins ask for + pinned
 * .debs), cached by its inputs; and the package list that goes into the manifest.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import type { Manifest } from "../manifest.ts";
import { run, runOk } from "../proc.ts";
import type { ResolvedPlugin } from "../resolve.ts";
import { cacheRoot, debianMirror, type ResolvedAsset } from "./assets.ts";

const log = logger("build");

/** Packages every image has; plugins add theirs with `packages`. */
export const BASE_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "iproute2",
  "iptables",
  "procps",
  "ca-certificates",
  "curl",
  "kmod",
  "less",
];

/** Temporary paths of the build under way, removed if it is interrupted. */
export const scratch = new Set<string>();

/** Debian archive the base rootfs comes from. */
export function debianSources(): string[] {
  const mirror = debianMirror();
  const security = process.env.PLANET_DEBIAN_SECURITY ?? "http://deb.debian.org/debian-security";
  return [`deb ${mirror} bookworm main`, `deb ${mirror} bookworm-updates main`, `deb ${security} bookworm-security main`];
}

/** Every package a plugin asks for must be in the archive: a fast, named error instead of a failed mmdebstrap. */
export async function checkPackages(plugins: ResolvedPlugin[]): Promise<void> {
  if (!existsSync("/var/lib/apt/lists") || !readdirSync("/var/lib/apt/lists").some((f) => f.includes("_Packages"))) return;
  for (const p of plugins)
    for (const pkg of p.def.packages ?? []) {
      const res = await run(["apt-cache", "show", "--no-all-versions", pkg]);
      if (res.exitCode !== 0 || !res.stdout.includes("Package:"))
        throw new PlanetError("UNKNOWN_PACKAGE", `package ${pkg} is not in the Debian archive (apt-cache show ${pkg})`, {
          plugin: p.def.name,
          phase: "resolve",
        });
    }
}

/** A `deb` asset with `files` is installed as a package; without, it only feeds other steps. */
function installedDebs(assets: ResolvedAsset[]): ResolvedAsset[] {
  return assets.filter((a) => a.def.source.kind === "deb" && a.def.files && a.deb);
}

/** The base rootfs tarball from mmdebstrap, cached by what goes into it. */
export async function ensureBase(plugins: ResolvedPlugin[], assets: ResolvedAsset[]): Promise<string> {
  const packages = [...new Set([...BASE_PACKAGES, ...plugins.flatMap((p) => p.def.packages ?? [])])].sort();
  const pinned = installedDebs(assets);
  const debs = pinned.map((a) => a.deb as string);
  const sources = debianSources();
  const key = createHash("sha256")
    .update(JSON.stringify({ packages, debs: pinned.map((a) => a.record.sha256), sources }))
    .digest("hex")
    .slice(0, 16);
  const dir = join(cacheRoot(), "base");
  const file = join(dir, `bookworm-${key}.tar`);
  if (existsSync(file)) {
    log.info(`base rootfs: cached ${file}`);
    return file;
  }
  log.start(`base rootfs: mmdebstrap bookworm minbase + ${packages.length} packages + ${debs.length} pinned .debs`);
  const t0 = Date.now();
  await mmdebstrapTar(file, {
    variant: "minbase",
    include: [packages.join(","), ...debs],
    keepCopyright: true,
    failure: "",
    phase: "base",
    progress: "base rootfs",
  });
  log.success(`base rootfs ready in ${Math.round((Date.now() - t0) / 1000)}s`);
  return file;
}

/**
 * Runs mmdebstrap into `file` (a tar of bookworm from debianSources()) through a temporary name, so
 * the cache never holds half a tree; docs, man pages and locales are dead weight in an appliance
 * image and left out. One line on failure.
 */
async function mmdebstrapTar(
  file: string,
  o: {
    variant: "minbase" | "extract";
    /** `--include` values: package lists and .deb paths. */
    include: string[];
    keepCopyright: boolean;
    /** Prefix of the failure message. */
    failure: string;
    phase: string;
    /** Label of a progress line every 20 s, if any. */
    progress?: string;
  },
): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  scratch.add(tmp);
  const t0 = Date.now();
  const timer = o.progress
    ? setInterval(() => log.info(`${o.progress}: mmdebstrap … ${Math.round((Date.now() - t0) / 1000)}s`), 20_000)
    : undefined;
  try {
    const res = await run([
      "mmdebstrap",
      `--variant=${o.variant}`,
      "--mode=root",
      "--format=tar",
      "--quiet",
      ...o.include.map((i) => `--include=${i}`),
      "--dpkgopt=path-exclude=/usr/share/man/*",
      "--dpkgopt=path-exclude=/usr/share/doc/*",
      ...(o.keepCopyright ? ["--dpkgopt=path-include=/usr/share/doc/*/copyright"] : []),
      "--dpkgopt=path-exclude=/usr/share/locale/*",
      "--aptopt=Acquire::Retries=3",
      "bookworm",
      tmp,
      ...debianSources(),
    ]);
    if (res.exitCode !== 0) {
      const detail =
        res.stderr
          .split("\n")
          .filter((l) => /^E:|error/i.test(l))
          .slice(-2)
          .join(" / ") || res.stderr.trim().split("\n").at(-1);
      const short = (detail ?? "").length > 300 ? `${(detail ?? "").slice(0, 300)}…` : detail;
      throw new PlanetError("MMDEBSTRAP_FAILED", `${o.failure}mmdebstrap exited ${res.exitCode}: ${short}`, { phase: o.phase });
    }
    renameSync(tmp, file);
  } finally {
    if (timer) clearInterval(timer);
    rmSync(tmp, { force: true });
    scratch.delete(tmp);
  }
}

/**
 * A Debian userland for a container image: the packages and their dependencies unpacked, without
 * maintainer scripts (mmdebstrap --variant=extract), cached as a tar by the package list.
 */
export async function ensureDebianTree(packages: string[]): Promise<string> {
  const sorted = [...new Set(packages)].sort();
  const key = createHash("sha256")
    .update(JSON.stringify({ sorted, sources: debianSources() }))
    .digest("hex")
    .slice(0, 16);
  const file = join(cacheRoot(), "image-bases", `extract-${key}.tar`);
  if (existsSync(file)) return file;
  log.start(`image userland: ${sorted.join(", ")}`);
  await mmdebstrapTar(file, {
    variant: "extract",
    include: [sorted.join(",")],
    keepCopyright: false,
    failure: `image userland (${sorted.join(", ")}): `,
    phase: "images",
  });
  return file;
}

export async function packageList(rootfs: string): Promise<Manifest["packages"]> {
  const outText = await runOk(
    ["dpkg-query", `--admindir=${join(rootfs, "var/lib/dpkg")}`, "-W", "-f", "${Package}\t${Version}\t${Architecture}\n"],
    { phase: "manifest" },
  );
  return outText
    .trim()
    .split("\n")
    .map((l) => l.split("\t"))
    .map(([name, version, arch]) => ({ name: name ?? "", version: version ?? "", arch: arch ?? "" }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
