import { defineAsset } from "../../core/image/assets.ts";

/**
 * flanneld, the pod overlay (vxlan backend, subnets leased from etcd). cgo on amd64 (udp backend).
 * The module proxy refuses the Tencent Cloud VPC SDK at the version flannel requires (v1.3.188,
 * "not available"); it only feeds flannel's tencent-vpc backend, which Planet does not use, and is
 * pinned to the nearest version the proxy serves.
 */
export default defineAsset({
  name: "flannel",
  version: "0.28.10",
  description: "flanneld",
  source: {
    kind: "gomod",
    module: "github.com/flannel-io/flannel",
    version: "v0.28.10",
    cgo: true,
    replaces: { "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc": "v1.3.80" },
    ldflags: ["-X github.com/flannel-io/flannel/pkg/version.Version=${version}"],
    binaries: { flanneld: { package: "github.com/flannel-io/flannel", static: true } },
  },
  files: { flanneld: "/usr/bin/flanneld" },
});
