import { defineAsset } from "../../core/image/assets.ts";

const pkg = "helm.sh/helm/v4";

/**
 * Helm v4: the `helm` users run in the bubble, and what installs the charts plugins ship as
 * releases at boot. Stamped as upstream's Makefile does (`internal/version`); no cgo.
 */
export default defineAsset({
  name: "helm",
  version: "4.3.2",
  description: "helm",
  source: {
    kind: "gomod",
    module: pkg,
    version: "v4.3.2",
    ldflags: [
      `-X ${pkg}/internal/version.version=\${version}`,
      `-X ${pkg}/internal/version.gitCommit=\${commit}`,
      `-X ${pkg}/internal/version.gitTreeState=clean`,
    ],
    binaries: { helm: `${pkg}/cmd/helm` },
  },
  files: { helm: "/usr/bin/helm" },
});
