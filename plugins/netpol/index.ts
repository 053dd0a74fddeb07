import { definePlugin } from "../../core/plugin.ts";

/**
 * NetworkPolicy enforced on every host: kube-router's network policy controller alone (its router
 * and service proxy stay off), as k3s embeds it beside flannel. Each host filters its own pods with
 * iptables chains and ipsets, reading pods, namespaces and policies with the kubelet's identity
 * (read-only, the grant in `manifests/`). Traffic from the host itself to its pods (kubelet probes)
 * is always let through, as upstream does; hostNetwork pods are never filtered.
 */
export default definePlugin({
  name: "netpol",
  description: "NetworkPolicy enforcement on every host: kube-router's policy controller (iptables + ipset)",
  requires: ["kube-node"],
  roles: ["master", "node"],
  assets: ["kube-router"],
  packages: ["ipset"],
  units: ["kube-router.service", "netpol-cleanup.service"],
  manifests: "manifests",
  files: { "files/": "/" },
  checks: [
    { name: "netpol-kube-router-running", unit: "kube-router.service" },
    // Its chains are in place once it synced with the apiserver: until then no policy is enforced.
    { name: "netpol-chains", command: ["/usr/lib/planet/netpol-check"], timeoutMs: 10_000 },
  ],
});
