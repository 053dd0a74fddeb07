/**
 * A host joins with a token instead of a copied secrets folder. The host makes its own keys and
 * sends certificate signing requests; a master's agent checks the token, then issues the host's
 * certificates with the masters' signer (`csr-signer`, which every host trusts through
 * `client-ca.pem`) for exactly the host's name and address and the token's role, and hands over the
 * trust anchors and the shared secrets that role needs. The private keys never leave the host.
 *
 * A master joins as kubeadm's `join --control-plane` does: its token (one made with `--role master`)
 * brings it the CA keys every master holds (their `keyRoles`) and the shared secrets, and the
 * joining host issues its own leaf certificates with them; etcd takes it in as a learner first.
 *
 * Protocol (the agent's port, TLS): `GET /join/ca` answers the cluster CA, which the host checks
 * against the hash its token carries before it trusts anything; `POST /join` (verified against that
 * CA) takes `{token, nodeName, ip, roles, csrs: {name: pem}}` and answers `{files, record, masters}`.
 */
import { existsSync, rmSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { PlanetError } from "../core/errors.ts";
import { type CertificateRequest, type CertRequest, isCA, type Role } from "../core/plugin.ts";
import { issueHost } from "./host.ts";
import { certify, certPem, csrPem, csrPublicKey, generateKey, type IssueRequest, keyPem, kubeconfig } from "./pki.ts";
import {
  Batch,
  expand as expandAll,
  expandOne,
  type FileRecord,
  hashOf,
  loadCA,
  loadRecord,
  newRecord,
  prepareDir,
  RECORD,
  type Record_,
  read,
  rotating,
  type SecretsOptions,
  validate,
} from "./record.ts";
import { caHash, type JoinToken } from "./token.ts";

const phase = "join";
const NODE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A master as a join names it: `name:ip`. */
const MASTER = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?:(\d{1,3}\.){3}\d{1,3}$/;
/** The masters' run-time signer. */
export const SIGNER = "csr-signer";

export interface JoinRequest {
  token: string;
  nodeName: string;
  ip: string;
  roles: Role[];
  /** Certificate request name → PKCS#10 PEM, one per certificate the host's plugins request. */
  csrs: Record<string, string>;
}

export interface JoinAnswer {
  /**
   * File name → contents: the issued certificates, CA certificates, bundles and shared secrets; for
   * a master, the CAs' keys and the shared secrets, from which it issues its own certificates.
   */
  files: Record<string, string>;
  /** The host's record; for a master, the cluster's (what its files are). */
  record: Record_;
  /** The cluster's masters (`name:ip`), a joining master among them. */
  masters?: string[];
}

/** What the joining host's certificates are issued for: its name and its address only. */
function hostOptions(cluster: Record_, nodeName: string, ip: string, validityDays: number): SecretsOptions {
  return {
    domain: cluster.domain,
    serviceSubnet: cluster.serviceSubnet,
    ips: [ip],
    hosts: [],
    nodeName,
    validityDays,
  };
}

/**
 * On a master: the answer to a join whose token admits `tokenRole`. `signerDir` holds the master's
 * secrets (the signer's key, the CA certificates, the shared secrets); `requests` are the
 * certificate requests of the plugins a host with the token's role runs, from the master's image.
 */
export async function answerJoin(
  signerDir: string,
  requests: CertRequest[],
  body: JoinRequest,
  tokenRole: Role,
  /** The address the join came from: certificates are issued for that address and no other. */
  peer: string,
  validityDays = 365,
): Promise<JoinAnswer> {
  const refuse = (why: string) => new PlanetError("JOIN_REFUSED", why, { phase });
  if (!NODE_NAME.test(body.nodeName ?? "")) throw refuse(`node name ${JSON.stringify(body.nodeName)}: not a DNS label`);
  if (!body.ip || isIP(body.ip) !== 4) throw refuse(`address ${JSON.stringify(body.ip)}: not an IPv4 address`);
  if (body.ip !== peer)
    throw refuse(
      `this host connects from ${peer || "an unknown address"}, not its --public-ip ${body.ip}: join from the address it will use`,
    );
  const roles = Array.isArray(body.roles) ? body.roles : [];
  if (!roles.length || roles.some((r) => r !== tokenRole))
    throw refuse(
      `this token admits a ${tokenRole}, not ${roles.join("+") || "no role"}: create a token with --role ${roles[0] ?? "node"}`,
    );
  const cluster = loadRecord(signerDir);
  if (!cluster) throw refuse(`this master has no ${RECORD} in ${signerDir}`);
  if (tokenRole === "master") return masterAnswer(signerDir, cluster, requests, refuse);
  const signer = loadCA(signerDir, SIGNER);
  if (!signer) throw refuse(`this master does not hold the signer's key (${SIGNER}.key); it cannot issue certificates`);
  const opts = hostOptions(cluster, body.nodeName, body.ip, validityDays);
  const { serviceIp } = validate(opts);
  const record = newRecord(opts, serviceIp);
  const rootPem = read(signerDir, "root.cert");
  if (!rootPem) throw refuse(`this master has no root.cert in ${signerDir}`);
  record.host = { roles, cluster: caHash(rootPem) };
  const files: Record<string, string> = {};
  const copy = (file: string) => {
    const text = read(signerDir, file);
    if (!text) throw refuse(`this master has no ${file} to hand over`);
    files[file] = text;
  };
  for (const r of requests) {
    if ("randomBytes" in r || "keyPair" in r) {
      record.files[r.name] =
        "randomBytes" in r ? { kind: "random", hash: hashOf(r.randomBytes) } : { kind: "keypair", hash: "keypair" };
      copy(`${r.name}.key`);
      if ("keyPair" in r) copy(`${r.name}.pub`);
    } else if ("bundle" in r) {
      record.files[r.name] = { kind: "bundle", hash: hashOf(r.bundle) };
      copy(`${r.name}.pem`);
    } else if (r.usage.includes("ca")) {
      record.files[r.name] = { kind: "ca", hash: "ca" };
      copy(`${r.name}.cert`);
    } else {
      const issuer = r.issuer ?? "root";
      if (issuer !== "root" && issuer !== SIGNER) throw refuse(`${r.name} is issued by ${issuer}, whose key no master holds`);
      const pub = csrPublicKey(body.csrs?.[r.name] ?? "");
      if (!pub) throw refuse(`no valid signing request for ${r.name} (a PKCS#10 request signed by its own key)`);
      const req = issueRequest(r, opts, serviceIp);
      const server = r.kubeconfig ? expandOne(r.kubeconfig, opts, serviceIp) : undefined;
      files[`${r.name}.cert`] = certPem(certify(req, signer, validityDays, pub));
      record.files[r.name] = {
        kind: "cert",
        hash: hashOf({ req, issuer: SIGNER, server, v: validityDays }),
        issuer: SIGNER,
        request: req,
        ...(server ? { kubeconfig: server } : {}),
        validityDays,
      } satisfies FileRecord;
    }
  }
  // The root CA is what the host pins and what its record names: always there.
  files["root.cert"] = rootPem;
  record.files.root = { kind: "ca", hash: "ca" };
  return { files, record };
}

/**
 * What a joining master gets: every CA certificate with its key (a master holds them all: their
 * `keyRoles`), the shared secrets with the keys a rotation keeps beside them, and the cluster's
 * record of them; no leaf, which the master issues itself with these.
 */
function masterAnswer(
  signerDir: string,
  cluster: Record_,
  requests: CertRequest[],
  refuse: (why: string) => PlanetError,
): JoinAnswer {
  const files: Record<string, string> = {};
  const record = newRecord({ ...cluster, ips: [], hosts: [], nodeName: "", validityDays: 365 }, cluster.serviceIp);
  const copy = (file: string, what: string) => {
    const text = read(signerDir, file);
    if (!text) throw refuse(`this master has no ${file} (${what}) to hand over`);
    files[file] = text;
  };
  const cas = requests.filter(isCA).map((r) => r.name);
  for (const name of cas.includes("root") ? cas : ["root", ...cas]) {
    copy(`${name}.cert`, `the ${name} CA`);
    copy(`${name}.key`, `the ${name} CA's key, which every master holds`);
    record.files[name] = { kind: "ca", hash: "ca" };
  }
  for (const r of requests) {
    if (!("randomBytes" in r || "keyPair" in r)) continue;
    record.files[r.name] =
      "randomBytes" in r ? { kind: "random", hash: hashOf(r.randomBytes) } : { kind: "keypair", hash: "keypair" };
    copy(`${r.name}.key`, "a secret every master shares");
    if ("keyPair" in r) copy(`${r.name}.pub`, "a secret every master shares");
    // A rotation's keys go along while the cluster keeps them.
    for (const c of "randomBytes" in r ? rotating(r.name) : []) {
      const text = read(signerDir, `${c}.key`);
      const entry = cluster.files[c];
      if (text && entry) {
        files[`${c}.key`] = text;
        record.files[c] = entry;
      }
    }
  }
  return { files, record };
}

function issueRequest(r: CertificateRequest, opts: SecretsOptions, serviceIp: string): IssueRequest {
  return {
    name: r.name,
    cn: expandOne(r.cn, opts, serviceIp),
    org: r.org,
    sans: expandAll(r.sans ?? [], opts, serviceIp),
    usage: r.usage,
  };
}

export interface JoinOptions {
  master: string;
  port: number;
  token: JoinToken;
  dir: string;
  nodeName: string;
  ip: string;
  roles: Role[];
  /** The certificate requests of the plugins this host runs (its own image's). */
  requests: CertRequest[];
  timeoutMs?: number;
}

/**
 * On the joining host: checks the master's CA against the token, makes a key and a signing request
 * per certificate, asks the master, and writes the secrets directory (temp files, then renames:
 * nothing half-written; a directory it created is removed again on failure).
 */
export async function joinCluster(o: JoinOptions): Promise<{ issued: string[] }> {
  const base = `https://${o.master}:${o.port}`;
  const timeout = () => AbortSignal.timeout(o.timeoutMs ?? 15_000);
  let caPem: string;
  try {
    const res = await fetch(`${base}/join/ca`, { tls: { rejectUnauthorized: false }, signal: timeout() });
    caPem = ((await res.json()) as { ca: string }).ca;
  } catch (e) {
    throw new PlanetError(
      "MASTER_UNREACHABLE",
      `no master answers at ${base} (${(e as Error).message}); start a master first or fix --join`,
      { phase },
    );
  }
  let presented = "";
  try {
    presented = caHash(caPem);
  } catch {
    presented = "not a certificate";
  }
  if (presented !== o.token.caHash)
    throw new PlanetError(
      "MASTER_CA_MISMATCH",
      `the master at ${o.master} presents CA sha256:${presented}, the token pins sha256:${o.token.caHash}: another cluster, or a forged master`,
      { phase },
    );
  const master = o.roles.includes("master");
  // A master issues its own certificates once it holds the CAs: it sends no signing request.
  const leaves = master ? [] : o.requests.filter((r): r is CertificateRequest => "cn" in r && !isCA(r));
  const keys = new Map(await Promise.all(leaves.map(async (r) => [r.name, (await generateKey()).privateKey] as const)));
  const csrs = Object.fromEntries([...keys].map(([name, key]) => [name, csrPem(name, key)]));
  const body: JoinRequest = { token: `${o.token.id}.${o.token.secret}`, nodeName: o.nodeName, ip: o.ip, roles: o.roles, csrs };
  let answer: JoinAnswer;
  try {
    const res = await fetch(`${base}/join`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
      tls: { ca: caPem },
      signal: timeout(),
    });
    const json = (await res.json()) as JoinAnswer & { error?: { code: string; message: string } };
    if (!res.ok)
      throw new PlanetError("JOIN_REFUSED", `the master at ${o.master} refused: ${json.error?.message ?? `HTTP ${res.status}`}`, {
        phase,
      });
    answer = json;
  } catch (e) {
    if (e instanceof PlanetError) throw e;
    throw new PlanetError("JOIN_FAILED", `joining through ${o.master}: ${(e as Error).message}`, { phase });
  }
  const masters = answer.masters ?? [];
  const bad = masters.find((m) => !MASTER.test(m));
  if (bad)
    throw new PlanetError("JOIN_FAILED", `the master at ${o.master} named a master ${JSON.stringify(bad)} (not name:ip)`, {
      phase,
    });
  if (master) return joinAsMaster(o, answer, masters);
  if (masters.length && answer.record.host) answer.record.host.masters = masters;
  const created = !existsSync(o.dir);
  prepareDir(o.dir);
  const batch = new Batch(o.dir);
  try {
    for (const [file, text] of Object.entries(answer.files)) {
      if (!/^[a-z0-9-]+\.(cert|key|pub|pem)$/.test(file)) throw new Error(`the master sent a file named ${JSON.stringify(file)}`);
      batch.put(file, text, file.endsWith(".key") ? 0o600 : 0o644);
    }
    for (const [name, key] of keys) {
      const cert = answer.files[`${name}.cert`];
      if (!cert) throw new Error(`the master issued no ${name} certificate`);
      batch.put(`${name}.key`, keyPem(key), 0o600);
      const server = answer.record.files[name]?.kubeconfig;
      if (server) batch.put(`${name}.kubeconfig`, kubeconfig({ server, ca: caPem, cert, key: keyPem(key), user: name }), 0o600);
    }
    batch.put(RECORD, `${JSON.stringify(answer.record, null, 2)}\n`, 0o600);
    batch.commit();
  } catch (e) {
    batch.abort();
    if (created) rmSync(o.dir, { recursive: true, force: true });
    throw new PlanetError("JOIN_FAILED", `writing ${o.dir}: ${(e as Error).message}`, { phase });
  }
  return { issued: [...keys.keys()].sort() };
}

/**
 * A master's join, on the joining host: the cluster's CAs and shared secrets go to a private folder
 * beside the host's, from which its own certificates are issued as `planet secrets host` would
 * (keys made here); the folder is removed again, and so is the host's on failure.
 */
async function joinAsMaster(o: JoinOptions, answer: JoinAnswer, masters: string[]): Promise<{ issued: string[] }> {
  if (answer.record.host)
    throw new PlanetError("JOIN_FAILED", `the master at ${o.master} answered a node's join, not a master's`, { phase });
  const created = !existsSync(o.dir);
  const from = `${o.dir.replace(/\/+$/, "")}.join-${process.pid}`;
  try {
    prepareDir(from);
    const batch = new Batch(from);
    for (const [file, text] of Object.entries(answer.files)) {
      if (!/^[a-z0-9-]+\.(cert|key|pub)$/.test(file)) throw new Error(`the master sent a file named ${JSON.stringify(file)}`);
      batch.put(file, text, file.endsWith(".key") ? 0o600 : 0o644);
    }
    batch.put(RECORD, `${JSON.stringify(answer.record, null, 2)}\n`, 0o600);
    batch.commit();
    const { issued } = await issueHost(from, o.dir, o.requests, {
      nodeName: o.nodeName,
      ips: [o.ip],
      hosts: [],
      roles: o.roles,
      validityDays: 365,
      masters,
    });
    return { issued };
  } catch (e) {
    if (created) rmSync(o.dir, { recursive: true, force: true });
    if (e instanceof PlanetError) throw e;
    throw new PlanetError("JOIN_FAILED", `writing ${o.dir}: ${(e as Error).message}`, { phase });
  } finally {
    rmSync(from, { recursive: true, force: true });
  }
}

/** True when `dir` already holds this host's secrets (a restart after a join needs no token). */
export function joined(dir: string): boolean {
  return existsSync(join(dir, RECORD)) && !!loadRecord(dir)?.host;
}
