import type { TargetDef } from "../core/resolve.ts";

/** A master's plugins: the control plane, a tainted Node of its own and the add-ons; `dev` carries the same. */
const master = [
  "secrets",
  "etcd",
  "kube-master",
  "kube-node",
  "flannel",
  "dns",
  "serf",
  "registry",
  "agent",
  "metrics",
  "storage",
  "netpol",
  "helm",
];

/** Targets as data: which plugins each image carries. `dev` is master + node on one host. */
export const targets: Record<string, TargetDef> = {
  master: {
    description:
      "control plane: etcd, apiserver, controller-manager, scheduler, serf, registry, agent — and a tainted Node (kubelet, flannel, CoreDNS)",
    roles: ["master"],
    plugins: [...master],
  },
  node: {
    description:
      "worker: containerd, kubelet, kube-proxy, flannel, CoreDNS, serf, agent, every master through a local load balancer",
    roles: ["node"],
    plugins: ["secrets", "kube-node", "flannel", "dns", "serf", "agent", "apilb", "storage", "netpol"],
  },
  conformance: {
    description: "a bundle, not an image: e2e.test, ginkgo and the conformance images (planet test --conformance)",
    roles: ["master"],
    plugins: ["conformance"],
    bundle: { assets: ["e2e"] },
  },
  dev: {
    description: "master and node on one host — what `make dev` builds and `make dev-start` boots",
    roles: ["master", "node"],
    plugins: [...master],
  },
};
