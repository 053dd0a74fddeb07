import { definePlugin } from "../../core/plugin.ts";

/**
 * The cluster CA every other plugin's certificates chain to, etcd's own CA, and the daily renewal
 * of leaves that are about to expire (`planet secrets renew`, where the directory holds the CAs).
 */
export default definePlugin({
  name: "secrets",
  description: "cluster PKI: the root CA and daily renewal of expiring certificates",
  roles: ["master", "node"],
  units: [{ name: "planet-secrets-renew.service", enabled: false }, "planet-secrets-renew.timer"],
  certs: [
    // Every CA's key goes to the masters (as kubeadm's control-plane nodes hold them): a master renews
    // its own leaves unattended. A node holds none.
    { name: "root", cn: "planet-ca", org: ["planet"], usage: ["ca"], keyRoles: ["master"] },
    // etcd trusts only its own CA: a certificate from the cluster CA opens nothing there.
    { name: "etcd-ca", cn: "planet-etcd-ca", org: ["planet"], usage: ["ca"], keyRoles: ["master"] },
    // The masters' signer at run time: the controller-manager's for approved CSRs (kubelet rotation)
    // and the masters' agents' for hosts that join with a token; client-ca trusts it beside the root.
    { name: "csr-signer", cn: "planet-csr-signer", usage: ["ca"], keyRoles: ["master"] },
    { name: "client-ca", bundle: ["root", "csr-signer"] },
  ],
  checks: [
    // Due within 30 days: renewal has a month to happen (the daily timer). Within 7: nothing renewed
    // it, and the host is days from failing TLS, so it turns the host degraded.
    { name: "secrets-valid", command: ["/usr/bin/planet", "secrets", "check", "--quiet", "/var/state"], severity: "warning" },
    {
      name: "secrets-expiry-critical",
      command: ["/usr/bin/planet", "secrets", "check", "--quiet", "--warn-days", "7", "/var/state"],
      severity: "critical",
    },
  ],
});
