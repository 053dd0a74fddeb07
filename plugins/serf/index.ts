import { definePlugin } from "../../core/plugin.ts";

/**
 * Serf gossip membership between the cluster's nodes, encrypted with a key from `planet secrets init`;
 * its local RPC port asks for a per-boot key (`/usr/lib/planet/serf-rpc` passes it).
 */
export default definePlugin({
  name: "serf",
  description: "serf 0.10 gossip membership (encrypted), members tagged with role and cluster",
  requires: ["secrets"],
  roles: ["master", "node"],
  ports: [7373, 7946],
  assets: ["serf"],
  units: ["serf.service"],
  files: { "files/": "/" },
  // How the agent lists the cluster's members: serf's JSON ({members: [{name, addr, status, tags}]}).
  env: {
    PLANET_MEMBERS_COMMAND: "/usr/lib/planet/serf-rpc members -format=json",
    // How `planet leave` leaves (gracefully, then serf stays down) and `planet remove <name>` takes
    // another member out at once (not 24 h later, when serf would reap a failed one).
    PLANET_MEMBER_LEAVE_COMMAND: "/usr/lib/planet/serf-leave",
    PLANET_MEMBER_REMOVE_COMMAND: "/usr/lib/planet/serf-rpc force-leave -prune",
  },
  // Not a certificate: 32 random bytes, base64, serf's gossip key.
  certs: [{ name: "serf", randomBytes: 32 }],
  checks: [{ name: "serf-members", command: ["/usr/lib/planet/serf-rpc", "members", "-status=alive"] }],
});
