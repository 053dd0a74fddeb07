import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { PlanetError } from "../../errors.ts";
import { applyManifests } from "../../kube/apply.ts";
import { Kube, loadKubeconfig } from "../../kube/client.ts";
import { logger } from "../../log.ts";
import { readManifest } from "../../manifest.ts";
import { debugArg } from "../_args.ts";

const log = logger("manifests");

const apply = defineCommand({
  meta: {
    name: "apply",
    description: "server-side apply the Kubernetes manifests of this image's plugins; prune what no plugin ships any more",
  },
  args: {
    ...debugArg,
    kubeconfig: { type: "string", description: "credentials allowed to write them", default: "/var/state/admin.kubeconfig" },
    wait: { type: "string", description: "seconds to wait for the apiserver to answer /readyz", default: "120" },
  },
  async run({ args }) {
    const image = readManifest("/");
    if (!image)
      throw new PlanetError("NOT_AN_IMAGE", "planet manifests apply runs inside a bubble (no /etc/planet/manifest.json)");
    const kube = new Kube(loadKubeconfig(args.kubeconfig));
    await kube.waitReady(Number(args.wait));
    const byPlugin = new Map<string, { file: string; text: string }[]>();
    for (const m of image.manifest.manifests ?? []) {
      const list = byPlugin.get(m.plugin) ?? [];
      list.push({ file: m.path.split("/").at(-1) ?? m.path, text: readFileSync(m.path, "utf8") });
      byPlugin.set(m.plugin, list);
    }
    const results = await applyManifests(
      kube,
      [...byPlugin].map(([plugin, files]) => ({ plugin, files })),
      process.env,
    );
    for (const r of results)
      if (r.error) log.error(`[plugin ${r.plugin}] ${r.error}`);
      else log.success(`[plugin ${r.plugin}] ${r.applied} applied, ${r.pruned} pruned`);
    if (results.some((r) => r.error)) process.exitCode = 1;
  },
});

export default defineCommand({
  meta: { name: "manifests", description: "Kubernetes objects shipped by plugins" },
  subCommands: { apply },
});
