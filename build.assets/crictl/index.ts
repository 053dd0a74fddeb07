import { defineAsset } from "../../core/image/assets.ts";

/**
 * crictl, the CRI command-line client. The module proxy serves cri-tools v1.36.0 but refuses
 * v1.37.0 ("not available"); the CRI v1 API it speaks is the same, and one minor of skew is inside
 * cri-tools' own support window.
 */
export default defineAsset({
  name: "crictl",
  version: "1.36.0",
  description: "crictl (CRI client)",
  source: {
    kind: "gomod",
    module: "sigs.k8s.io/cri-tools",
    version: "v1.36.0",
    ldflags: ["-X sigs.k8s.io/cri-tools/pkg/version.Version=${semver}"],
    binaries: { crictl: "sigs.k8s.io/cri-tools/cmd/crictl" },
  },
  files: { crictl: "/usr/bin/crictl" },
});
