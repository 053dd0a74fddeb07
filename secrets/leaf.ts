/**
 * Writing one request's files into a batch: a bundle of CA certificates, or a leaf certificate with
 * its key and kubeconfig. A leaf that still matches its request and verifies is kept, so that re-runs
 * of init and host change only what changed; renew reissues a leaf with its own key.
 */
import { PlanetError } from "../core/errors.ts";
import type { BundleRequest, CertificateRequest } from "../core/plugin.ts";
import {
  certPem,
  type IssueRequest,
  issue,
  type KeyPair,
  keyMatches,
  keyPem,
  kubeconfig,
  parseCert,
  parseKey,
  signedBy,
} from "./pki.ts";
import {
  type Batch,
  expand,
  expandOne,
  type FileRecord,
  hashOf,
  type InitResult,
  type Record_,
  read,
  type SecretsOptions,
} from "./record.ts";

const phase = "secrets";

export function putBundle(batch: Batch, record: Record_, r: BundleRequest, trust: Map<string, string>, out: InitResult): void {
  const pems = r.bundle.map((name) => {
    const text = trust.get(name);
    if (!text) throw new PlanetError("UNKNOWN_CERT", `bundle ${r.name}: CA ${name} is not requested`, { phase });
    return text;
  });
  record.files[r.name] = { kind: "bundle", hash: hashOf(r.bundle) };
  if (read(batch.dir, `${r.name}.pem`) === pems.join("")) return void out.kept.push(r.name);
  batch.put(`${r.name}.pem`, pems.join(""), 0o644);
  out.issued.push(r.name);
}

/** Issues (or keeps, when it still matches and verifies) one leaf certificate. */
export async function putLeaf(
  batch: Batch,
  dir: string,
  record: Record_,
  r: CertificateRequest,
  caPairs: Map<string, KeyPair>,
  trust: Map<string, string>,
  opts: SecretsOptions,
  serviceIp: string,
  previous: Record_ | null,
  out: InitResult,
): Promise<void> {
  const issuer = r.issuer ?? "root";
  const ca = caPairs.get(issuer);
  if (!ca) throw new PlanetError("UNKNOWN_CERT", `cert ${r.name}: issuer ${issuer} is not requested`, { phase });
  const req: IssueRequest = {
    name: r.name,
    cn: expandOne(r.cn, opts, serviceIp),
    org: r.org,
    sans: expand(r.sans ?? [], opts, serviceIp),
    usage: r.usage,
  };
  const server = r.kubeconfig ? expandOne(r.kubeconfig, opts, serviceIp) : undefined;
  const entry: FileRecord = {
    kind: "cert",
    hash: hashOf({ req, issuer, server, v: opts.validityDays }),
    issuer,
    request: req,
    kubeconfig: server,
    validityDays: opts.validityDays,
  };
  record.files[r.name] = entry;
  const rootTrust = trust.get("root") ?? certPem(ca.cert);
  if (!opts.force && leafStillGood(dir, r.name, ca, previous?.files[r.name]?.hash === entry.hash)) {
    const cert = read(dir, `${r.name}.cert`) as string;
    const key = read(dir, `${r.name}.key`) as string;
    // Its kubeconfig follows the cluster CA's file (a CA rotation): the certificate and key stay.
    if (server && !read(dir, `${r.name}.kubeconfig`)?.includes(Buffer.from(rootTrust).toString("base64")))
      batch.put(`${r.name}.kubeconfig`, kubeconfig({ server, ca: rootTrust, cert, key, user: r.name }), 0o600);
    return void out.kept.push(r.name);
  }
  await writeLeaf(batch, dir, entry, ca, rootTrust);
  out.issued.push(r.name);
}

/** Whether a leaf may stay: same request, its key, signed by the CA that signs now, not expired. */
function leafStillGood(dir: string, name: string, ca: KeyPair, sameRequest: boolean): boolean {
  if (!sameRequest) return false;
  const c = read(dir, `${name}.cert`);
  const k = read(dir, `${name}.key`);
  if (!c || !k) return false;
  try {
    const cert = parseCert(c);
    return keyMatches(cert, parseKey(k)) && signedBy(cert, ca.cert) && cert.validity.notAfter.getTime() > Date.now();
  } catch {
    return false;
  }
}

/** Issues one leaf (keeping its key when `key` is given) and its kubeconfig. */
export async function writeLeaf(
  batch: Batch,
  dir: string,
  entry: FileRecord,
  ca: KeyPair,
  rootTrust: string,
  reuseKey = false,
): Promise<void> {
  const req = entry.request as IssueRequest;
  const oldKey = reuseKey ? read(dir, `${req.name}.key`) : null;
  const pair = await issue(req, ca, entry.validityDays ?? 365, oldKey ? parseKey(oldKey) : undefined);
  const certText = certPem(pair.cert);
  const keyText = keyPem(pair.key);
  batch.put(`${req.name}.cert`, certText, 0o644);
  batch.put(`${req.name}.key`, keyText, 0o600);
  if (entry.kubeconfig)
    batch.put(
      `${req.name}.kubeconfig`,
      kubeconfig({ server: entry.kubeconfig, ca: rootTrust, cert: certText, key: keyText, user: req.name }),
      0o600,
    );
}
