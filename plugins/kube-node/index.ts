import { definePlugin } from "../../core/plugin.ts";

const MASTER = "https://planet-master:6443";
const IMAGES = "/usr/share/planet/images";

export default definePlugin({
  name: "kube-node",
  description: "Kubernetes node: containerd 2 (CRI), runc, kubelet, kube-proxy, CNI bridge, crictl, bundled images",
  requires: ["secrets"],
  ports: [10248, 10250, 10256],
  // Masters run it too and register as tainted control-plane Nodes (kubeadm's way).
  roles: ["master", "node"],
  assets: ["kubernetes", "containerd", "runc", "cni-plugins", "crictl", "busybox-static"],
  packages: ["conntrack", "ebtables", "ethtool", "socat"],
  units: ["kube-node-cleanup.service", "containerd.service", "planet-images.service", "kubelet.service", "kube-proxy.service"],
  files: { "files/": "/" },
  volumes: { containerd: "/ext/containerd" },
  env: { KUBE_KUBELET_FLAGS: "", KUBE_PROXY_FLAGS: "" },
  certs: [
    { name: "kubelet", cn: "system:node:$NODE_NAME", org: ["system:nodes"], usage: ["client"], kubeconfig: MASTER },
    {
      name: "kubelet-server",
      cn: "$NODE_NAME",
      sans: ["$NODE_NAME", "localhost", "127.0.0.1", "$PUBLIC_IP", "$IPS", "$HOSTS"],
      usage: ["server"],
    },
    { name: "kube-proxy", cn: "system:kube-proxy", usage: ["client"], kubeconfig: MASTER },
  ],
  checks: [
    { name: "kube-node-containerd-running", unit: "containerd.service" },
    { name: "kube-node-kubelet-healthz", http: "http://127.0.0.1:10248/healthz", expect: "ok" },
    { name: "kube-node-kube-proxy-healthz", http: "http://127.0.0.1:10256/healthz" },
  ],
  images: [
    {
      ref: "registry.k8s.io/pause:3.10.2",
      files: { "kubernetes:pause": "/pause" },
      entrypoint: ["/pause"],
      path: `${IMAGES}/pause.tar`,
    },
    {
      ref: "docker.io/library/busybox:local",
      files: { "busybox-static:bin/busybox": "/bin/busybox" },
      links: Object.fromEntries(
        [
          "sh",
          "sleep",
          "ls",
          "cat",
          "echo",
          "env",
          "hostname",
          "id",
          "ip",
          "nc",
          "ping",
          "ps",
          "wget",
          "true",
          "false",
          "mkdir",
          "httpd",
          "nslookup",
          "grep",
          "head",
        ].map((a) => [`/bin/${a}`, "busybox"]),
      ),
      cmd: ["sh"],
      path: `${IMAGES}/busybox.tar`,
    },
  ],
});
