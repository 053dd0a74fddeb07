import { definePlugin } from "../../core/plugin.ts";

const MASTER = "https://planet-master:6443";

/**
 * Cluster DNS: CoreDNS as a unit in every bubble, on the node's address, with its `kubernetes`
 * plugin reading the API through its own certificate. Pods reach it through the `kube-dns` Service
 * at the 10th address of the service subnet (the kubeadm and k3s convention); each bubble adds its
 * own address to that Service's endpoints. Everything outside `cluster.local` is forwarded to the
 * host's resolvers (read when the bubble starts), `--dns-zones` to their own servers; `--dns-hosts`
 * entries answer from a hosts block. Processes inside the bubble resolve cluster names too.
 */
export default definePlugin({
  name: "dns",
  description: "CoreDNS for cluster.local (kube-dns Service), forwarding to the host's resolvers",
  requires: ["secrets", "kube-node"],
  roles: ["master", "node"],
  assets: ["coredns"],
  packages: ["bind9-dnsutils"],
  units: ["coredns.service"],
  files: { "files/": "/" },
  manifests: "manifests",
  certs: [{ name: "coredns", cn: "system:coredns", usage: ["client"], kubeconfig: MASTER }],
  checks: [
    { name: "dns-coredns-running", unit: "coredns.service" },
    { name: "dns-cluster-lookup", command: ["/usr/lib/planet/dns-check", "cluster"] },
    { name: "dns-upstream", command: ["/usr/lib/planet/dns-check", "upstream"], severity: "warning" },
  ],
});
