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
  // The agent's mTLS API: a client certificate's role (O=planet:<role>) decides what it may call
  // (core/agent/roles.ts). Every host reads as a node; only masters and the operator steer.
  certs: [
    {
      name: "planet-rpc-server",
      cn: "planet-agent",
      sans: ["localhost", "127.0.0.1", "$PUBLIC_IP", "$IPS", "$HOSTS"],
      usage: ["server"],
    },
    { name: "planet-rpc-client", cn: "planet-agent:$NODE_NAME", org: ["planet:node"], usage: ["client"] },
    {
      name: "planet-rpc-master",
      cn: "planet-agent:$NODE_NAME",
      org: ["planet:master"],
      usage: ["client"],
      roles: ["master"],
    },
    // The operator's, in the cluster directory only (no host has the role "admin").
    { name: "planet-rpc-admin", cn: "planet-admin", org: ["planet:admin"], usage: ["client"], roles: [] },
    // etcd user planet-agent: the leader election's prefix only (etc/planet/etcd-users.d/agent). Masters
    // only: a node's agent asks the masters' agents who leads, and holds no etcd credential.
    { name: "agent-etcd-client", cn: "planet-agent", usage: ["client"], issuer: "etcd-ca", roles: ["master"] },
  ],
});
