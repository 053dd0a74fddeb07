/**
 * A secrets directory: the files `planet secrets init` issues from the plugins' certificate
 * requests, and `planet-secrets.json`, which remembers what each file was issued for so that
 * re-runs keep what is still right, `check` knows what to expect and `renew` can reissue alone.
 * This room holds the record and what reads and writes the directory; the verbs that use them are
 * init.ts (the cluster's directory), host.ts (a host's), leaf.ts (one leaf) and check.ts.
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import forge from "node-forge";
import { PlanetError } from "../core/errors.ts";
import { firstIp, parseCidr, requireIp } from "../core/net.ts";
import { type CertificateRequest, type CertRequest, isCA, type Role } from "../core/plugin.ts";
import { shapeProblem } from "../core/util.ts";
import { type IssueRequest, type KeyPair, keyMatches, parseCert, parseKey } from "./pki.ts";

export const RECORD = "planet-secrets.json";
const phase = "secrets";

export interface SecretsOptions {
  domain: string;
  serviceSubnet: string;
  ips: string[];
  hosts: string[];
  nodeName: string;
  /** Leaf validity in days (CAs get 10 years). */
  validityDays: number;
  /** Reissue every leaf (never a CA). */
  force?: boolean;
}

export interface FileRecord {
  kind: "ca" | "cert" | "keypair" | "random" | "bundle";
  /** Hash of what the file was issued for; a different hash means the request changed. */
  hash: string;
  issuer?: string;
  request?: IssueRequest;
  kubeconfig?: string;
  validityDays?: number;
}

export interface Record_ {
  schema: 1;
  domain: string;
  serviceSubnet: string;
  serviceIp: string;
  ips: string[];
  hosts: string[];
  nodeName: string;
  /**
   * Set in a host's directory (`planet secrets host`): its roles and the root CA's fingerprint; after a
   * join with a token, also the masters the cluster had then (`name:ip`, a joining master last).
   */
  host?: { roles: Role[]; cluster: string; masters?: string[] };
  files: Record<string, FileRecord>;
}

export interface InitResult {
  issued: string[];
  kept: string[];
}

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export function validate(opts: SecretsOptions): { serviceIp: string } {
  if (!opts.domain || !DNS_NAME.test(opts.domain))
    throw new PlanetError(
      "BAD_DOMAIN",
      `--domain ${JSON.stringify(opts.domain ?? "")}: expected a DNS name such as cluster.local`,
      { phase },
    );
  for (const ip of opts.ips) requireIp(ip, "--ip");
  for (const h of opts.hosts) if (!DNS_NAME.test(h)) throw new PlanetError("BAD_HOST", `--host ${h}: not a DNS name`, { phase });
  if (!(opts.validityDays >= 1 / 1440))
    throw new PlanetError("BAD_FLAG", `--validity ${opts.validityDays}: expected at least a minute (1m)`, { phase });
  return { serviceIp: firstIp(parseCidr(opts.serviceSubnet, "--service-subnet")) };
}

/** Substitutes `$DOMAIN`, `$SERVICE_IP`, `$PUBLIC_IP`, `$IPS`, `$HOSTS`, `$NODE_NAME`. */
export function expand(values: string[], opts: SecretsOptions, serviceIp: string): string[] {
  const out: string[] = [];
  for (const v of values) {
    if (v === "$IPS") out.push(...opts.ips);
    else if (v === "$HOSTS") out.push(...opts.hosts);
    else if (v === "$PUBLIC_IP") out.push(...opts.ips.slice(0, 1));
    else out.push(expandOne(v, opts, serviceIp));
  }
  return [...new Set(out.filter(Boolean))];
}

export function expandOne(v: string, opts: SecretsOptions, serviceIp: string): string {
  return v
    .replaceAll("$DOMAIN", opts.domain)
    .replaceAll("$SERVICE_IP", serviceIp)
    .replaceAll("$PUBLIC_IP", opts.ips[0] ?? "127.0.0.1")
    .replaceAll("$NODE_NAME", opts.nodeName);
}

export function hashOf(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}

/** Files a request owns in the directory. */
export function filesOf(r: CertRequest, hostRoles?: Role[]): string[] {
  if ("randomBytes" in r) return [`${r.name}.key`];
  if ("bundle" in r) return [`${r.name}.pem`];
  if ("keyPair" in r) return [`${r.name}.key`, `${r.name}.pub`];
  // In a host's directory a CA is its certificate, and its key only where keyRoles say.
  if (hostRoles && isCA(r)) return [`${r.name}.cert`, ...(keyGoesTo(r, hostRoles) ? [`${r.name}.key`] : [])];
  return [`${r.name}.cert`, `${r.name}.key`, ...(r.kubeconfig ? [`${r.name}.kubeconfig`] : [])];
}

export function read(dir: string, file: string): string | null {
  const p = join(dir, file);
  return existsSync(p) ? readFileSync(p, "utf8") : null;
}

export function loadRecord(dir: string): Record_ | null {
  const text = read(dir, RECORD);
  if (!text) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PlanetError("CORRUPT_RECORD", `${join(dir, RECORD)} is not valid JSON; move it away to start over`, { phase });
  }
  const problem = shapeProblem(value, {
    schema: "number",
    domain: "string",
    serviceSubnet: "string",
    ips: "array",
    nodeName: "string",
    files: "object",
    host: "object?",
  });
  if (problem)
    throw new PlanetError(
      "CORRUPT_RECORD",
      `${join(dir, RECORD)} is not a record planet wrote (${problem}); move it away to start over`,
      {
        phase,
      },
    );
  return value as Record_;
}

/** Loads a CA pair; one file without the other, or a key that does not match, is an error. */
export function loadCA(dir: string, name: string): KeyPair | null {
  const certText = read(dir, `${name}.cert`);
  const keyText = read(dir, `${name}.key`);
  if (!certText && !keyText) return null;
  if (!certText || !keyText)
    throw new PlanetError(
      "CA_INCOMPLETE",
      `${join(dir, name)}: ${certText ? ".key" : ".cert"} is missing; restore it or remove both to make a new CA`,
      { phase },
    );
  let pair: KeyPair;
  try {
    pair = { cert: parseCert(certText), key: parseKey(keyText) };
  } catch (e) {
    throw new PlanetError("CA_CORRUPT", `${join(dir, name)}.cert/.key do not parse: ${(e as Error).message}`, { phase });
  }
  if (!keyMatches(pair.cert, pair.key))
    throw new PlanetError("CA_MISMATCH", `${join(dir, name)}.key does not belong to ${name}.cert; refusing to touch the CA`, {
      phase,
    });
  return pair;
}

/** Writes files to temp names first, then renames them all: a crash never leaves a half file. */
export class Batch {
  private files: { path: string; tmp: string }[] = [];
  constructor(readonly dir: string) {}
  put(name: string, text: string, mode: number): void {
    const path = join(this.dir, name);
    // The same text with the same mode stays as it is: its time tells units whether to read it again.
    if (existsSync(path) && (statSync(path).mode & 0o777) === mode && readFileSync(path, "utf8") === text) return;
    const tmp = join(this.dir, `.${name}.tmp-${process.pid}`);
    writeFileSync(tmp, text, { mode });
    chmodSync(tmp, mode);
    this.files.push({ path, tmp });
  }
  commit(): void {
    for (const f of this.files) renameSync(f.tmp, f.path);
    this.files = [];
  }
  abort(): void {
    for (const f of this.files) rmSync(f.tmp, { force: true });
  }
}

/** The keys a rotation puts beside a shared secret: the one coming in and the one going out. */
export const rotating = (name: string) => [`${name}-next`, `${name}-old`];

/** What a request's files end in. */
export const OWN_EXTS = [".cert", ".key", ".pub", ".kubeconfig", ".pem"];

/** The directory must be empty, or hold only files we write (or our temp files). */
export function checkDir(dir: string, requests: CertRequest[], previous: Record_ | null): void {
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new PlanetError("NOT_A_DIR", `${dir} exists and is not a directory`, { phase });
  if (!existsSync(dir)) return;
  const ours = new Set([RECORD, ...requests.flatMap((r) => filesOf(r))]);
  for (const name of Object.keys(previous?.files ?? {})) for (const ext of OWN_EXTS) ours.add(`${name}${ext}`);
  const foreign = readdirSync(dir).filter((f) => !ours.has(f) && !/^\..+\.tmp-\d+$/.test(f));
  if (foreign.length)
    throw new PlanetError(
      "NOT_OUR_DIR",
      `${dir} holds files planet did not write (${foreign.slice(0, 3).join(", ")}); use an empty directory`,
      { phase },
    );
}

/** SHA-256 of the root CA certificate (DER), as `openssl x509 -fingerprint -sha256` prints it. */
export function fingerprint(ca: KeyPair): string {
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(ca.cert)).getBytes();
  return createHash("sha256").update(Buffer.from(der, "binary")).digest("hex");
}

export function prepareDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (e) {
    throw new PlanetError("UNWRITABLE", `cannot write ${dir}: ${(e as Error).message}`, { phase });
  }
  for (const f of readdirSync(dir)) if (/^\..+\.tmp-\d+$/.test(f)) rmSync(join(dir, f), { force: true });
}

/** Whether a host with these roles holds the CA's key (its request's `keyRoles`). */
export function keyGoesTo(ca: CertificateRequest, roles: Role[]): boolean {
  return ca.keyRoles?.some((r) => roles.includes(r)) ?? false;
}

export function withRoot(cas: CertificateRequest[]): CertificateRequest[] {
  return cas.some((r) => r.name === "root") ? cas : [{ name: "root", cn: "planet-ca", usage: ["ca"] }, ...cas];
}

export function newRecord(opts: SecretsOptions, serviceIp: string): Record_ {
  return {
    schema: 1,
    domain: opts.domain,
    serviceSubnet: opts.serviceSubnet,
    serviceIp,
    ips: opts.ips,
    hosts: opts.hosts,
    nodeName: opts.nodeName,
    files: {},
  };
}
