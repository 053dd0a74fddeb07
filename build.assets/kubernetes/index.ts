import { defineAsset } from "../../core/image/assets.ts";

/** Both packages upstream's hack/lib/version.sh stamps, with every variable it sets. */
export const stamp = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"].flatMap((p) => [
  `-X ${p}.gitVersion=\${version}`,
  `-X ${p}.gitMajor=\${major}`,
  `-X ${p}.gitMinor=\${minor}`,
  `-X ${p}.gitCommit=\${commit}`,
  `-X ${p}.gitTreeState=clean`,
  `-X ${p}.buildDate=\${date}`,
]);

/**
 * Kubernetes from its upstream module `k8s.io/kubernetes`, built as upstream's hack/lib/golang.sh
 * does (trimpath, `-s -w`, tags selinux,notest,grpcnotrace, no cgo). The wrapper module beside this
 * file replaces each staging module (`./staging/src/k8s.io/<name>` upstream, absent from the
 * module zip) with its published `k8s.io/<name> v0.<minor>.<patch>`. `pause` is compiled from the
 * same module's build/pause/linux/pause.c (pause.sh).
 */
export const kubernetesRecipe = (version: string, pauseScript = "pause.sh") =>
  defineAsset({
    name: "kubernetes",
    version,
    description: "kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, pause",
    source: {
      kind: "gomod",
      module: "k8s.io/kubernetes",
      version: `v${version}`,
      tags: ["selinux", "notest", "grpcnotrace"],
      ldflags: stamp,
      binaries: {
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        kubelet: "k8s.io/kubernetes/cmd/kubelet",
        "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
        kubectl: "k8s.io/kubernetes/cmd/kubectl",
      },
      script: pauseScript,
    },
    files: {
      "kube-apiserver": "/usr/bin/kube-apiserver",
      "kube-controller-manager": "/usr/bin/kube-controller-manager",
      "kube-scheduler": "/usr/bin/kube-scheduler",
      kubelet: "/usr/bin/kubelet",
      "kube-proxy": "/usr/bin/kube-proxy",
      kubectl: "/usr/bin/kubectl",
    },
  });

export default kubernetesRecipe("1.37.2");
