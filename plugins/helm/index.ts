import { definePlugin } from "../../core/plugin.ts";

/**
 * Helm v4 (built from `helm.sh/helm/v4`): `helm` for users of the masters, and the charts other
 * plugins ship (`charts:`) made real releases at boot by `planet charts apply` — one master at a
 * time, after the manifests. A chart that fails leaves the unit failed with `[plugin x] chart y: …`
 * in its journal, and the others installed.
 */
export default definePlugin({
  name: "helm",
  description: "Helm v4: helm for users, and the charts plugins ship installed at boot as Helm releases",
  requires: ["kube-master"],
  roles: ["master"],
  assets: ["helm"],
  units: ["planet-charts.service"],
  // Warning only: a chart's release failing leaves the cluster itself usable.
  checks: [{ name: "helm-charts", unit: "planet-charts.service", severity: "warning" }],
  // helm keeps its cache, config and data under these (root's shells and the unit alike).
  env: { HELM_CACHE_HOME: "/var/cache/helm", HELM_CONFIG_HOME: "/etc/helm", HELM_DATA_HOME: "/usr/share/helm" },
});
