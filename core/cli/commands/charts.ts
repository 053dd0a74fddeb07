import { hostname } from "node:os";
import { defineCommand } from "citty";
import { applyCharts } from "../../charts.ts";
import { PlanetError } from "../../errors.ts";
import { Kube, loadKubeconfig } from "../../kube/client.ts";
import { logger } from "../../log.ts";
import { readManifest } from "../../manifest.ts";
import { debugArg } from "../_args.ts";

const log = logger("charts");

const apply = defineCommand({
  meta: {
    name: "apply",
    description: "make the Helm charts of this image's plugins releases: install, upgrade what changed, uninstall what is gone",
  },
  args: {
    ...debugArg,
    kubeconfig: { type: "string", description: "credentials allowed to install them", default: "/var/state/admin.kubeconfig" },
    wait: { type: "string", description: "seconds to wait for the apiserver to answer /readyz", default: "120" },
    timeout: { type: "string", description: "how long helm waits for one release's resources to be ready", default: "5m0s" },
  },
  async run({ args }) {
    const image = readManifest("/");
    if (!image) throw new PlanetError("NOT_AN_IMAGE", "planet charts apply runs inside a bubble (no /etc/planet/manifest.json)");
    if (!/^\d+(\.\d+)?(ms|s|m|h)(\d+(\.\d+)?(ms|s|m|h))*$/.test(args.timeout))
      throw new PlanetError("BAD_FLAG", `--timeout ${args.timeout}: expected a duration such as 5m0s or 90s`);
    const kube = new Kube(loadKubeconfig(args.kubeconfig));
    await kube.waitReady(Number(args.wait));
    const charts = image.manifest.charts ?? [];
    // Every master runs this at boot: one at a time, so two never install the same release.
    const results = await kube.withLease("planet-charts", hostname(), 900, () =>
      applyCharts("helm", charts, { ...process.env, KUBECONFIG: args.kubeconfig }, args.timeout),
    );
    for (const r of results)
      if (r.error) log.error(r.error);
      else if (r.action === "uninstalled") log.success(`release ${r.chart} uninstalled: no plugin ships it any more`);
      else log.success(`[plugin ${r.plugin}] chart ${r.chart} ${r.action}`);
    if (results.some((r) => r.error)) process.exitCode = 1;
  },
});

export default defineCommand({
  meta: { name: "charts", description: "Helm charts shipped by plugins" },
  subCommands: { apply },
});
