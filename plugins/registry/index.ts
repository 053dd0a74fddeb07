import { definePlugin } from "../../core/plugin.ts";

/**
 * The cluster's image registry on the masters: distribution v3, read-only to the cluster (TLS, a
 * client certificate from the cluster CA required), written only by the image import at boot —
 * the images the image's plugins bundle and any OCI layout copied into the images volume. containerd
 * on every host pulls the usual registries' images from it (kube-node's hosts.toml); what it lacks is
 * answered by registry-miss with a message naming the image.
 */
export default definePlugin({
  name: "registry",
  description: "distribution registry 3 on :5000 (mTLS, read-only), image import at boot, registry-miss on :5001",
  // kube-node issues the registry-client certificate containerd (and the check) present.
  requires: ["secrets", "kube-node"],
  roles: ["master"],
  ports: [5000, 5001],
  assets: ["registry"],
  packages: ["socat"],
  units: [
    "registry.service",
    "registry-import.service",
    "registry-import.path",
    "registry-miss.service",
    { name: "registry-import-again.service", enabled: false },
  ],
  volumes: { registry: "/ext/registry", images: "/ext/images" },
  // What `planet test --conformance` (or a user) pipes a tar of OCI layout folders into to import them.
  env: { PLANET_IMAGES_IMPORT: "/usr/lib/planet/registry-import-stdin" },
  files: { "files/": "/" },
  certs: [
    {
      name: "registry",
      cn: "planet-registry",
      sans: ["planet-master", "localhost", "registry.local", "127.0.0.1", "$PUBLIC_IP", "$IPS", "$HOSTS"],
      usage: ["server"],
    },
  ],
  checks: [
    { name: "registry-v2", http: "https://127.0.0.1:5000/v2/", tls: "registry-client", expect: "{}" },
    { name: "registry-import", unit: "registry-import.service" },
    { name: "registry-miss", unit: "registry-miss.service" },
  ],
});
