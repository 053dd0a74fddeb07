import { definePlugin } from "../../core/plugin.ts";

export default definePlugin({
  name: "etcd",
  description: "etcd 3.7 key-value store holding the cluster state, TLS for clients and peers",
  requires: ["secrets"],
  ports: [2379, 2380, 2381],
  roles: ["master"],
  assets: ["etcd"],
  files: { "files/": "/" },
  units: [
    "etcd.service",
    "etcd-member.service",
    "etcd-auth.service",
    { name: "etcd-snapshot.service", enabled: false },
    "etcd-snapshot.timer",
  ],
  volumes: { etcd: "/ext/etcd" },
  env: {
    PLANET_ETCD_MEMBER_NAME: "${KUBE_NODE_NAME}",
    // Every master of --initial-cluster (name=https://ip:2380,…), computed by planet start.
    ETCD_INITIAL_CLUSTER: "${PLANET_ETCD_INITIAL_CLUSTER}",
    // `existing` on a master that joined a running cluster with a token (planet start sets it).
    ETCD_INITIAL_CLUSTER_STATE: "${PLANET_CLUSTER_STATE}",
    // Scheduled snapshots into the etcd volume (systemd calendar syntax; default twice a day), how
    // many to keep, and a folder in the bubble to copy each to (a --volume of another disk; none by default).
    PLANET_ETCD_SNAPSHOT_SCHEDULE: "*-*-* 00,12:00:00",
    PLANET_ETCD_SNAPSHOT_KEEP: "5",
    PLANET_ETCD_SNAPSHOT_COPY_DIR: "",
  },
  certs: [
    {
      name: "etcd",
      cn: "etcd",
      sans: ["localhost", "etcd", "127.0.0.1", "$PUBLIC_IP", "$IPS", "$HOSTS"],
      usage: ["server", "client", "peer"],
      issuer: "etcd-ca",
    },
    // etcd's root user (CN = user name): etcd-auth.service enables auth with it; only masters hold it.
    { name: "etcd-root", cn: "root", usage: ["client"], issuer: "etcd-ca" },
  ],
  // The metrics listener answers /health without a client certificate.
  checks: [
    { name: "etcd-healthz", http: "http://127.0.0.1:2381/health", expect: '"health":"true"' },
    { name: "etcd-auth", unit: "etcd-auth.service" },
    // A schedule systemd cannot parse leaves the timer dead: no snapshots are taken.
    { name: "etcd-snapshot-timer", unit: "etcd-snapshot.timer", severity: "warning" },
  ],
  upgrade: {
    // One minor at a time; 3.7 only from 3.6.11 or newer (etcd's upgrade guide).
    skew: [{ asset: "etcd", maxMinorStep: 1, floors: { "3.7": "3.6.11" } }],
    // Before the stop: a snapshot of the keyspace kept in the volume (the three newest), for an operator.
    before: [["/usr/lib/planet/etcd-snapshot"]],
    // The member's data as it was, when a rollback follows an upgrade of the only member.
    restore: { volumes: ["etcd"], if: ["/usr/lib/planet/etcd-sole-member"] },
  },
});
