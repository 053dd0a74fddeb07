import { definePlugin } from "../../core/plugin.ts";

const VERSION = "v0.0.30";

/**
 * A default StorageClass, `local-path`: Rancher's local-path-provisioner (k3s's default) as upstream
 * deploys it, from an image built here out of the `local-path-provisioner` asset. A claim gets a
 * folder on the node its pod runs on, under that host's `<data-dir>/local-path` (a data volume the
 * agent watches), made and removed by a helper pod (the bundled busybox); reclaim policy Delete.
 */
export default definePlugin({
  name: "storage",
  description: "default StorageClass local-path: node-local PersistentVolumes under <data-dir>/local-path",
  requires: ["kube-node"],
  roles: ["master", "node"],
  assets: ["local-path-provisioner"],
  manifests: "manifests",
  volumes: { "local-path": "/var/lib/local-path" },
  files: { "files/": "/" },
  checks: [
    {
      // Warning only, and on masters (they hold the credentials to look): a cluster without a
      // schedulable node has no provisioner pod.
      name: "storage-provisioner",
      command: ["/usr/lib/planet/storage-check"],
      severity: "warning",
      roles: ["master"],
      timeoutMs: 10_000,
    },
  ],
  images: [
    {
      ref: `docker.io/rancher/local-path-provisioner:${VERSION}`,
      files: { "local-path-provisioner:local-path-provisioner": "/usr/bin/local-path-provisioner" },
      env: { PATH: "/usr/bin:/bin" },
      entrypoint: ["/usr/bin/local-path-provisioner"],
      path: "/usr/share/planet/images/local-path-provisioner",
    },
  ],
});
