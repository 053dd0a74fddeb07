import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { HELM_ASSET, renderChart, type ShippedChart } from "../charts.ts";
import { expandEnv } from "../environment.ts";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { MANIFEST_PATH, type Manifest } from "../manifest.ts";
import { have, runOk } from "../proc.ts";
import type { Resolution, ResolvedPlugin } from "../resolve.ts";
import { freeBytes, walkTree } from "../util.ts";
import { type AssetDef, cacheRoot, ensureAsset, type ResolvedAsset } from "./assets.ts";
import { checkPackages, ensureBase, packageList, scratch } from "./base.ts";
import { compilePlanet, smokeTest } from "./compile.ts";
import {
  buildImages,
  envDefaults,
  installAssets,
  installCharts,
  installManifests,
  installPlugins,
  makeManifest,
} from "./install.ts";

const log = logger("build");

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
    const charts = await step("charts", () => checkCharts(rootfs, resolution.plugins, byName));
    const images = await step("images", () => buildImages(rootfs, resolution.plugins, byName));
    await step("planet", () => compilePlanet(repo, rootfs));
    writeFileSync(join(rootfs, "etc/machine-id"), "");
    const manifest = await step("manifest", async () => {
      const m = {
        ...makeManifest(resolution, assetEntries, enabled, images, await packageList(rootfs)),
        manifests: kubeManifests,
        ...(charts.length ? { charts } : {}),
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

/**
 * Copies the plugins' charts into the rootfs and renders each with the image's own helm, so a chart
 * that does not render, or values its schema refuses, fail the build naming plugin and chart.
 */
async function checkCharts(
  rootfs: string,
  plugins: ResolvedPlugin[],
  assets: Map<string, ResolvedAsset>,
): Promise<ShippedChart[]> {
  const charts = installCharts(rootfs, plugins);
  if (charts.length === 0) return charts;
  const helm = assets.get(HELM_ASSET);
  if (!helm)
    throw new PlanetError("MISSING_REQUIREMENT", `charts need the ${HELM_ASSET} asset (add the helm plugin)`, {
      phase: "charts",
    });
  const env = expandEnv(envDefaults(plugins));
  for (const c of charts)
    await renderChart(join(helm.out, "helm"), join(rootfs, c.path), c, env, `${c.plugin}/charts/${c.name}`).catch((e: Error) => {
      throw new PlanetError("CHART_INVALID", e.message, { plugin: c.plugin, phase: "charts" });
    });
  return charts;
}

function checkDiskSpace(dir: string): void {
  const free = freeBytes(dir);
  const need = 3 * 1024 ** 3;
  if (free < need)
    throw new PlanetError(
      "NO_SPACE",
      `${dir} has ${(free / 1024 ** 3).toFixed(1)} GiB free; a build needs about ${need / 1024 ** 3} GiB`,
      { phase: "preflight" },
    );
}

export async function produceAssets(plugins: ResolvedPlugin[], recipes: BuildOptions["recipes"]): Promise<ResolvedAsset[]> {
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
