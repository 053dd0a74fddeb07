import { definePlugin } from "../../core/plugin.ts";

const MASTER = "https://planet-master:6443";
const IMAGES = "/usr/share/planet/images";

export default definePlugin({
  name: "kube-node",
  description:
    "Kubernetes node: containerd 2 (CRI, pulls through the masters' registry), runc, kubelet, kube-proxy, CNI bridge, crictl",
  requires: ["secrets"],
  ports: [10248, 10250, 10256],
  // Masters run it too and register as tainted control-plane Nodes (kubeadm's way).
  roles: ["master", "node"],
  assets: ["kubernetes", "containerd", "runc", "cni-plugins", "crictl", "busybox"],
  packages: ["conntrack", "ebtables", "ethtool", "socat"],
  units: ["kube-node-cleanup.service", "containerd.service", "planet-images.service", "kubelet.service", "kube-proxy.service"],
  files: { "files/": "/" },
  volumes: { containerd: "/ext/containerd", "kubelet-pki": "/var/lib/kubelet-pki" },
  manifests: "manifests",
  // cni0, the pod bridge (flannel's CNI or the plain bridge without flannel): see PLANET_OWN_LINKS_FLANNEL.
  env: { KUBE_KUBELET_FLAGS: "", KUBE_PROXY_FLAGS: "", PLANET_OWN_LINKS_KUBE_NODE: "cni0" },
  certs: [
    { name: "kubelet", cn: "system:node:$NODE_NAME", org: ["system:nodes"], usage: ["client"], kubeconfig: MASTER },
    {
      // Signed by the masters' signer, as the kubelet's own serving CSRs are: the apiserver trusts
      // kubelets through csr-signer alone, so a cluster CA rotation leaves that trust as it is.
      name: "kubelet-server",
      issuer: "csr-signer",
      cn: "$NODE_NAME",
      sans: ["$NODE_NAME", "localhost", "127.0.0.1", "$PUBLIC_IP", "$IPS", "$HOSTS"],
      usage: ["server"],
    },
    { name: "kube-proxy", cn: "system:kube-proxy", usage: ["client"], kubeconfig: MASTER },
    // containerd pulls from the cluster's registry (planet-master:5000), which wants a client certificate.
    { name: "registry-client", cn: "planet-registry-client:$NODE_NAME", usage: ["client"] },
  ],
  checks: [
    { name: "kube-node-containerd-running", unit: "containerd.service" },
    { name: "kube-node-kubelet-healthz", http: "http://127.0.0.1:10248/healthz", expect: "ok" },
    { name: "kube-node-kube-proxy-healthz", http: "http://127.0.0.1:10256/healthz" },
    // Ready in the API with this image's kubelet: what an upgrade's health gate waits for.
    { name: "kube-node-registered", command: ["/usr/lib/planet/node-upgrade", "check"], timeoutMs: 15_000 },
  ],
  upgrade: {
    before: [["/usr/lib/planet/node-upgrade", "drain"]],
    after: [["/usr/lib/planet/node-upgrade", "uncordon"]],
  },
  images: [
    {
      // The sandbox image: imported into containerd on every host at boot (planet-images.service).
      ref: "registry.k8s.io/pause:3.10.2",
      files: { "kubernetes:pause": "/pause" },
      entrypoint: ["/pause"],
      path: `${IMAGES}/pause`,
    },
    {
      // busybox 1.37 built from its Debian source package (the `busybox` asset, as the conformance
      // busybox is), on Debian's glibc: dynamically linked, so its wget and nslookup resolve names (a
      // static glibc busybox cannot load NSS). Debian 12's own busybox 1.35 crashes in `wget -T`.
      // Served by the masters' registry.
      ref: "docker.io/library/busybox:latest",
      aliases: ["docker.io/library/busybox:1.35"],
      debian: ["libc6"],
      files: { "busybox:busybox": "/bin/busybox" },
      write: {
        "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "/etc/group": "root:x:0:\nnogroup:x:65534:\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
      },
      run: [["/bin/busybox", "--install", "-s", "/bin"]],
      cmd: ["sh"],
      path: `${IMAGES}/busybox`,
    },
  ],
});
