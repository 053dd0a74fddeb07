import { defineAsset } from "../../core/build/assets.ts";

/**
 * Kubernetes v1.20.2 server binaries, built from Debian's source package with Debian's Go (~11 min
 * on 2 cores, cached). To pin a newer release from the internet instead, swap `source` for
 * `{ kind: "url", url: ".../kubernetes-server-linux-amd64.tar.gz", sha256: "...", extract: "tar" }`
 * and point `files` at `kubernetes/server/bin/…`.
 */
export default defineAsset({
  name: "kubernetes",
  version: "1.20.2",
  description: "kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, pause",
  source: {
    kind: "debian-source",
    package: "kubernetes",
    version: "1.20.5+really1.20.2-1.1+deb12u1",
    dscSha256: "19fa1da5aefcef673894ac9511986bd98a14410cf8eea0b626613c30df435257",
    build: "build.sh",
  },
  files: {
    "kube-apiserver": "/usr/bin/kube-apiserver",
    "kube-controller-manager": "/usr/bin/kube-controller-manager",
    "kube-scheduler": "/usr/bin/kube-scheduler",
    kubelet: "/usr/bin/kubelet",
    "kube-proxy": "/usr/bin/kube-proxy",
  },
});
