import { definePlugin } from "../../core/plugin.ts";

/**
 * The pod network between hosts, as the original planet ran it: flanneld with the vxlan backend,
 * each host leasing a subnet of `--pod-subnet` (`--pod-subnet-size` bits) from etcd at boot and
 * writing /run/flannel/subnet.env, which the `flannel` CNI plugin turns into a bridge on that subnet.
 * The node's network is ready as soon as the lease is taken — no wait for the controller-manager's
 * node IPAM. `--disable-flannel` leaves this plugin out at start; pods then use kube-node's bridge on
 * the node's podCIDR.
 */
export default definePlugin({
  name: "flannel",
  description: "flannel vxlan overlay: per-host subnet leases in etcd, CNI conflist, masquerade",
  requires: ["secrets", "kube-node"],
  roles: ["master", "node"],
  assets: ["flannel", "cni-flannel"],
  units: ["flannel-cleanup.service", "flanneld.service"],
  files: { "files/": "/" },
  env: { FLANNEL_ETCD_ENDPOINTS: "${PLANET_ETCD_ENDPOINTS}" },
  // etcd's auth limits this certificate (user flannel) to flannel's prefix: etc/planet/etcd-users.d.
  certs: [{ name: "flannel", cn: "flannel", usage: ["client"], issuer: "etcd-ca" }],
  checks: [
    { name: "flannel-flanneld-running", unit: "flanneld.service" },
    // One etcd read by a fresh `planet kv` process: seconds on a loaded host, so more than the default 5 s.
    { name: "flannel-lease", command: ["/usr/lib/planet/flannel-check", "lease"], timeoutMs: 15_000 },
    { name: "flannel-vxlan-up", command: ["/usr/lib/planet/flannel-check", "vxlan"] },
  ],
});
