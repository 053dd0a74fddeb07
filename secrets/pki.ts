/**
 * The PKI library behind `planet secrets`: one CA issues every certificate plugins request.
 * node-forge for X.509; RSA keys come from its native path (node:crypto under Bun), in parallel.
 */
import { createPrivateKey, randomBytes, sign } from "node:crypto";
import { isIP } from "node:net";
import forge from "node-forge";

const { pki } = forge;

export type Usage = "server" | "client" | "peer" | "ca";

/** A request with every placeholder already substituted. */
export interface IssueRequest {
  name: string;
  cn: string;
  org?: string[];
  /** DNS names and IP addresses. */
  sans: string[];
  usage: Usage[];
}

export interface KeyPair {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

const DAY = 86_400_000;

export function generateKey(): Promise<forge.pki.rsa.KeyPair> {
  return new Promise((resolve, reject) =>
    pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001, workers: -1 }, (err, keys) => (err ? reject(err) : resolve(keys))),
  );
}

/**
 * Signs with node:crypto instead of forge's JavaScript RSA (≈40 ms a signature): forge builds the
 * to-be-signed structure, BoringSSL signs it.
 */
function signCert(cert: forge.pki.Certificate, key: forge.pki.rsa.PrivateKey): void {
  const oid = pki.oids.sha256WithRSAEncryption as string;
  cert.siginfo.algorithmOid = oid;
  cert.signatureOid = oid;
  cert.md = forge.md.sha256.create();
  const tbsOf = (pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate;
  const tbs = forge.asn1.toDer(tbsOf(cert)).getBytes();
  const der = sign("sha256", Buffer.from(tbs, "binary"), createPrivateKey(pki.privateKeyToPem(key)));
  cert.signature = der.toString("binary");
}

function serial(): string {
  // Positive 128-bit serial: clear the top bit so it is not read as negative.
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString("hex");
}

function subject(cn: string, org: string[] = []): forge.pki.CertificateField[] {
  return [{ shortName: "CN", value: cn }, ...org.map((o) => ({ shortName: "O", value: o }))];
}

function altNames(sans: string[]): { type: number; value?: string; ip?: string }[] {
  return sans.map((s) => (isIP(s) ? { type: 7, ip: s } : { type: 2, value: s }));
}

/** A self-signed CA (10 years by default). */
export async function createCA(cn: string, org: string[] = [], validityDays = 3650): Promise<KeyPair> {
  const keys = await generateKey();
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Date.now() + validityDays * DAY);
  cert.setSubject(subject(cn, org));
  cert.setIssuer(subject(cn, org));
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  signCert(cert, keys.privateKey);
  return { cert, key: keys.privateKey };
}

/** Issues a leaf from `ca`; `key` reuses an existing key pair (renewal keeps keys). */
export async function issue(
  req: IssueRequest,
  ca: KeyPair,
  validityDays: number,
  key?: forge.pki.rsa.PrivateKey,
): Promise<KeyPair> {
  const privateKey = key ?? (await generateKey()).privateKey;
  return { cert: certify(req, ca, validityDays, pki.setRsaPublicKey(privateKey.n, privateKey.e)), key: privateKey };
}

/** A leaf certificate from `ca` for a public key whose private half `ca`'s holder never sees (a CSR's). */
export function certify(
  req: IssueRequest,
  ca: KeyPair,
  validityDays: number,
  publicKey: forge.pki.rsa.PublicKey,
): forge.pki.Certificate {
  const cert = pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Date.now() + validityDays * DAY);
  cert.setSubject(subject(req.cn, req.org));
  cert.setIssuer(ca.cert.subject.attributes);
  const server = req.usage.includes("server") || req.usage.includes("peer");
  const client = req.usage.includes("client") || req.usage.includes("peer");
  const ext: object[] = [
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: server, clientAuth: client },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes() },
  ];
  if (req.sans.length) ext.push({ name: "subjectAltName", altNames: altNames(req.sans) });
  cert.setExtensions(ext);
  signCert(cert, ca.key);
  return cert;
}

/**
 * A PKCS#10 request for `key`: what a joining host sends so that its private key never leaves it.
 * The signer takes only the public key and the proof of possession; names come from its own request.
 */
export function csrPem(name: string, key: forge.pki.rsa.PrivateKey): string {
  const csr = pki.createCertificationRequest();
  csr.publicKey = pki.setRsaPublicKey(key.n, key.e);
  csr.setSubject([{ shortName: "CN", value: name }]);
  csr.sign(key, forge.md.sha256.create());
  return pki.certificationRequestToPem(csr);
}

/** The public key of a PKCS#10 request whose signature checks out, or null. */
export function csrPublicKey(pem: string): forge.pki.rsa.PublicKey | null {
  try {
    const csr = pki.certificationRequestFromPem(pem);
    return csr.verify() ? (csr.publicKey as forge.pki.rsa.PublicKey) : null;
  } catch {
    return null;
  }
}

export const certPem = (c: forge.pki.Certificate): string => pki.certificateToPem(c);
/** PKCS#1 `RSA PRIVATE KEY`, as the original planet wrote them. */
export const keyPem = (k: forge.pki.rsa.PrivateKey): string => pki.privateKeyToPem(k);
export const publicKeyPem = (k: forge.pki.rsa.PrivateKey): string => pki.publicKeyToPem(pki.setRsaPublicKey(k.n, k.e));

export function parseCert(pem: string): forge.pki.Certificate {
  return pki.certificateFromPem(pem);
}
export function parseKey(pem: string): forge.pki.rsa.PrivateKey {
  return pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
}

/** Every certificate of a PEM text (a CA's trust during a rotation holds two), each as its own PEM. */
export function pemsOf(text: string): string[] {
  return (
    text
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----(\r?\n)?/g)
      ?.map((p) => (p.endsWith("\n") ? p : `${p}\r\n`)) ?? []
  );
}

/** Whether two PEM certificates are the same certificate (whatever their line endings). */
export function sameCert(a: string, b: string): boolean {
  return a.replace(/\s/g, "") === b.replace(/\s/g, "");
}

/** True when any certificate of the PEM text `trust` signed `cert`. */
export function signedByAny(cert: forge.pki.Certificate, trust: string): boolean {
  return pemsOf(trust).some((pem) => signedBy(cert, parseCert(pem)));
}

/** True when `key` is the private half of `cert`'s public key. */
export function keyMatches(cert: forge.pki.Certificate, key: forge.pki.rsa.PrivateKey): boolean {
  const pub = cert.publicKey as forge.pki.rsa.PublicKey;
  return pub.n.equals(key.n) && pub.e.equals(key.e);
}

/** True when `ca` signed `cert`. */
export function signedBy(cert: forge.pki.Certificate, ca: forge.pki.Certificate): boolean {
  try {
    return ca.verify(cert);
  } catch {
    return false;
  }
}

/** DNS and IP SANs of a certificate. */
export function sansOf(cert: forge.pki.Certificate): string[] {
  const ext = cert.getExtension("subjectAltName") as { altNames?: { type: number; value?: string; ip?: string }[] } | null;
  return (ext?.altNames ?? []).map((a) => (a.type === 7 ? (a.ip ?? "") : (a.value ?? "")));
}

export function subjectText(cert: forge.pki.Certificate): string {
  return cert.subject.attributes.map((a) => `${a.shortName}=${a.value}`).join(",");
}

/** A kubeconfig with embedded CA and client credentials. */
export function kubeconfig(opts: { server: string; ca: string; cert: string; key: string; user: string }): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: planet",
    "  cluster:",
    `    certificate-authority-data: ${b64(opts.ca)}`,
    `    server: ${opts.server}`,
    "users:",
    `- name: ${opts.user}`,
    "  user:",
    `    client-certificate-data: ${b64(opts.cert)}`,
    `    client-key-data: ${b64(opts.key)}`,
    "contexts:",
    "- name: planet",
    "  context:",
    "    cluster: planet",
    `    user: ${opts.user}`,
    "current-context: planet",
    "",
  ].join("\n");
}
