import { definePlugin } from "../../core/plugin.ts";

export default definePlugin({
  name: "agent",
  description: "planet agent: runs every plugin's health checks, leader election, status API",
  requires: ["secrets"],
  ports: [7575],
  roles: ["master", "node"],
  units: ["planet-agent.service"],
  files: { "files/": "/" },
  env: { PLANET_AGENT_PORT: "7575", PLANET_LEADER_KEY: "/planet/cluster/${KUBE_CLUSTER_ID}/master" },
  certs: [
    {
      name: "planet-rpc-server",
      cn: "planet-agent",
      sans: ["localhost", "127.0.0.1", "$PUBLIC_IP", "$IPS", "$HOSTS"],
      usage: ["server", "client"],
    },
    { name: "planet-rpc-client", cn: "planet-rpc-client", usage: ["client"] },
    // etcd user planet-agent: the leader election's prefix only (etc/planet/etcd-users.d/agent).
    { name: "agent-etcd-client", cn: "planet-agent", usage: ["client"], issuer: "etcd-ca" },
  ],
});
