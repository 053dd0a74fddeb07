import { defineAsset } from "../../core/image/assets.ts";

const pkg = "github.com/cloudnativelabs/kube-router/v2";

/**
 * kube-router, for its network policy controller only (the router and the service proxy stay off):
 * NetworkPolicy enforced with iptables and ipsets, as k3s embeds it. kube-network-policies, the
 * nftables one, needs the kernel's nft `queue` expression (CONFIG_NFT_QUEUE), which these hosts lack.
 * Stamped as upstream's Makefile does; no cgo.
 */
export default defineAsset({
  name: "kube-router",
  version: "2.1.0",
  description: "kube-router",
  source: {
    kind: "gomod",
    module: pkg,
    version: "v2.1.0",
    ldflags: [`-X ${pkg}/pkg/version.Version=\${version}`, `-X ${pkg}/pkg/version.BuildDate=\${date}`],
    binaries: { "kube-router": `${pkg}/cmd/kube-router` },
  },
  files: { "kube-router": "/usr/bin/kube-router" },
});
