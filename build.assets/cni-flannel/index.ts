import { defineAsset } from "../../core/image/assets.ts";

/**
 * The `flannel` CNI plugin: reads /run/flannel/subnet.env and delegates to the bridge plugin on the
 * host's leased subnet. Its home today, github.com/flannel-io/cni-plugin, is refused by the module
 * proxy ("not available", every tag tried); the same plugin was last released inside the reference
 * plugins module, at v0.9.1 (plugins/meta/flannel), which the proxy serves.
 */
export default defineAsset({
  name: "cni-flannel",
  version: "0.9.1",
  description: "CNI flannel meta plugin",
  source: {
    kind: "gomod",
    module: "github.com/containernetworking/plugins",
    version: "v0.9.1",
    ldflags: ["-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=${version}"],
    binaries: { flannel: "github.com/containernetworking/plugins/plugins/meta/flannel" },
  },
  files: { flannel: "/usr/lib/cni/flannel" },
});
