import { defineCommand } from "citty";
import { ownImageRootfs, readManifest } from "../../manifest.ts";
import { commit, VERSION } from "../../version.ts";
import { debugArg } from "../_args.ts";

export default defineCommand({
  meta: {
    name: "version",
    description: "print version, git commit, and — when run from an image — its target, digest and component versions",
  },
  args: { ...debugArg, json: { type: "boolean", description: "machine-readable output" } },
  run({ args }) {
    // Inside the bubble the image is `/`; a binary run from an unpacked rootfs reads that rootfs.
    const image = readManifest(ownImageRootfs() ?? "/");
    const info = {
      version: VERSION,
      commit: commit(),
      target: image?.manifest.target ?? null,
      digest: image?.digest ?? null,
      plugins: image?.manifest.plugins.map((p) => p.name) ?? [],
      components: Object.fromEntries(
        (image?.manifest.assets ?? []).map((a) => [
          a.name,
          { version: a.version, source: a.source, toolchain: a.gomod?.toolchain },
        ]),
      ),
    };
    if (args.json) process.stdout.write(`${JSON.stringify(info)}\n`);
    else {
      const lines = [`planet ${info.version} (commit ${info.commit})`];
      if (info.target) {
        lines.push(`image target ${info.target}, digest ${info.digest}`, `plugins: ${info.plugins.join(", ")}`);
        for (const [name, c] of Object.entries(info.components))
          lines.push(`  ${name.padEnd(16)} ${c.version.padEnd(10)} ${c.source}${c.toolchain ? ` (${c.toolchain})` : ""}`);
      } else lines.push("not running from an image (no /etc/planet/manifest.json)");
      process.stdout.write(`${lines.join("\n")}\n`);
    }
  },
});
