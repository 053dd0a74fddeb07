import { definePlugin } from "../../core/plugin.ts";

const API = "https://127.0.0.1:6443";

export default definePlugin({
  name: "kube-master",
  description: "Kubernetes control plane: kube-apiserver, kube-controller-manager, kube-scheduler",
  requires: ["etcd", "secrets"],
  ports: [6443, 10257, 10259],
  roles: ["master"],
  assets: ["kubernetes"],
  units: [
    "kube-apiserver.service",
    "kube-controller-manager.service",
    "kube-scheduler.service",
    "planet-manifests.service",
    "kube-master-node.service",
    // Boot ends (and planet start says ready) once a pod can be created: the default ServiceAccount is there.
    "kube-ready.service",
  ],
  files: { "files/": "/" },
  // The audit log (rotated by the apiserver), kept on the host beside the other data.
  volumes: { audit: "/ext/audit" },
  env: { KUBE_APISERVER_PORT: "6443", KUBECONFIG: "/var/state/admin.kubeconfig" },
  certs: [
    {
      name: "apiserver",
      cn: "kube-apiserver",
      sans: [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "planet-master",
        "localhost",
        "127.0.0.1",
        "$SERVICE_IP",
        "$DOMAIN",
        "$PUBLIC_IP",
        "$IPS",
        "$HOSTS",
      ],
      usage: ["server"],
    },
    { name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", org: ["system:masters"], usage: ["client"] },
    { name: "apiserver-etcd-client", cn: "kube-apiserver-etcd-client", usage: ["client"], issuer: "etcd-ca" },
    { name: "front-proxy-ca", cn: "front-proxy-ca", usage: ["ca"], keyRoles: ["master"] },
    { name: "front-proxy-client", cn: "front-proxy-client", usage: ["client"], issuer: "front-proxy-ca" },
    // Also their serving certificates on 10259/10257, so health checks verify them against the CA.
    {
      name: "scheduler",
      cn: "system:kube-scheduler",
      sans: ["localhost", "127.0.0.1"],
      usage: ["client", "server"],
      kubeconfig: API,
    },
    {
      name: "controller-manager",
      cn: "system:kube-controller-manager",
      sans: ["localhost", "127.0.0.1"],
      usage: ["client", "server"],
      kubeconfig: API,
    },
    { name: "admin", cn: "admin", org: ["system:masters"], usage: ["client"], kubeconfig: "https://$PUBLIC_IP:6443" },
    { name: "sa", keyPair: true },
    // The key Secrets are encrypted with in etcd (secretbox): every master shares it, nodes never see it.
    { name: "encryption", randomBytes: 32 },
  ],
  checks: [
    { name: "kube-master-apiserver-readyz", http: `${API}/readyz`, tls: "admin", expect: "ok" },
    { name: "kube-master-controller-manager-healthz", http: "https://127.0.0.1:10257/healthz", tls: "admin", expect: "ok" },
    {
      name: "kube-master-encryption",
      command: ["/usr/lib/planet/apiserver-encryption", "check"],
      severity: "warning",
    },
    { name: "kube-master-scheduler-healthz", http: "https://127.0.0.1:10259/healthz", tls: "admin", expect: "ok" },
  ],
  // Kubernetes' version skew: no skipped minor (apiservers first: masters upgrade before nodes).
  upgrade: { skew: [{ asset: "kubernetes", maxMinorStep: 1 }] },
});
