import { definePlugin } from "../../core/plugin.ts";

const VERSION = "v0.0.30";

/**
 * A default StorageClass, `local-path`: Rancher's local-path-provisioner (k3s's default) as upstream
 * deploys it, from an image built here out of the `local-path-provisioner` asset. A claim gets a
 * folder on the node its pod runs on, under that host's `<data-dir>/local-path` (a data volume the
 * agent watches), made and removed by a helper pod (the bundled busybox); reclaim policy Delete.
 */
const PROVISIONER = "rancher.io/local-path";
/** The one folder its config serves (the `local-path` volume). */
const NODE_PATH = "/var/lib/local-path";

/** What local-path-provisioner v0.0.30 does with a StorageClass's parameters (provisioner.go). */
function localPathParameters(sc: Record<string, unknown>): string | undefined {
  if (sc.provisioner !== PROVISIONER) return undefined;
  const params = (sc.parameters ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(params)) {
    if (k !== "nodePath" && k !== "pathPattern") return `parameter ${k} is not one ${PROVISIONER} takes (nodePath, pathPattern)`;
    if (typeof v !== "string") return `parameter ${k} must be a string`;
  }
  if (params.nodePath !== undefined && params.nodePath !== NODE_PATH)
    return `nodePath ${String(params.nodePath)} is not a folder the provisioner serves (${NODE_PATH}, the local-path volume)`;
  const pattern = params.pathPattern as string | undefined;
  if (pattern !== undefined && (pattern.split("{{").length !== pattern.split("}}").length || pattern.includes("..")))
    return `pathPattern ${pattern}: not a Go template of a folder name inside ${NODE_PATH}`;
  return undefined;
}

export default definePlugin({
  name: "storage",
  description: "default StorageClass local-path: node-local PersistentVolumes under <data-dir>/local-path",
  requires: ["kube-node"],
  roles: ["master", "node"],
  assets: ["local-path-provisioner"],
  manifests: "manifests",
  volumes: { "local-path": NODE_PATH },
  // A StorageClass of this provisioner, shipped by any plugin, with parameters it would refuse at
  // provisioning time (every claim left Pending): refused when the image is built.
  validates: [{ kind: "StorageClass", check: localPathParameters }],
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
