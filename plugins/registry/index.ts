import { definePlugin } from "../../core/plugin.ts";

/** The distribution registry v3 on the masters, TLS from the cluster PKI. */
export default definePlugin({
  name: "registry",
  description: "distribution registry 3 on :5000 (TLS), storage on the /ext/registry volume",
  requires: ["secrets"],
  roles: ["master"],
  ports: [5000],
  assets: ["registry"],
  units: ["registry.service"],
  volumes: { registry: "/ext/registry" },
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
