import { definePlugin } from "../../core/plugin.ts";

/**
 * An out-of-tree plugin that ships a Helm chart: `charts/hello`, installed at boot as the Helm
 * release `hello` in namespace `planet-example` (`helm list -A` shows it), upgraded when a rebuilt
 * image carries a newer chart or other values, uninstalled when an image no longer ships it. Build it
 * in with `planet build --target dev --plugin ./examples/chart`.
 */
export default definePlugin({
  name: "chart",
  description: "example chart: a busybox httpd Deployment and Service, installed as the Helm release hello",
  roles: ["master"],
  requires: ["helm"],
  charts: "charts",
});
