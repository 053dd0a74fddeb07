import { defineCommand } from "citty";
import { readManifest } from "../../manifest.ts";
import { commit, VERSION } from "../../version.ts";
import { debugArg } from "../_args.ts";

export default defineCommand({
  meta: { name: "version", description: "print version, git commit, and image target and digest when run from an image" },
  args: { ...debugArg, json: { type: "boolean", description: "machine-readable output" } },
  run({ args }) {
    const image = readManifest("/");
    const info = {
      version: VERSION,
      commit: commit(),
      target: image?.manifest.target ?? null,
      digest: image?.digest ?? null,
      plugins: image?.manifest.plugins.map((p) => p.name) ?? [],
    };
    if (args.json) process.stdout.write(`${JSON.stringify(info)}\n`);
    else {
      const lines = [`planet ${info.version} (commit ${info.commit})`];
      if (info.target) lines.push(`image target ${info.target}, digest ${info.digest}`, `plugins: ${info.plugins.join(", ")}`);
      else lines.push("not running from an image (no /etc/planet/manifest.json)");
      process.stdout.write(`${lines.join("\n")}\n`);
    }
  },
});
