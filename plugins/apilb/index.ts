import { definePlugin } from "../../core/plugin.ts";

/**
 * A node reaches every master, not only the agents' leader: HAProxy (Debian's) on the node's
 * loopback forwards the apiserver (6443) and the registry (5000, 5001) to all masters, checks each
 * every second and closes the sessions of one that goes down, so the node's clients (kubelet,
 * kube-proxy, flannel, CoreDNS, containerd's pulls) reconnect to another at once — as k3s's agent
 * load balancer and k0s's node-local load balancing do. TCP passthrough: the masters' own TLS, and
 * `planet-master` (in every master's certificates) points at 127.0.0.1 on the node. The masters come
 * from the start (`--initial-cluster`, or a join) and then from the masters' agents, which the node's
 * agent writes to /run/planet/masters; a change reloads HAProxy without dropping a connection.
 */
export default definePlugin({
  name: "apilb",
  description: "node-local load balancer (HAProxy 2.6): the apiserver and the registry of every master on 127.0.0.1",
  requires: ["agent"],
  roles: ["node"],
  packages: ["haproxy"],
  ports: [6443, 5000, 5001],
  files: { "files/": "/" },
  // Named as Debian's unit, which the package enables: this one takes its place.
  units: ["haproxy.service", "apilb-masters.path", { name: "apilb-reload.service", enabled: false }],
  env: { PLANET_MASTER_LB: "127.0.0.1" },
  checks: [
    { name: "apilb-haproxy", unit: "haproxy.service" },
    { name: "apilb-apiserver", tcp: "127.0.0.1:6443" },
    // A master down is a warning here: the node carries on through the others.
    { name: "apilb-masters-up", command: ["/usr/lib/planet/apilb-config", "check"], severity: "warning" },
  ],
});
