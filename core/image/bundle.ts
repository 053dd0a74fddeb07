/**
 * A bundle target: what a host needs beside a running cluster rather than a bubble image — the
 * plugins' images as OCI layout folders (`images/<name>/`), the files of the assets the target names
 * (e.g. `bin/e2e.test`) and `bundle.json`, the bill of materials. Written to a staging folder and
 * renamed into place, so a failed build leaves the previous bundle as it was.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PlanetError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { scratch } from "./base.ts";
import { type BuildOptions, preflightBuild, produceAssets } from "./image.ts";
import { buildImages, installAssets } from "./install.ts";

export const BUNDLE_FILE = "bundle.json";

export interface Bundle {
  schema: 1;
  version: string;
  target: string;
  builtAt: string;
  assets: ReturnType<typeof installAssets>;
  images: { ref: string; aliases: string[]; path: string; sha256: string }[];
}

export async function buildBundle(opts: BuildOptions): Promise<{ dir: string; bundle: Bundle; seconds: number }> {
  const { resolution, repo } = opts;
  if (!resolution.bundle) throw new PlanetError("BAD_FLAG", `target ${resolution.target} is not a bundle`);
  preflightBuild();
  const t0 = Date.now();
  const out = resolve(opts.out ?? join(repo, "build", resolution.target));
  const assets = await produceAssets(resolution.plugins, opts.recipes);
  for (const name of resolution.bundle.assets)
    if (!assets.some((a) => a.def.name === name))
      throw new PlanetError("UNKNOWN_ASSET", `bundle ${resolution.target} carries ${name}, which none of its plugins lists`, {
        phase: "resolve",
      });
  const staging = `${out}.staging-${process.pid}`;
  scratch.add(staging);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    const carried = installAssets(
      staging,
      assets.filter((a) => resolution.bundle?.assets.includes(a.def.name)),
    );
    const images = await buildImages(staging, resolution.plugins, new Map(assets.map((a) => [a.def.name, a])));
    const aliases = new Map(resolution.plugins.flatMap((p) => (p.def.images ?? []).map((i) => [i.ref, i.aliases ?? []])));
    const bundle: Bundle = {
      schema: 1,
      version: VERSION,
      target: resolution.target,
      builtAt: new Date().toISOString(),
      assets: carried,
      images: images.map((i) => ({ ...i, aliases: aliases.get(i.ref) ?? [] })),
    };
    writeFileSync(join(staging, BUNDLE_FILE), `${JSON.stringify(bundle, null, 2)}\n`);
    const old = `${out}.old-${process.pid}`;
    if (existsSync(out)) renameSync(out, old);
    renameSync(staging, out);
    scratch.delete(staging);
    rmSync(old, { recursive: true, force: true });
    return { dir: out, bundle, seconds: (Date.now() - t0) / 1000 };
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    scratch.delete(staging);
    throw e;
  }
}
