import { defineAsset } from "../../core/image/assets.ts";

const pkg = "sigs.k8s.io/metrics-server";

/**
 * metrics-server: the Metrics API (`kubectl top`, HorizontalPodAutoscalers) from the kubelets'
 * resource metrics, stamped as upstream's Makefile does; no cgo.
 */
export default defineAsset({
  name: "metrics-server",
  version: "0.8.0",
  description: "metrics-server",
  source: {
    kind: "gomod",
    module: pkg,
    version: "v0.8.0",
    ldflags: [
      `-X ${pkg}/pkg/version.gitVersion=\${version}`,
      `-X ${pkg}/pkg/version.gitCommit=\${commit}`,
      `-X ${pkg}/pkg/version.buildDate=\${date}`,
    ],
    binaries: { "metrics-server": `${pkg}/cmd/metrics-server` },
  },
  // Nothing in the rootfs: the binary runs in a pod, from the image the metrics plugin builds of it.
});
