import { defineAsset } from "../../core/image/assets.ts";

const pkg = "github.com/rancher/local-path-provisioner";

/**
 * Rancher's local-path-provisioner (what k3s ships as its default StorageClass): dynamic
 * PersistentVolumes in a folder of the node the pod runs on. Its Makefile stamps main.VERSION; no cgo.
 */
export default defineAsset({
  name: "local-path-provisioner",
  version: "0.0.30",
  description: "local-path-provisioner",
  source: {
    kind: "gomod",
    module: pkg,
    version: "v0.0.30",
    ldflags: ["-X main.VERSION=${version}"],
    binaries: { "local-path-provisioner": pkg },
  },
  // Nothing in the rootfs: the binary runs in a pod, from the image the storage plugin builds of it.
});
