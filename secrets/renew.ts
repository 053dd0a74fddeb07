/**
 * Renewal of a host's certificates through the masters, where the host holds no CA key: the host
 * sends each due certificate with a signing request made with that certificate's own key; a master
 * re-issues it with the masters' signer for the same names (subject and SANs copied from the
 * current, valid certificate), the same key and a new validity. Possession of a valid certificate's
 * key is the proof: no host can renew, or widen, a certificate it does not hold.
 */
import type forge from "node-forge";
import { PlanetError } from "../core/errors.ts";
import type { CertificateRequest, CertRequest } from "../core/plugin.ts";
import { checkSecrets } from "./check.ts";
import { SIGNER } from "./join.ts";
import {
  certify,
  certPem,
  csrPem,
  csrPublicKey,
  type IssueRequest,
  type KeyPair,
  keyMatches,
  kubeconfig,
  parseCert,
  parseKey,
  pemsOf,
  sansOf,
  signedBy,
  signedByAny,
  subjectText,
} from "./pki.ts";
import { Batch, type FileRecord, hashOf, loadCA, loadRecord, RECORD, read, rotating } from "./record.ts";

const phase = "renew";

export interface RenewRequest {
  /** Certificate request name → its current certificate (PEM). */
  certs: Record<string, string>;
  /** Certificate request name → a PKCS#10 request signed with that certificate's key. */
  csrs: Record<string, string>;
}

/** A template's CN as a pattern whose group is the node: `system:node:$NODE_NAME` → `^system:node:(…)$`. */
function cnPattern(cn: string): RegExp {
  const parts = cn.split("$NODE_NAME").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join("([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)")}$`);
}

/** The extended key usages a certificate carries, as the requests' usage words. */
function usageOf(cert: forge.pki.Certificate): string {
  const eku = cert.getExtension("extKeyUsage") as { serverAuth?: boolean; clientAuth?: boolean } | null;
  return [eku?.serverAuth ? "server" : "", eku?.clientAuth ? "client" : ""].filter(Boolean).join(",");
}
const usageWanted = (r: CertificateRequest) =>
  [
    r.usage.includes("server") || r.usage.includes("peer") ? "server" : "",
    r.usage.includes("client") || r.usage.includes("peer") ? "client" : "",
  ]
    .filter(Boolean)
    .join(",");

/**
 * On a master: proves who a host is from certificates it presents with their keys. Each must be one
 * of `requests` (a node's: never a master's or an operator's), issued by the cluster CA or the
 * signer, still valid, carry that request's organisations and usages, name one and the same node,
 * and come with a signing request carrying its own public key. Anything else refuses the whole
 * request. Returns the node and, per certificate, what a renewal would issue again.
 */
export function proveHost(
  signerDir: string,
  requests: CertRequest[],
  body: RenewRequest,
): { node: string; signer: KeyPair; proven: { req: IssueRequest; pub: forge.pki.rsa.PublicKey }[] } {
  const refuse = (why: string) => new PlanetError("RENEW_REFUSED", why, { phase });
  const signer = loadCA(signerDir, SIGNER);
  const rootPem = read(signerDir, "root.cert");
  if (!signer || !rootPem) throw refuse(`this master holds no ${SIGNER} key: it cannot renew certificates`);
  const names = Object.keys(body?.certs ?? {});
  if (!names.length) throw refuse("no certificate to renew");
  const proven: { req: IssueRequest; pub: forge.pki.rsa.PublicKey }[] = [];
  let node = "";
  for (const name of names) {
    const r = requests.find((x): x is CertificateRequest => x.name === name && "cn" in x);
    if (!r || r.usage.includes("ca") || (r.issuer && r.issuer !== "root" && r.issuer !== SIGNER))
      throw refuse(`${name} is not a certificate a host renews through the masters`);
    let current: forge.pki.Certificate;
    try {
      current = parseCert(body.certs[name] as string);
    } catch {
      throw refuse(`${name}: not a certificate`);
    }
    // Either CA of a rotation's overlap counts: a host renews while the old one is still trusted.
    if (!signedByAny(current, rootPem) && !signedByAny(current, read(signerDir, `${SIGNER}.cert`) ?? ""))
      throw refuse(`${name} was not issued by this cluster`);
    if (current.validity.notAfter.getTime() <= Date.now())
      throw refuse(`${name} expired at ${current.validity.notAfter.toISOString()}: join again with a token`);
    const cn = String(current.subject.getField("CN")?.value ?? "");
    const m = cnPattern(r.cn).exec(cn);
    if (!m) throw refuse(`${name} names ${cn}, not what a ${name} certificate names`);
    if (m[1]) {
      if (node && node !== m[1]) throw refuse(`one renewal is one node's: ${name} names ${m[1]}, another names ${node}`);
      node = m[1];
    }
    const orgs = current.subject.attributes.filter((a) => a.shortName === "O").map((a) => String(a.value));
    if (orgs.join(",") !== (r.org ?? []).join(",") || usageOf(current) !== usageWanted(r))
      throw refuse(`${name}: its organisations or usages are not a ${name} certificate's`);
    const pub = csrPublicKey(body.csrs?.[name] ?? "");
    const own = current.publicKey as forge.pki.rsa.PublicKey;
    if (!pub?.n.equals(own.n) || !pub.e.equals(own.e))
      throw refuse(`${name}: the signing request is not signed with the certificate's own key`);
    proven.push({ req: { name, cn, org: orgs, sans: sansOf(current), usage: r.usage }, pub });
  }
  if (!node) throw refuse("a renewal names its node: include a certificate that does (the kubelet's)");
  return { node, signer, proven };
}

/**
 * On a master: re-issues each certificate `proveHost` accepts, for the same names and key. Returns
 * the certificates and the node they belong to, which the caller checks is still a member (a
 * removed node renews nothing).
 */
export function answerRenew(
  signerDir: string,
  requests: CertRequest[],
  body: RenewRequest,
  validityDays = 365,
): { certs: Record<string, string>; node: string } {
  const { node, signer, proven } = proveHost(signerDir, requests, body);
  const certs = Object.fromEntries(proven.map(({ req, pub }) => [req.name, certPem(certify(req, signer, validityDays, pub))]));
  return { certs, node };
}

export interface HostRenewOptions {
  dir: string;
  /** Masters' addresses, asked in turn. */
  masters: string[];
  port: number;
  warnDays: number;
  timeoutMs?: number;
}

/** The file a CA or bundle entry of a record is written to (`root.cert`, `client-ca.pem`), else null. */
const trustFileOf = (name: string, f?: FileRecord) =>
  f?.kind === "ca" ? `${name}.cert` : f?.kind === "bundle" ? `${name}.pem` : null;

/**
 * The trust a master hands out (`GET /trust` on its agent): the certificate file of every CA and
 * bundle in its directory — public certificates only. During a CA rotation they hold old and new.
 */
export function trustFiles(dir: string): Record<string, string> {
  const record = loadRecord(dir);
  const out: Record<string, string> = {};
  for (const [name, f] of Object.entries(record?.files ?? {})) {
    if (rotating("").some((suffix) => name.endsWith(suffix))) continue;
    const file = trustFileOf(name, f);
    const text = file ? read(dir, file) : null;
    if (file && text) out[file] = text;
  }
  return out;
}

/** Asks the masters in turn over the agents' mTLS API; the first answer wins. */
async function askMasters<T>(o: HostRenewOptions, path: string, body?: unknown): Promise<T> {
  // Masters' agents serve certificates of the cluster CA itself: a host's (from the signer) is not a master.
  const tls = {
    ca: read(o.dir, "root.cert") ?? "",
    cert: read(o.dir, "planet-rpc-client.cert") ?? "",
    key: read(o.dir, "planet-rpc-client.key") ?? "",
  };
  const errors: string[] = [];
  for (const master of o.masters) {
    try {
      const res = await fetch(`https://${master}:${o.port}${path}`, {
        method: body === undefined ? "GET" : "POST",
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
        tls,
        signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
      });
      const json = (await res.json()) as T & { error?: { message: string } };
      if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
      return json;
    } catch (e) {
      errors.push(`${master}: ${(e as Error).message}`);
    }
  }
  throw new PlanetError("RENEW_FAILED", `no master answered ${path}: ${errors.join("; ")}`, { phase });
}

/**
 * On a host without CA keys: takes up the masters' trust (a CA rotation's new CA, then the old one
 * dropped), and renews through a master every certificate due within `warnDays` or no longer signed
 * by the CA that signs now; authenticated by the host's agent certificate. Writes everything at once
 * (temp files, then renames), kubeconfigs included. Returns the names of what changed.
 */
export async function renewThroughMasters(o: HostRenewOptions): Promise<string[]> {
  const record = loadRecord(o.dir);
  if (!record?.host)
    throw new PlanetError("NO_RECORD", `${o.dir} holds no host's secrets (planet secrets host or --join)`, { phase });
  const trust = (await askMasters<{ files?: Record<string, string> }>(o, "/trust")).files ?? {};
  const newTrust: Record<string, string> = {};
  for (const [name, f] of Object.entries(record.files)) {
    const file = trustFileOf(name, f);
    const text = file ? trust[file] : undefined;
    if (!file || !text || !pemsOf(text).length) continue;
    if (text !== read(o.dir, file)) newTrust[file] = text;
  }
  const textOf = (file: string) => newTrust[file] ?? read(o.dir, file) ?? "";
  // The CA that signs now is the first certificate of its file (each parsed once).
  const signing = new Map<string, forge.pki.Certificate | null>();
  const signsNow = (issuer: string) => {
    if (!signing.has(issuer)) {
      const pem = pemsOf(textOf(`${issuer}.cert`))[0];
      signing.set(issuer, pem ? parseCert(pem) : null);
    }
    return signing.get(issuer) ?? null;
  };
  const due = checkSecrets(o.dir, o.warnDays)
    .filter((r) => record.files[r.name]?.kind === "cert")
    .filter((r) => ["root", SIGNER, undefined].includes(record.files[r.name]?.issuer))
    .filter((r) => {
      if (r.status === "expiring") return true;
      const ca = signsNow(record.files[r.name]?.issuer ?? "root");
      const signer = signsNow(SIGNER);
      const cert = parseCert(read(o.dir, `${r.name}.cert`) as string);
      // A leaf of a CA going out: renewed now, while that CA is still trusted.
      return !!ca && !signedBy(cert, ca) && !(signer && signedBy(cert, signer));
    })
    .map((r) => r.name);
  if (!due.length && !Object.keys(newTrust).length) return [];
  const body: RenewRequest = { certs: {}, csrs: {} };
  for (const name of due) {
    body.certs[name] = read(o.dir, `${name}.cert`) as string;
    body.csrs[name] = csrPem(name, parseKey(read(o.dir, `${name}.key`) as string));
  }
  const issued = due.length ? ((await askMasters<{ certs?: Record<string, string> }>(o, "/renew", body)).certs ?? {}) : {};
  const batch = new Batch(o.dir);
  const rootPem = textOf("root.cert");
  try {
    for (const [file, text] of Object.entries(newTrust)) batch.put(file, text, 0o644);
    for (const name of due) {
      const cert = issued[name];
      if (!cert) throw new Error(`the master renewed no ${name}`);
      // What comes back is this certificate again: the same key and names, from this cluster.
      const was = parseCert(read(o.dir, `${name}.cert`) as string);
      const now = parseCert(cert);
      if (
        !keyMatches(now, parseKey(read(o.dir, `${name}.key`) as string)) ||
        subjectText(now) !== subjectText(was) ||
        sansOf(now).join(",") !== sansOf(was).join(",") ||
        !signedByAny(now, textOf("client-ca.pem") || rootPem)
      )
        throw new Error(`the master sent a ${name} certificate that is not this one renewed`);
      const entry = record.files[name];
      if (!entry) continue;
      batch.put(`${name}.cert`, cert, 0o644);
      const days = Math.round((now.validity.notAfter.getTime() - Date.now()) / 86_400_000);
      entry.issuer = SIGNER;
      entry.validityDays = days;
      entry.hash = hashOf({ req: entry.request, issuer: SIGNER, server: entry.kubeconfig, v: days });
    }
    // Every kubeconfig with its certificate (renewed or not) and the cluster CA's file as it is now.
    for (const [name, entry] of Object.entries(record.files)) {
      if (entry.kind !== "cert" || !entry.kubeconfig || (!due.includes(name) && !newTrust["root.cert"])) continue;
      const cert = issued[name] ?? (read(o.dir, `${name}.cert`) as string);
      batch.put(
        `${name}.kubeconfig`,
        kubeconfig({ server: entry.kubeconfig, ca: rootPem, cert, key: read(o.dir, `${name}.key`) as string, user: name }),
        0o600,
      );
    }
    batch.put(RECORD, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    batch.commit();
  } catch (e) {
    batch.abort();
    throw new PlanetError("RENEW_FAILED", `writing ${o.dir}: ${(e as Error).message}`, { phase });
  }
  return [...Object.keys(newTrust), ...due];
}
