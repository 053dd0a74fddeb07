import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { MANIFEST_PATH, type Manifest, type ManifestAsset } from "../manifest.ts";
import { MANIFESTS_DIR } from "../manifests.ts";
import { type ResolvedPlugin, ROLES, type Role } from "../plugin.ts";
import { have, isSymlink, run, runOk } from "../proc.ts";
import { overlayPaths, type Resolution, UNIT_DIR } from "../resolve.ts";
import { walkTree } from "../util.ts";
import { commit, VERSION } from "../version.ts";
import { type AssetDef, cacheRoot, ensureAsset, type ResolvedAsset, sha256File } from "./assets.ts";
import { writeDockerArchive } from "./docker-archive.ts";

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

/** Debian archive the base rootfs comes from (override with PLANET_DEBIAN_MIRROR for a local mirror). */
function debianSources(): string[] {
  const mirror = process.env.PLANET_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";
  const security = process.env.PLANET_DEBIAN_SECURITY ?? "http://deb.debian.org/debian-security";
  return [`deb ${mirror} bookworm main`, `deb ${mirror} bookworm-updates main`, `deb ${security} bookworm-security main`];
}

export interface BuildOptions {
  resolution: Resolution;
  recipes: readonly { def: AssetDef; dir: string }[];
  /** Repository root (holds `rootfs/` and `core/cli/main.ts`). */
  repo: string;
  /** Output folder, default `<repo>/build/<target>`. */
  out?: string;
}

export interface BuildResult {
  tarball: string;
  rootfs: string;
  manifest: Manifest;
  assets: ResolvedAsset[];
  seconds: number;
  /** Wall time of each step. */
  steps: Record<string, number>;
}

/** Paths to remove if the build is interrupted. */
const scratch = new Set<string>();
let signalsHooked = false;
function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.on(sig, () => {
      for (const p of scratch) rmSync(p, { recursive: true, force: true });
      log.warn(`build interrupted by ${sig}; previous output left as it was`);
      process.exit(130);
    });
}

export function preflightBuild(): void {
  if (process.getuid?.() !== 0)
    throw new PlanetError("NOT_ROOT", "planet build must run as root (mmdebstrap --mode=root, chroot)", { phase: "preflight" });
  for (const tool of ["mmdebstrap", "apt-get", "dpkg-deb", "dpkg-query", "tar", "unshare", "chroot"])
    if (!have(tool)) throw new PlanetError("MISSING_TOOL", `${tool} is not installed (run: make deps)`, { phase: "preflight" });
}

/**
 * Builds `build/<target>/planet.tar.gz` (and the unpacked `rootfs/` beside it): base rootfs by
 * mmdebstrap, the `rootfs/` overlay, plugin files and units, asset files, bundled images, the
 * compiled planet binary and the manifest. Nothing in `out` changes until everything succeeded.
 */
export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  preflightBuild();
  hookSignals();
  const t0 = Date.now();
  const steps: Record<string, number> = {};
  const step = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const s = Date.now();
    const r = await work();
    steps[name] = (Date.now() - s) / 1000;
    return r;
  };
  const { resolution, repo } = opts;
  const out = resolve(opts.out ?? join(repo, "build", resolution.target));
  mkdirSync(out, { recursive: true });
  checkDiskSpace(out);

  await checkPackages(resolution.plugins);
  const assets = await step("assets", () => produceAssets(resolution.plugins, opts.recipes));
  const byName = new Map(assets.map((a) => [a.def.name, a]));

  const staging = join(out, `.staging-${process.pid}`);
  scratch.add(staging);
  rmSync(staging, { recursive: true, force: true });
  const rootfs = join(staging, "rootfs");
  mkdirSync(rootfs, { recursive: true });
  try {
    const base = await step("base", () => ensureBase(resolution.plugins, assets));
    await step("unpack", () => runOk(["tar", "-xf", base, "-C", rootfs, "--numeric-owner"], { phase: "base" }));
    const enabled = await step("overlay", async () => {
      await runOk(["cp", "-a", `${join(repo, "rootfs")}/.`, `${rootfs}/`], { phase: "overlay" });
      return installPlugins(rootfs, resolution.plugins);
    });
    const assetEntries = await step("asset-files", async () => installAssets(rootfs, assets));
    const kubeManifests = installManifests(rootfs, resolution.plugins);
    const images = await step("images", () => buildImages(rootfs, resolution.plugins, byName));
    await step("planet", () => compilePlanet(repo, rootfs));
    writeFileSync(join(rootfs, "etc/machine-id"), "");
    const manifest = await step("manifest", async () => {
      const m = {
        ...makeManifest(resolution, assetEntries, enabled, images, await packageList(rootfs)),
        manifests: kubeManifests,
      };
      const text = `${JSON.stringify(m, null, 2)}\n`;
      mkdirSync(join(rootfs, dirname(MANIFEST_PATH)), { recursive: true });
      writeFileSync(join(rootfs, MANIFEST_PATH), text);
      writeFileSync(join(staging, "planet.json"), text);
      return m;
    });
    await step("smoke", () => smokeTest(rootfs));
    const tarball = join(out, "planet.tar.gz");
    const tmpTar = join(out, `.planet.tar.gz.tmp-${process.pid}`);
    scratch.add(tmpTar);
    await step("tar", () => writeTarball(staging, tmpTar));
    // Swap in the results: tarball first (atomic rename), then the unpacked rootfs.
    renameSync(tmpTar, tarball);
    scratch.delete(tmpTar);
    writeFileSync(join(out, "planet.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    const finalRootfs = join(out, "rootfs");
    const old = join(out, `.old-rootfs-${process.pid}`);
    if (existsSync(finalRootfs)) renameSync(finalRootfs, old);
    renameSync(rootfs, finalRootfs);
    rmSync(old, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
    scratch.delete(staging);
    const seconds = (Date.now() - t0) / 1000;
    return { tarball, rootfs: finalRootfs, manifest, assets, seconds, steps };
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    scratch.delete(staging);
    throw err;
  }
}

function checkDiskSpace(dir: string): void {
  const st = statfsSync(dir);
  const free = st.bavail * st.bsize;
  const need = 3 * 1024 ** 3;
  if (free < need)
    throw new PlanetError(
      "NO_SPACE",
      `${dir} has ${(free / 1024 ** 3).toFixed(1)} GiB free; a build needs about ${need / 1024 ** 3} GiB`,
      { phase: "preflight" },
    );
}

/** Every package a plugin asks for must be in the archive: a fast, named error instead of a failed mmdebstrap. */
async function checkPackages(plugins: ResolvedPlugin[]): Promise<void> {
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

async function produceAssets(plugins: ResolvedPlugin[], recipes: BuildOptions["recipes"]): Promise<ResolvedAsset[]> {
  const wanted = [...new Set(plugins.flatMap((p) => p.def.assets ?? []))].sort();
  const result: ResolvedAsset[] = [];
  for (const name of wanted) {
    const recipe = recipes.find((r) => r.def.name === name);
    if (!recipe) throw new PlanetError("UNKNOWN_ASSET", `no recipe for asset ${name}`, { phase: "assets" });
    result.push(await ensureAsset(recipe.def, recipe.dir));
  }
  const reused = result.filter((a) => a.cached).length;
  log.info(`assets: ${result.length} (${reused} from cache ${cacheRoot()})`);
  return result;
}

/** A `deb` asset with `files` is installed as a package; without, it only feeds other steps. */
function installedDebs(assets: ResolvedAsset[]): ResolvedAsset[] {
  return assets.filter((a) => a.def.source.kind === "deb" && a.def.files && a.deb);
}

/** The base rootfs tarball from mmdebstrap, cached by what goes into it. */
async function ensureBase(plugins: ResolvedPlugin[], assets: ResolvedAsset[]): Promise<string> {
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
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  scratch.add(tmp);
  log.start(`base rootfs: mmdebstrap bookworm minbase + ${packages.length} packages + ${debs.length} pinned .debs`);
  const t0 = Date.now();
  const timer = setInterval(() => log.info(`base rootfs: mmdebstrap … ${Math.round((Date.now() - t0) / 1000)}s`), 20_000);
  try {
    const res = await run([
      "mmdebstrap",
      "--variant=minbase",
      "--mode=root",
      "--format=tar",
      "--quiet",
      `--include=${packages.join(",")}`,
      ...debs.map((d) => `--include=${d}`),
      // Docs and man pages are dead weight in an appliance image.
      "--dpkgopt=path-exclude=/usr/share/man/*",
      "--dpkgopt=path-exclude=/usr/share/doc/*",
      "--dpkgopt=path-include=/usr/share/doc/*/copyright",
      "--dpkgopt=path-exclude=/usr/share/locale/*",
      "--aptopt=Acquire::Retries=3",
      "bookworm",
      tmp,
      ...sources,
    ]);
    if (res.exitCode !== 0) {
      const detail =
        res.stderr
          .split("\n")
          .filter((l) => /^E:|error/i.test(l))
          .slice(-2)
          .join(" / ") || res.stderr.trim().split("\n").at(-1);
      const short = (detail ?? "").length > 300 ? `${(detail ?? "").slice(0, 300)}…` : detail;
      throw new PlanetError("MMDEBSTRAP_FAILED", `mmdebstrap exited ${res.exitCode}: ${short}`, { phase: "base" });
    }
    renameSync(tmp, file);
    log.success(`base rootfs ready in ${Math.round((Date.now() - t0) / 1000)}s`);
    return file;
  } finally {
    clearInterval(timer);
    rmSync(tmp, { force: true });
    scratch.delete(tmp);
  }
}

function copyPreserving(src: string, dest: string): void {
  mkdirSync(dirname(dest), { recursive: true });
  if (existsSync(dest) || isSymlink(dest)) rmSync(dest, { force: true });
  const st = lstatSync(src);
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dest);
  else {
    copyFileSync(src, dest);
    chmodSync(dest, st.mode & 0o7777);
  }
}

/** Copies plugin files and units, then enables units per role through `planet-<role>.target`. */
function installPlugins(rootfs: string, plugins: ResolvedPlugin[]): Record<Role, string[]> {
  const enabled: Record<Role, string[]> = { master: [], node: [] };
  const unitDir = join(rootfs, UNIT_DIR);
  for (const p of plugins) {
    for (const [dest, src] of overlayPaths(p)) copyPreserving(src, join(rootfs, dest));
    for (const u of p.units) {
      copyPreserving(join(p.dir, u.name), join(unitDir, u.name));
      // A Debian package may have enabled its own unit of the same name: the role decides now.
      for (const wants of readdirSync(unitDir).filter((d) => d.endsWith(".wants") || d.endsWith(".requires")))
        if (isSymlink(join(unitDir, wants, u.name))) unlinkSync(join(unitDir, wants, u.name));
      if (u.enabled) for (const r of u.roles) enabled[r].push(u.name);
    }
  }
  for (const role of ROLES) {
    const units = enabled[role].sort();
    const owners = plugins.filter((p) => p.units.some((u) => units.includes(u.name))).map((p) => p.def.name);
    writeFileSync(
      join(unitDir, `planet-${role}.target`),
      ["[Unit]", `Description=Planet ${role} role (plugins: ${owners.join(", ") || "none"})`, ""].join("\n"),
    );
    const wants = join(unitDir, `planet-${role}.target.wants`);
    mkdirSync(wants, { recursive: true });
    for (const u of units) symlinkSync(`../${u}`, join(wants, u));
  }
  return enabled;
}

function installAssets(rootfs: string, assets: ResolvedAsset[]): ManifestAsset[] {
  return assets.map((a) => {
    const files: Record<string, string> = {};
    for (const [src, dest] of Object.entries(a.def.files ?? {})) {
      const target = join(rootfs, dest);
      if (a.def.source.kind !== "deb") copyPreserving(join(a.out, src), target);
      if (!existsSync(target))
        throw new PlanetError("ASSET_MISSING_FILE", `${a.def.name}: ${dest} is not in the rootfs after install`, {
          phase: "assets",
        });
      const sum = sha256File(target);
      if (sum !== a.record.files[src])
        throw new PlanetError("ASSET_CHECKSUM", `${a.def.name}: ${dest} in the rootfs differs from the asset's ${src}`, {
          phase: "assets",
        });
      files[dest] = sum;
    }
    return {
      name: a.def.name,
      version: a.def.version,
      kind: a.record.kind,
      source: assetSource(a.def),
      sha256: a.record.sha256,
      ...(a.record.gomod ? { gomod: a.record.gomod } : {}),
      files,
    };
  });
}

/** Copies each plugin's validated Kubernetes manifests to MANIFESTS_DIR/<plugin>/. */
function installManifests(rootfs: string, plugins: ResolvedPlugin[]): NonNullable<Manifest["manifests"]> {
  return plugins.flatMap((p) =>
    p.manifests.map((m) => {
      const path = join(MANIFESTS_DIR, p.def.name, m.file);
      copyPreserving(join(p.dir, p.def.manifests ?? "", m.file), join(rootfs, path));
      return { plugin: p.def.name, path, sha256: sha256File(join(rootfs, path)), objects: m.objects };
    }),
  );
}

/** The one-string origin of an asset, as the manifest records it. */
function assetSource(def: AssetDef): string {
  const src = def.source;
  switch (src.kind) {
    case "deb":
      return `${src.package}=${src.version}`;
    case "gomod":
      return `${src.module}@${src.version}`;
    case "url":
      return src.url;
    case "local":
      return src.path;
  }
}

async function buildImages(
  rootfs: string,
  plugins: ResolvedPlugin[],
  assets: Map<string, ResolvedAsset>,
): Promise<Manifest["images"]> {
  const images: Manifest["images"] = [];
  for (const p of plugins)
    for (const img of p.def.images ?? []) {
      const files: Record<string, string> = {};
      for (const [ref, dest] of Object.entries(img.files)) {
        const [assetName, path] = ref.split(":", 2) as [string, string];
        const asset = assets.get(assetName);
        if (!asset || !path || !existsSync(join(asset.out, path)))
          throw new PlanetError("IMAGE_FILE", `image ${img.ref}: ${ref} is not a file of a listed asset`, {
            plugin: p.def.name,
            phase: "images",
          });
        files[join(asset.out, path)] = dest;
      }
      const out = join(rootfs, img.path);
      await writeDockerArchive({ ref: img.ref, files, links: img.links, entrypoint: img.entrypoint, cmd: img.cmd }, out);
      images.push({ ref: img.ref, path: img.path, sha256: sha256File(out) });
    }
  return images;
}

/** Where the image keeps etcd3's gRPC definitions, which etcd3 reads from disk at run time. */
const ETCD3_PROTO_DIR = "/usr/share/planet/etcd3/proto";

/**
 * `bun build --compile` of the CLI into the rootfs — the binary that containerizes its own rootfs.
 * etcd3 loads `${__dirname}/../proto/rpc.proto` at run time, and a compiled binary keeps the
 * build machine's __dirname; the plugin points it at the copy shipped in the image instead.
 */
async function compilePlanet(repo: string, rootfs: string): Promise<void> {
  const dest = join(rootfs, "usr/bin/planet");
  const protoSrc = join(repo, "node_modules/etcd3/proto");
  for (const f of readdirSync(protoSrc)) copyPreserving(join(protoSrc, f), join(rootfs, ETCD3_PROTO_DIR, f));
  const res = await Bun.build({
    entrypoints: [join(repo, "core/cli/main.ts")],
    compile: { outfile: dest },
    minify: { syntax: true },
    define: { PLANET_COMMIT: JSON.stringify(commit()) },
    plugins: [
      {
        name: "etcd3-proto-path",
        setup(b) {
          b.onLoad({ filter: /etcd3[/\\]lib[/\\]connection-pool\.js$/ }, async (args) => {
            const text = await Bun.file(args.path).text();
            // Relative to the rootfs the binary lives in: "" inside the bubble, <rootfs> on the host.
            const root = `(process.execPath.endsWith("/rootfs/usr/bin/planet") ? process.execPath.slice(0, -"/usr/bin/planet".length) : "")`;
            const patched = text.replace(
              "`${__dirname}/../proto/rpc.proto`",
              `${root} + ${JSON.stringify(`${ETCD3_PROTO_DIR}/rpc.proto`)}`,
            );
            if (patched === text)
              throw new PlanetError("COMPILE_FAILED", "etcd3 no longer loads ../proto/rpc.proto; update compilePlanet", {
                phase: "compile",
              });
            return { contents: patched, loader: "js" };
          });
        },
      },
    ],
  });
  if (!res.success)
    throw new PlanetError("COMPILE_FAILED", res.logs.map((l) => l.message).join("; ") || "bun build --compile failed", {
      phase: "compile",
    });
  chmodSync(dest, 0o755);
}

async function packageList(rootfs: string): Promise<Manifest["packages"]> {
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

function makeManifest(
  res: Resolution,
  assets: ManifestAsset[],
  enabled: Record<Role, string[]>,
  images: Manifest["images"],
  packages: Manifest["packages"],
): Manifest {
  const env: Record<string, string> = {};
  for (const p of res.plugins) Object.assign(env, p.def.env ?? {}); // one owner per variable (ENV_CONFLICT)
  return {
    schema: 1,
    version: VERSION,
    commit: commit(),
    target: res.target,
    roles: res.roles,
    plugins: res.plugins.map((p) => ({
      name: p.def.name,
      version: p.def.version ?? VERSION,
      description: p.def.description,
      requires: p.def.requires ?? [],
      roles: p.def.roles,
      external: p.external,
    })),
    assets,
    units: enabled,
    unitOwners: Object.fromEntries(res.plugins.flatMap((p) => p.units.map((u) => [u.name, p.def.name]))),
    checks: res.plugins.flatMap((p) =>
      (p.def.checks ?? []).map((c) => ({ ...c, plugin: p.def.name, roles: c.roles ?? p.def.roles })),
    ),
    certs: res.plugins.flatMap((p) => (p.def.certs ?? []).map((c) => ({ ...c, plugin: p.def.name }))),
    env,
    images,
    ports: res.plugins.flatMap((p) => (p.def.ports ?? []).map((port) => ({ port, plugin: p.def.name, roles: p.def.roles }))),
    volumes: res.plugins.flatMap((p) =>
      Object.entries(p.def.volumes ?? {}).map(([name, path]) => ({ name, path, plugin: p.def.name, roles: p.def.roles })),
    ),
    packages,
  };
}

/** The compiled binary must run inside its own rootfs (it needs /proc, hence the mount namespace). */
async function smokeTest(rootfs: string): Promise<void> {
  const out = await runOk(
    [
      "unshare",
      "-m",
      "-p",
      "-f",
      `--mount-proc=${join(rootfs, "proc")}`,
      "chroot",
      rootfs,
      "/usr/bin/planet",
      "version",
      "--json",
    ],
    { phase: "smoke", code: "SMOKE_FAILED" },
  );
  const v = JSON.parse(out) as { target?: string };
  if (!v.target)
    throw new PlanetError("SMOKE_FAILED", "planet version inside the rootfs does not see the manifest", { phase: "smoke" });
}

async function writeTarball(staging: string, dest: string): Promise<void> {
  const compressor = have("pigz") ? "pigz -1" : "gzip -1";
  await runOk(["tar", "-C", staging, "--numeric-owner", "--xattrs", "-I", compressor, "-cf", dest, "planet.json", "rootfs"], {
    phase: "tar",
  });
}

/** Size of a folder in bytes (for the bench). */
export function duBytes(dir: string): number {
  return walkTree(dir).files.reduce((total, p) => total + statSync(p).size, 0);
}
