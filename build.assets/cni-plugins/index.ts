import { defineAsset } from "../../core/image/assets.ts";

const pkg = "github.com/containernetworking/plugins";
const plugins = ["main/bridge", "main/loopback", "ipam/host-local", "meta/portmap", "meta/bandwidth"];

/** The reference CNI plugins the pod network uses. */
export default defineAsset({
  name: "cni-plugins",
  version: "1.9.1",
  description: "CNI bridge, loopback, host-local, portmap, bandwidth",
  source: {
    kind: "gomod",
    module: pkg,
    version: "v1.9.1",
    ldflags: [`-X ${pkg}/pkg/utils/buildversion.BuildVersion=\${version}`],
    binaries: Object.fromEntries(plugins.map((p) => [p.split("/")[1] as string, `${pkg}/plugins/${p}`])),
  },
  files: Object.fromEntries(plugins.map((p) => p.split("/")[1] as string).map((n) => [n, `/usr/lib/cni/${n}`])),
});
