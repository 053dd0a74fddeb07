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
import { SIGNER } from "./join.ts";
import {
  certify,
  certPem,
  csrPem,
  csrPublicKey,
  type IssueRequest,
  keyMatches,
  kubeconfig,
  parseCert,
  parseKey,
  sansOf,
  signedBy,
  subjectText,
} from "./pki.ts";
import { Batch, checkSecrets, hashOf, loadCA, loadRecord, RECORD, read } from "./store.ts";

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
 * On a master: re-issues each presented certificate that is one of `requests` (a node's: never a
 * master's or an operator's), was issued by the cluster CA or the signer, is still valid, carries
 * that request's organisations and usages, names one and the same node, and whose signing request
 * carries its own public key. Anything else refuses the whole renewal. Returns the certificates and
 * the node they belong to, which the caller checks is still a member (a removed node renews nothing).
 */
export function answerRenew(
  signerDir: string,
  requests: CertRequest[],
  body: RenewRequest,
  validityDays = 365,
): { certs: Record<string, string>; node: string } {
  const refuse = (why: string) => new PlanetError("RENEW_REFUSED", why, { phase });
  const signer = loadCA(signerDir, SIGNER);
  const rootPem = read(signerDir, "root.cert");
  if (!signer || !rootPem) throw refuse(`this master holds no ${SIGNER} key: it cannot renew certificates`);
  const root = parseCert(rootPem);
  const names = Object.keys(body?.certs ?? {});
  if (!names.length) throw refuse("no certificate to renew");
  const out: Record<string, string> = {};
  let node = "";
  for (const name of names) {
    const r = requests.find((x): x is CertificateRequest => x.name === name && "cn" in x);
    if (!r || r.usage.includes("ca") || (r.issuer && r.issuer !== "root"))
      throw refuse(`${name} is not a certificate a host renews through the masters`);
    let current: forge.pki.Certificate;
    try {
      current = parseCert(body.certs[name] as string);
    } catch {
      throw refuse(`${name}: not a certificate`);
    }
    if (!signedBy(current, root) && !signedBy(current, signer.cert)) throw refuse(`${name} was not issued by this cluster`);
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
    const req: IssueRequest = {
      name,
      cn,
      org: orgs,
      sans: sansOf(current),
      usage: r.usage,
    };
    out[name] = certPem(certify(req, signer, validityDays, pub));
  }
  if (!node) throw refuse("a renewal names its node: include a certificate that does (the kubelet's)");
  return { certs: out, node };
}

export interface HostRenewOptions {
  dir: string;
  /** Masters' addresses, asked in turn. */
  masters: string[];
  port: number;
  warnDays: number;
  timeoutMs?: number;
}

/**
 * On a host without CA keys: renews every certificate due within `warnDays` through a master,
 * authenticated by the host's agent certificate, and writes them (temp files, then renames) with
 * their kubeconfigs. Returns the names renewed.
 */
export async function renewThroughMasters(o: HostRenewOptions): Promise<string[]> {
  const record = loadRecord(o.dir);
  if (!record?.host)
    throw new PlanetError("NO_RECORD", `${o.dir} holds no host's secrets (planet secrets host or --join)`, { phase });
  const due = checkSecrets(o.dir, o.warnDays)
    .filter((r) => r.status === "expiring" && record.files[r.name]?.kind === "cert")
    .map((r) => r.name)
    .filter((n) => ["root", SIGNER, undefined].includes(record.files[n]?.issuer));
  if (!due.length) return [];
  const body: RenewRequest = { certs: {}, csrs: {} };
  for (const name of due) {
    body.certs[name] = read(o.dir, `${name}.cert`) as string;
    body.csrs[name] = csrPem(name, parseKey(read(o.dir, `${name}.key`) as string));
  }
  // Masters' agents serve certificates of the cluster CA itself: a host's (from the signer) is not a master.
  const ca = read(o.dir, "root.cert") as string;
  const tls = { ca, cert: read(o.dir, "planet-rpc-client.cert") ?? "", key: read(o.dir, "planet-rpc-client.key") ?? "" };
  const errors: string[] = [];
  let issued: Record<string, string> | null = null;
  for (const master of o.masters) {
    try {
      const res = await fetch(`https://${master}:${o.port}/renew`, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
        tls,
        signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
      });
      const json = (await res.json()) as { certs?: Record<string, string>; error?: { message: string } };
      if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
      issued = json.certs ?? {};
      break;
    } catch (e) {
      errors.push(`${master}: ${(e as Error).message}`);
    }
  }
  if (!issued) throw new PlanetError("RENEW_FAILED", `no master renewed ${due.join(", ")}: ${errors.join("; ")}`, { phase });
  const batch = new Batch(o.dir);
  const rootPem = read(o.dir, "root.cert") as string;
  try {
    for (const name of due) {
      const cert = issued[name];
      if (!cert) throw new Error(`the master renewed no ${name}`);
      // What comes back is this certificate again: the same key and names, from this cluster.
      const was = parseCert(read(o.dir, `${name}.cert`) as string);
      const now = parseCert(cert);
      const trust =
        (read(o.dir, "client-ca.pem") ?? ca).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      if (
        !keyMatches(now, parseKey(read(o.dir, `${name}.key`) as string)) ||
        subjectText(now) !== subjectText(was) ||
        sansOf(now).join(",") !== sansOf(was).join(",") ||
        !trust.some((pem) => signedBy(now, parseCert(pem)))
      )
        throw new Error(`the master sent a ${name} certificate that is not this one renewed`);
      const entry = record.files[name];
      if (!entry) continue;
      batch.put(`${name}.cert`, cert, 0o644);
      if (entry.kubeconfig)
        batch.put(
          `${name}.kubeconfig`,
          kubeconfig({ server: entry.kubeconfig, ca: rootPem, cert, key: read(o.dir, `${name}.key`) as string, user: name }),
          0o600,
        );
      const days = Math.round((parseCert(cert).validity.notAfter.getTime() - Date.now()) / 86_400_000);
      entry.issuer = SIGNER;
      entry.validityDays = days;
      entry.hash = hashOf({ req: entry.request, issuer: SIGNER, server: entry.kubeconfig, v: days });
    }
    batch.put(RECORD, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    batch.commit();
  } catch (e) {
    batch.abort();
    throw new PlanetError("RENEW_FAILED", `writing ${o.dir}: ${(e as Error).message}`, { phase });
  }
  return due;
}
