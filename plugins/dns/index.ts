import { definePlugin } from "../../core/plugin.ts";

const MASTER = "https://planet-master:6443";

/**
 * Cluster DNS: CoreDNS as a unit in every bubble, on the node's address, with its `kubernetes`
 * plugin reading the API through its host's own read-only certificate. Pods reach it through the
 * `kube-dns` Service at the 10th address of the service subnet (the kubeadm and k3s convention),
 * whose endpoints the masters keep (every Ready node whose CoreDNS answers): no node writes any
 * kube-system object. Everything outside `cluster.local` is forwarded to the host's resolvers (read
 * when the bubble starts), `--dns-zones` to their own servers; `--dns-hosts` entries answer from a
 * hosts block. Only the cluster's pods and hosts are answered (PLANET_DNS_ALLOW adds networks).
 * Processes inside the bubble resolve cluster names too.
 */
export default definePlugin({
  name: "dns",
  description: "CoreDNS for cluster.local (kube-dns Service), forwarding to the host's resolvers",
  requires: ["secrets", "kube-node"],
  roles: ["master", "node"],
  assets: ["coredns"],
  packages: ["bind9-dnsutils"],
  // A master says ready once cluster DNS answers through the kube-dns Service (dns-ready).
  units: [
    "coredns.service",
    { name: "dns-endpoints.service", roles: ["master"] },
    { name: "dns-ready.service", roles: ["master"] },
  ],
  files: { "files/": "/" },
  manifests: "manifests",
  env: { PLANET_DNS_ALLOW: "" },
  certs: [
    // Each host's own, read-only (the planet:coredns group may list and watch, nothing more).
    { name: "coredns", cn: "planet:coredns:$NODE_NAME", org: ["planet:coredns"], usage: ["client"], kubeconfig: MASTER },
    // The masters' writer of the kube-dns endpoints (kube-system EndpointSlices, and reading Nodes).
    {
      name: "dns-endpoints",
      cn: "planet:dns-endpoints",
      usage: ["client"],
      kubeconfig: "https://127.0.0.1:6443",
      roles: ["master"],
    },
  ],
  checks: [
    { name: "dns-coredns-running", unit: "coredns.service" },
    { name: "dns-endpoints-running", unit: "dns-endpoints.service", roles: ["master"] },
    { name: "dns-cluster-lookup", command: ["/usr/lib/planet/dns-check", "cluster"] },
    { name: "dns-upstream", command: ["/usr/lib/planet/dns-check", "upstream"], severity: "warning" },
  ],
});
