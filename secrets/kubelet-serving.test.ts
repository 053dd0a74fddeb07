import { describe, expect, test } from "bun:test";
import forge from "node-forge";
import { csrContent, KUBELET_SERVING, type NodeAddresses, servingRefusal } from "./kubelet-serving.ts";

// What a kubelet sends (ECDSA P-256, made with openssl req): node-forge's own parser refuses EC keys.
const EC_CSR = `-----BEGIN CERTIFICATE REQUEST-----
MIIBIzCBygIBADAwMRUwEwYDVQQKDAxzeXN0ZW06bm9kZXMxFzAVBgNVBAMMDnN5
c3RlbTpub2RlOm4xMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEE/umTLYIyP0e
zmTcLJ47+g0qlC1E6i9YmS9Dkgw/L3BG/033+1/tI/0QW9KWLf8kkeuZRJX5LW8A
hqV9ffRJKqA4MDYGCSqGSIb3DQEJDjEpMCcwJQYDVR0RBB4wHIICbjGHBArZAAKH
EP0AAAAAAAAAAAAAAAAAAAEwCgYIKoZIzj0EAwIDSAAwRQIhAP979NqaE2nYxopp
gdy5RYiNdUYmpZ0YcVDu7T4GBoM5AiAOrO/eUM1MZbO+VLgFj/KiQcvho0utOW9p
W31V9egFPg==
-----END CERTIFICATE REQUEST-----`;

/** An RSA request with the given subject and alternative names. */
function csr(cn: string, orgs: string[], alt: { type: number; value?: string; ip?: string }[]): string {
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const r = forge.pki.createCertificationRequest();
  r.publicKey = keys.publicKey;
  r.setSubject([{ shortName: "CN", value: cn }, ...orgs.map((o) => ({ shortName: "O", value: o }))]);
  r.setAttributes([{ name: "extensionRequest", extensions: [{ name: "subjectAltName", altNames: alt }] }]);
  r.sign(keys.privateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(r);
}

const n1: NodeAddresses = {
  name: "n1",
  addresses: [
    { type: "InternalIP", address: "10.217.0.2" },
    { type: "Hostname", address: "n1" },
  ],
};
const request = (pem: string, over: Partial<{ username: string; groups: string[]; usages: string[] }> = {}) => ({
  spec: {
    request: Buffer.from(pem).toString("base64"),
    signerName: KUBELET_SERVING,
    username: "system:node:n1",
    groups: ["system:nodes", "system:authenticated"],
    usages: ["digital signature", "server auth"],
    ...over,
  },
});

describe("kubelet serving requests", () => {
  test("reads subject and names of a kubelet's ECDSA request, IPv6 included", () => {
    expect(csrContent(EC_CSR)).toEqual({
      cn: "system:node:n1",
      orgs: ["system:nodes"],
      dns: ["n1"],
      ips: ["10.217.0.2", "fd00:0:0:0:0:0:0:1"],
      other: [],
    });
    expect(() => csrContent("not pem")).toThrow();
  });

  test("a node's request for its own name and addresses is approved", () => {
    const own = csr(
      "system:node:n1",
      ["system:nodes"],
      [
        { type: 2, value: "n1" },
        { type: 7, ip: "10.217.0.2" },
      ],
    );
    expect(servingRefusal(request(own), n1)).toBeNull();
    const v6 = { ...n1, addresses: [...n1.addresses, { type: "InternalIP", address: "fd00::1" }] };
    expect(servingRefusal(request(EC_CSR), v6)).toBeNull();
  });

  test("anything else is refused with the reason", () => {
    const own = csr("system:node:n1", ["system:nodes"], [{ type: 2, value: "n1" }]);
    const cases: [ReturnType<typeof request>, string][] = [
      // Another host's address (the master's), another node's name, another node's subject.
      [request(csr("system:node:n1", ["system:nodes"], [{ type: 7, ip: "10.217.0.1" }])), "10.217.0.1 not among"],
      [request(csr("system:node:n1", ["system:nodes"], [{ type: 2, value: "m1" }])), "m1 not among"],
      [
        request(csr("system:node:m1", ["system:nodes"], [{ type: 2, value: "n1" }])),
        "subject system:node:m1 is not the requester",
      ],
      [request(csr("system:node:n1", ["system:masters"], [{ type: 2, value: "n1" }])), "organization system:masters"],
      [request(csr("system:node:n1", ["system:nodes"], [{ type: 6, value: "spiffe://x" }])), "names other than DNS and IP"],
      [request(csr("system:node:n1", ["system:nodes"], [])), "no DNS name or IP address"],
      [request(own, { usages: ["digital signature", "client auth"] }), "usages"],
      [request(own, { username: "system:kube-proxy", groups: ["system:authenticated"] }), "not a node"],
      [request(own, { groups: ["system:authenticated"] }), "not a node"],
      [{ spec: { ...request(own).spec, request: "bm90IGEgY3Ny" } }, "unreadable request"],
    ];
    for (const [r, why] of cases) expect(servingRefusal(r, n1)).toContain(why);
    expect(servingRefusal(request(own), null)).toBe("no Node n1");
  });
});
