import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { recipeNames, recipes, targets } from "../../build.assets/index.ts";
import { plugins, pluginsDir } from "../../plugins/index.ts";
import { PlanetError } from "../errors.ts";
import { type Resolution, resolvePlugins } from "../resolve.ts";

/** The repository checkout the CLI runs from (build needs plugin folders and `rootfs/`). */
export function repoRoot(): string {
  const root = resolve(import.meta.dir, "../..");
  if (!existsSync(join(root, "plugins")) || !existsSync(join(root, "rootfs")))
    throw new PlanetError(
      "NOT_A_CHECKOUT",
      "planet build runs from a checkout of the planet repository (bun core/cli/main.ts build)",
    );
  return root;
}

/** Units the base overlay `rootfs/` ships, which plugin units may refer to. */
export const BASE_OVERLAY_UNITS = ["planet-sysctl.service"];

export function resolveTarget(target: string, external: string[], without: string[]): Promise<Resolution> {
  return resolvePlugins({
    target,
    targets,
    registry: plugins,
    pluginsDir,
    external,
    without,
    assets: recipeNames,
    baseUnits: BASE_OVERLAY_UNITS,
  });
}

/**
 * The recipes one build uses: for each asset its default (the first recipe of that name) unless
 * `--asset name@version` picks another version of it.
 */
export function pickRecipes(picks: string[]): typeof recipes {
  const chosen = new Map<string, string>();
  for (const pick of picks) {
    const m = /^([\w.-]+)@v?(\d[\w.-]*)$/.exec(pick);
    if (!m) throw new PlanetError("BAD_FLAG", `--asset ${pick}: write it as name@version, e.g. kubernetes@1.36.3`);
    const [, name, version] = m as unknown as [string, string, string];
    const versions = recipes.filter((r) => r.def.name === name).map((r) => r.def.version);
    if (!versions.length)
      throw new PlanetError("UNKNOWN_ASSET", `--asset ${pick}: no asset named ${name} (known: ${recipeNames.join(", ")})`);
    if (!versions.includes(version))
      throw new PlanetError(
        "UNKNOWN_ASSET",
        `--asset ${pick}: ${name} has recipes for ${versions.join(", ")} only (build.assets/)`,
      );
    chosen.set(name, version);
  }
  return recipes.filter((r) => {
    const v = chosen.get(r.def.name);
    return v ? r.def.version === v : recipes.find((d) => d.def.name === r.def.name) === r;
  });
}

export { recipes, targets };
