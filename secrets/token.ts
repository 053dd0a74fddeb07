/**
 * Join tokens, as kubeadm's bootstrap tokens and k3s's secure tokens: `P1<ca-hash>::<id>.<secret>`.
 * The id and secret are a Kubernetes bootstrap token (a `bootstrap-token-<id>` Secret in kube-system,
 * with its expiration, which the controller-manager's tokencleaner deletes once past); the CA hash
 * (sha256 of the cluster CA certificate's DER) lets a joining host check the master before trusting
 * it. The Secret also says which role the token admits (label `planet.local/join-role`).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import forge from "node-forge";
import { PlanetError } from "../core/errors.ts";
import type { Kube, KubeError } from "../core/kube/client.ts";
import type { Role } from "../core/plugin.ts";

const phase = "join";
const TOKEN = /^P1([0-9a-f]{64})::([a-z0-9]{6})\.([a-z0-9]{16})$/;
const ROLE_LABEL = "planet.local/join-role";
const SECRETS = "/api/v1/namespaces/kube-system/secrets";

export interface JoinToken {
  /** sha256 of the cluster CA's DER, hex. */
  caHash: string;
  id: string;
  secret: string;
}

export interface TokenInfo {
  id: string;
  role: Role;
  expires: string;
  description: string;
}

/** sha256 of a PEM certificate's DER, hex (what `openssl x509 -outform der | sha256sum` prints). */
export function caHash(pem: string): string {
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(forge.pki.certificateFromPem(pem))).getBytes();
  return createHash("sha256").update(Buffer.from(der, "binary")).digest("hex");
}

export function formatToken(t: JoinToken): string {
  return `P1${t.caHash}::${t.id}.${t.secret}`;
}

export function parseToken(text: string): JoinToken {
  const m = TOKEN.exec(text.trim());
  if (!m)
    throw new PlanetError(
      "BAD_TOKEN",
      "--token is not a planet join token (P1<64 hex>::<6 chars>.<16 chars>); print one on a master: planet token create",
      { phase },
    );
  return { caHash: m[1] as string, id: m[2] as string, secret: m[3] as string };
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
function randomText(n: number): string {
  const bytes = randomBytes(n * 2);
  let out = "";
  // Rejection sampling keeps the 36 symbols uniform.
  for (const b of bytes) if (b < 252 && out.length < n) out += ALPHABET[b % 36];
  return out.length === n ? out : randomText(n);
}

const TTL = /^(\d+)(s|m|h|d)$/;
export function parseTtl(text: string): number {
  const m = TTL.exec(text);
  const n = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as "s"] : 0;
  if (!n || n > 365 * 86_400)
    throw new PlanetError("BAD_FLAG", `--ttl ${text}: expected a duration such as 30m, 24h or 7d (at most 365d)`, { phase });
  return n * 1000;
}

interface TokenSecret {
  metadata: { name: string; labels?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

const field = (s: TokenSecret, k: string) => (s.data?.[k] ? Buffer.from(s.data[k], "base64").toString("utf8") : "");

/** Creates a token for `role` valid for `ttlMs`, stored through the API as a bootstrap token Secret. */
export async function createToken(kube: Kube, caPem: string, role: Role, ttlMs: number, description = ""): Promise<string> {
  const t: JoinToken = { caHash: caHash(caPem), id: randomText(6), secret: randomText(16) };
  await kube.create(SECRETS, {
    apiVersion: "v1",
    kind: "Secret",
    type: "bootstrap.kubernetes.io/token",
    metadata: { name: `bootstrap-token-${t.id}`, namespace: "kube-system", labels: { [ROLE_LABEL]: role } },
    stringData: {
      "token-id": t.id,
      "token-secret": t.secret,
      expiration: new Date(Date.now() + ttlMs).toISOString().replace(/\.\d+Z$/, "Z"),
      description: description || `planet join token for a ${role}`,
      // Not an apiserver credential: only the masters' agents take it, to issue a joining host's certificates.
      "usage-bootstrap-authentication": "false",
      "usage-bootstrap-signing": "false",
    },
  });
  return formatToken(t);
}

export async function listTokens(kube: Kube): Promise<TokenInfo[]> {
  const list = await kube.get<{ items: TokenSecret[] }>(`${SECRETS}?labelSelector=${encodeURIComponent(ROLE_LABEL)}`);
  return list.items
    .filter((s) => s.type === "bootstrap.kubernetes.io/token")
    .map((s) => ({
      id: field(s, "token-id"),
      role: (s.metadata.labels?.[ROLE_LABEL] ?? "node") as Role,
      expires: field(s, "expiration"),
      description: field(s, "description"),
    }))
    .sort((a, b) => a.expires.localeCompare(b.expires));
}

export async function revokeToken(kube: Kube, id: string): Promise<void> {
  if (!/^[a-z0-9]{6}$/.test(id))
    throw new PlanetError("BAD_TOKEN", `${id}: a token id is 6 lowercase letters or digits`, { phase });
  await kube.delete(`${SECRETS}/bootstrap-token-${id}`).catch((e: KubeError) => {
    if (e.status === 404) throw new PlanetError("NOT_FOUND", `no token ${id} (planet token list shows them)`, { phase });
    throw e;
  });
}

/**
 * The role a presented token admits, checked against its Secret: it exists (not revoked), its
 * secret matches (constant time), it has not expired. Any failure is one `JOIN_REFUSED` line.
 */
export async function checkToken(kube: Kube, t: JoinToken, now = Date.now()): Promise<Role> {
  const refuse = (why: string) => new PlanetError("JOIN_REFUSED", `token ${t.id}: ${why}`, { phase });
  const s = await kube.get<TokenSecret>(`${SECRETS}/bootstrap-token-${t.id}`).catch((e: KubeError) => {
    if (e.status === 404) throw refuse("unknown or revoked (print a new one on a master: planet token create)");
    throw e;
  });
  const a = Buffer.from(field(s, "token-secret"));
  const b = Buffer.from(t.secret);
  if (s.type !== "bootstrap.kubernetes.io/token" || a.length !== b.length || !timingSafeEqual(a, b)) throw refuse("wrong secret");
  const expires = Date.parse(field(s, "expiration"));
  if (!Number.isFinite(expires) || expires <= now) throw refuse(`expired at ${field(s, "expiration")}`);
  const role = s.metadata.labels?.[ROLE_LABEL];
  if (role !== "node" && role !== "master") throw refuse("it names no role");
  return role;
}
