import type { AssetDef } from "../core/build/assets.ts";
import * as debian from "./debian.ts";
import kubernetes from "./kubernetes/index.ts";

/** Every asset recipe the build knows, with the folder its build script is relative to. */
export const recipes: readonly { def: AssetDef; dir: string }[] = [
  { def: kubernetes, dir: `${import.meta.dir}/kubernetes` },
  ...Object.values(debian).map((def) => ({ def, dir: import.meta.dir })),
];

export const recipeNames: readonly string[] = recipes.map((r) => r.def.name);

export { targets } from "./targets.ts";
