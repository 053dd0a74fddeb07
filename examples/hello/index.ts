import { definePlugin } from "planet/plugin";

/**
 * An out-of-tree plugin, shaped exactly like the in-tree ones: a tiny web server from a Debian
 * package, its unit, its page, and a health check. Build it in with
 * `planet build --target dev --plugin ./examples/hello`.
 */
export default definePlugin({
  name: "hello",
  description: "example user service: busybox httpd serving a page on 127.0.0.1:8088",
  roles: ["master", "node"],
  packages: ["busybox"],
  units: ["hello.service"],
  files: { "files/": "/" },
  env: { HELLO_PORT: "8088" },
  checks: [
    { name: "hello-http", http: "http://127.0.0.1:8088/", expect: "hello from planet" },
    { name: "hello-running", unit: "hello.service" },
  ],
});
