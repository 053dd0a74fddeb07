import { definePlugin } from "../../core/plugin.ts";

/** A docker registry (Debian's docker-registry 2.8) on the masters, TLS from the cluster PKI. */
export default definePlugin({
  name: "registry",
  description: "docker registry 2.8 on :5000 (TLS), storage on the /ext/registry volume",
  requires: ["secrets"],
  roles: ["master"],
  ports: [5000],
  assets: ["docker-registry"],
  units: ["docker-registry.service"],
  files: { "files/": "/" },
  certs: [
    {
      name: "registry",
      cn: "planet-registry",
      sans: ["localhost", "registry.local", "127.0.0.1", "$PUBLIC_IP", "$IPS", "$HOSTS"],
      usage: ["server"],
    },
  ],
  checks: [{ name: "registry-v2", http: "https://127.0.0.1:5000/v2/", expect: "{}" }],
});
