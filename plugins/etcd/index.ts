import { definePlugin } from "../../core/plugin.ts";

export default definePlugin({
  name: "etcd",
  description: "etcd 3.7 key-value store holding the cluster state, TLS for clients and peers",
  requires: ["secrets"],
  ports: [2379, 2380, 2381],
  roles: ["master"],
  assets: ["etcd"],
  units: ["etcd.service"],
  files: { "files/": "/" },
  env: {
    PLANET_ETCD_MEMBER_NAME: "${KUBE_NODE_NAME}",
    ETCD_INITIAL_CLUSTER: "${PLANET_ETCD_MEMBER_NAME}=https://${PLANET_PUBLIC_IP}:2380",
    ETCD_INITIAL_CLUSTER_STATE: "new",
  },
  certs: [
    {
      name: "etcd",
      cn: "etcd",
      sans: ["localhost", "etcd", "127.0.0.1", "$PUBLIC_IP", "$IPS", "$HOSTS"],
      usage: ["server", "client", "peer"],
    },
  ],
  checks: [{ name: "etcd-healthz", http: "https://127.0.0.1:2379/health", tls: "etcd", expect: '"health":"true"' }],
});
