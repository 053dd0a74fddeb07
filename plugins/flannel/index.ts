import { definePlugin } from "../../core/plugin.ts";

/**
 * The pod network between hosts: flanneld with the vxlan backend and the Kubernetes subnet manager,
 * as kubeadm and k3s run it. Each host's subnet is its Node's podCIDR (the controller-manager
 * allocates them from `--pod-subnet` in `--pod-subnet-size` blocks); flanneld reads the Nodes and
 * writes its own Node's annotations with the kubelet's identity, so no host holds an etcd credential
 * for it. It writes /run/flannel/subnet.env, which the `flannel` CNI plugin turns into a bridge on
 * that subnet. `--disable-flannel` leaves this plugin out at start; pods then use kube-node's bridge
 * on the node's podCIDR.
 */
export default definePlugin({
  name: "flannel",
  // Its own links: a killed bubble leaves them behind, and the start after is not refused for them.
  env: { PLANET_OWN_LINKS_FLANNEL: "flannel.1,cni0" },
  description:
    "flannel vxlan overlay: each host's subnet its Node's podCIDR (Kubernetes subnet manager), CNI conflist, masquerade",
  requires: ["secrets", "kube-node"],
  roles: ["master", "node"],
  assets: ["flannel", "cni-flannel"],
  units: ["flannel-cleanup.service", "flanneld.service"],
  files: { "files/": "/" },
  // Reading every Node (podCIDRs, VTEPs) for the nodes' identity: flannel's only grant.
  manifests: "manifests",
  checks: [
    { name: "flannel-flanneld-running", unit: "flanneld.service" },
    // subnet.env against the Node's podCIDR (one kubectl get): seconds on a loaded host.
    { name: "flannel-lease", command: ["/usr/lib/planet/flannel-check", "lease"], timeoutMs: 15_000 },
    { name: "flannel-vxlan-up", command: ["/usr/lib/planet/flannel-check", "vxlan"] },
  ],
});
