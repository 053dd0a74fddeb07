import { defineAsset } from "../../core/image/assets.ts";

const pkg = "github.com/containerd/containerd/v2";

/** containerd 2 (CRI for the kubelet), its runc shim and ctr, with upstream's tags and stamps. */
export default defineAsset({
  name: "containerd",
  version: "2.4.2",
  description: "containerd, containerd-shim-runc-v2, ctr",
  source: {
    kind: "gomod",
    module: pkg,
    version: "v2.4.2",
    tags: ["urfave_cli_no_docs", "no_btrfs"],
    ldflags: [
      `-X ${pkg}/version.Version=\${version}`,
      `-X ${pkg}/version.Revision=\${commit}`,
      `-X ${pkg}/version.Package=${pkg}`,
    ],
    binaries: {
      containerd: `${pkg}/cmd/containerd`,
      // The shim runs once per pod: upstream drops gRPC from it (ttrpc only).
      "containerd-shim-runc-v2": {
        package: `${pkg}/cmd/containerd-shim-runc-v2`,
        tags: ["urfave_cli_no_docs", "no_btrfs", "no_grpc"],
      },
      ctr: `${pkg}/cmd/ctr`,
    },
  },
  files: {
    containerd: "/usr/bin/containerd",
    "containerd-shim-runc-v2": "/usr/bin/containerd-shim-runc-v2",
    ctr: "/usr/bin/ctr",
  },
});
