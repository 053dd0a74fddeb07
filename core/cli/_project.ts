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

export { recipes, targets };
