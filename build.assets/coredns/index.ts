import { defineAsset } from "../../core/image/assets.ts";

/** CoreDNS, the cluster DNS, run as a unit in every bubble (its kubernetes plugin with a kubeconfig). */
export default defineAsset({
  name: "coredns",
  version: "1.15.0",
  description: "coredns",
  source: {
    kind: "gomod",
    module: "github.com/coredns/coredns",
    version: "v1.15.0",
    ldflags: ["-X github.com/coredns/coredns/coremain.GitCommit=${commit}"],
    binaries: { coredns: "github.com/coredns/coredns" },
  },
  files: { coredns: "/usr/bin/coredns" },
});
