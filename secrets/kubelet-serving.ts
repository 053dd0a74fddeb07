/**
 * Approval of kubelets' serving-certificate requests (signer `kubernetes.io/kubelet-serving`), which
 * the controller-manager signs but never approves by itself: a request is approved only when a node
 * asks for itself — requester `system:node:<n>` in `system:nodes`, subject that same name, usages of
 * a TLS server, and every DNS name and IP address one its Node object reports. Anything else is
 * denied with the reason, so a node cannot get a certificate for another node's name or address, or
 * for a master's. The client-certificate renewals (`kube-apiserver-client-kubelet`) are approved by
 * the controller-manager's own approver (RBAC `selfnodeclient`).
 */
import forge from "node-forge";

export const KUBELET_SERVING = "kubernetes.io/kubelet-serving";

export interface CsrContent {
  cn: string;
  orgs: string[];
  dns: string[];
  ips: string[];
  /** e-mail addresses and URIs: a kubelet asks for neither. */
  other: string[];
}

const OID_CN = "2.5.4.3";
const OID_O = "2.5.4.10";
const OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const OID_SAN = "2.5.29.17";

/** An IP address's bytes in text (IPv4 dotted, IPv6 full groups, lower case). */
function ipText(bytes: string): string {
  const b = [...bytes].map((c) => c.charCodeAt(0));
  if (b.length === 4) return b.join(".");
  const groups: string[] = [];
  for (let i = 0; i < b.length; i += 2) groups.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16));
  return groups.join(":");
}

/** An address as compared here: IPv6 with every group written out (`fd00::1` → `fd00:0:0:0:0:0:0:1`). */
function normalIp(a: string): string {
  if (!a.includes(":")) return a;
  const [head, tail] = a.split("::");
  const h = head ? head.split(":") : [];
  const t = tail === undefined ? [] : tail ? tail.split(":") : [];
  const fill = tail === undefined ? [] : Array(Math.max(0, 8 - h.length - t.length)).fill("0");
  return [...h, ...fill, ...t].map((g) => Number.parseInt(g, 16).toString(16)).join(":");
}

const children = (a: forge.asn1.Asn1): forge.asn1.Asn1[] => (Array.isArray(a.value) ? a.value : []);

/**
 * The subject and subject alternative names of a PKCS#10 request, read from its ASN.1 alone: the
 * kubelet's keys are ECDSA, which node-forge's request parser does not take. Throws on a malformed one.
 */
export function csrContent(pem: string): CsrContent {
  const msg = forge.pem.decode(pem).find((m) => m.type === "CERTIFICATE REQUEST" || m.type === "NEW CERTIFICATE REQUEST");
  if (!msg) throw new Error("not a PEM certificate request");
  const info = children(forge.asn1.fromDer(msg.body))[0];
  if (!info) throw new Error("a certificate request without its info");
  const [, name, , attrs] = children(info);
  const out: CsrContent = { cn: "", orgs: [], dns: [], ips: [], other: [] };
  for (const rdn of children(name as forge.asn1.Asn1))
    for (const atv of children(rdn)) {
      const [oid, value] = children(atv);
      const o = forge.asn1.derToOid(oid?.value as string);
      if (o === OID_CN) out.cn = String(value?.value);
      else if (o === OID_O) out.orgs.push(String(value?.value));
    }
  for (const attr of attrs ? children(attrs) : []) {
    const [oid, set] = children(attr);
    if (forge.asn1.derToOid(oid?.value as string) !== OID_EXTENSION_REQUEST) continue;
    for (const ext of children(children(set as forge.asn1.Asn1)[0] as forge.asn1.Asn1)) {
      const parts = children(ext);
      if (forge.asn1.derToOid(parts[0]?.value as string) !== OID_SAN) continue;
      const names = forge.asn1.fromDer(parts[parts.length - 1]?.value as string);
      for (const gn of children(names)) {
        if (gn.type === 2) out.dns.push(String(gn.value));
        else if (gn.type === 7) out.ips.push(ipText(String(gn.value)));
        else out.other.push(String(gn.value));
      }
    }
  }
  return out;
}

export interface ServingCsr {
  spec: { request: string; signerName: string; username?: string; groups?: string[]; usages?: string[] };
}

export interface NodeAddresses {
  name: string;
  addresses: { type: string; address: string }[];
}

/**
 * Why a kubelet-serving request must not be approved, or null when it may be: `node` is the Node the
 * requester is (null when there is none).
 */
export function servingRefusal(csr: ServingCsr, node: NodeAddresses | null): string | null {
  const user = csr.spec.username ?? "";
  const m = /^system:node:(.+)$/.exec(user);
  if (!m || !csr.spec.groups?.includes("system:nodes")) return `requested by ${user || "nobody"}, not a node`;
  let c: CsrContent;
  try {
    c = csrContent(Buffer.from(csr.spec.request, "base64").toString("utf8"));
  } catch (e) {
    return `unreadable request: ${(e as Error).message}`;
  }
  if (c.cn !== user) return `subject ${c.cn} is not the requester ${user}`;
  if (c.orgs.join(",") !== "system:nodes") return `organization ${c.orgs.join(",") || "none"}, not system:nodes`;
  const allowed = new Set(["digital signature", "key encipherment", "server auth"]);
  const bad = (csr.spec.usages ?? []).filter((u) => !allowed.has(u));
  if (bad.length || !csr.spec.usages?.includes("server auth")) return `usages ${(csr.spec.usages ?? []).join(",")}`;
  if (c.other.length) return `names other than DNS and IP: ${c.other.join(", ")}`;
  if (!c.dns.length && !c.ips.length) return "no DNS name or IP address";
  if (!node) return `no Node ${m[1]}`;
  const known = new Set([node.name, ...node.addresses.map((a) => normalIp(a.address))]);
  const foreign = [...c.dns, ...c.ips].filter((n) => !known.has(n));
  if (foreign.length) return `${foreign.join(", ")} not among Node ${node.name}'s addresses`;
  return null;
}
