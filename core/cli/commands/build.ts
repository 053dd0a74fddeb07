import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { findByRootfs, ownerAlive } from "../../bubble/state.ts";
import { PlanetError } from "../../errors.ts";
import { buildBundle } from "../../image/bundle.ts";
import { buildImage } from "../../image/image.ts";
import { logger } from "../../log.ts";
import { debugArg, multi } from "../_args.ts";
import { pickRecipes, repoRoot, resolveTarget } from "../_project.ts";

const log = logger("build");

export default defineCommand({
  meta: { name: "build", description: "build build/<target>/planet.tar.gz from pinned assets and plugins" },
  args: {
    ...debugArg,
    target: { type: "string", description: "dev | master | node | conformance (a bundle)", default: "dev" },
    plugin: { type: "string", description: "out-of-tree plugin folder (repeatable)" },
    without: { type: "string", description: "leave a plugin out (repeatable)" },
    out: { type: "string", description: "output folder (default build/<target>)" },
    asset: { type: "string", description: "another version of an asset, name@version (repeatable), e.g. kubernetes@1.36.3" },
  },
  async run({ args, rawArgs }) {
    const repo = repoRoot();
    const recipes = pickRecipes(multi(rawArgs, "asset"));
    const resolution = await resolveTarget(args.target, multi(rawArgs, "plugin"), multi(rawArgs, "without"));
    // The builder replaces the rootfs: not under a bubble that runs from it.
    const rootfs = join(resolve(args.out ?? join(repo, "build", resolution.target)), "rootfs");
    const running = findByRootfs(rootfs);
    if (running && ownerAlive(running))
      throw new PlanetError(
        "BUBBLE_RUNNING",
        `bubble ${running.id} runs from ${rootfs}; stop it first (planet stop --rootfs ${rootfs})`,
        { phase: "preflight" },
      );
    log.info(`target ${resolution.target}: ${resolution.plugins.map((p) => p.def.name).join(", ")}`);
    if (resolution.bundle) {
      const b = await buildBundle({ resolution, recipes, repo, out: args.out });
      log.success(`${b.dir}: ${b.bundle.images.length} images, ${b.bundle.assets.length} assets in ${b.seconds.toFixed(1)}s`);
      return;
    }
    const res = await buildImage({ resolution, recipes, repo, out: args.out });
    log.success(`${res.tarball} in ${res.seconds.toFixed(1)}s`);
    log.debug(
      `steps: ${Object.entries(res.steps)
        .map(([name, s]) => `${name} ${s.toFixed(1)}s`)
        .join(", ")}`,
    );
  },
});
