import { definePlugin } from "planet/plugin";

/**
 * An out-of-tree plugin that ships Kubernetes objects instead of units: a Deployment and its Service,
 * applied at boot once the apiserver answers (server-side apply) and pruned when a newer image no
 * longer carries them. Build it in with `planet build --target dev --plugin ./examples/web`.
 */
export default definePlugin({
  name: "web",
  description: "example workload: a busybox httpd Deployment and its ClusterIP Service, shipped as manifests",
  roles: ["master"],
  requires: ["kube-master"],
  manifests: "manifests",
});
