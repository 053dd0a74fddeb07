import { definePlugin } from "../../core/plugin.ts";

const VERSION = "v0.8.0";

/**
 * The Metrics API — `kubectl top`, HorizontalPodAutoscalers — from metrics-server, run as upstream
 * ships it (a Deployment in kube-system behind the `v1beta1.metrics.k8s.io` APIService), from an
 * image built here out of the `metrics-server` asset and served by the masters' registry. It reads
 * the kubelets' resource metrics with its own service account and checks their serving
 * certificates against `csr-signer` (which signs every kubelet's), never skipping verification.
 */
export default definePlugin({
  name: "metrics",
  description: "metrics-server: kubectl top and HorizontalPodAutoscalers (a Deployment from the bundled image)",
  requires: ["kube-master", "registry"],
  roles: ["master"],
  assets: ["metrics-server"],
  manifests: "manifests",
  images: [
    {
      ref: `registry.k8s.io/metrics-server/metrics-server:${VERSION}`,
      files: { "metrics-server:metrics-server": "/metrics-server" },
      entrypoint: ["/metrics-server"],
      user: "65534",
      path: "/usr/share/planet/images/metrics-server",
    },
  ],
  checks: [
    {
      // Warning only: a cluster without a schedulable node has no metrics-server pod.
      name: "metrics-api",
      command: ["/usr/lib/planet/metrics-check"],
      severity: "warning",
      timeoutMs: 10_000,
    },
  ],
  files: { "files/": "/" },
});
