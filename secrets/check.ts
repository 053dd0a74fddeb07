/**
 * Checking and renewing a secrets directory in place: `planet secrets check` reads every certificate
 * against its issuer, its key and the warning window; `planet secrets renew` (without masters)
 * reissues the leaves that are due with the keys and requests the record remembers.
 */
import { existsSync, readdirSync } from "node:fs";
import { PlanetError } from "../core/errors.ts";
import { writeLeaf } from "./leaf.ts";
import { type KeyPair, keyMatches, parseCert, parseKey, sansOf, signedByAny, subjectText } from "./pki.ts";
import { Batch, hashOf, loadCA, loadRecord, RECORD, read } from "./record.ts";

const DAY = 86_400_000;
const phase = "secrets";

export interface CertRow {
  name: string;
  subject: string;
  sans: string[];
  notAfter: string;
  daysLeft: number;
  chainValid: boolean;
  keyMatches: boolean;
  status: "ok" | "expiring" | "expired" | "invalid";
}

/** Every certificate in `dir`, checked against its issuer, its key and the warning window. */
export function checkSecrets(dir: string, warnDays: number): CertRow[] {
  if (!existsSync(dir))
    throw new PlanetError("NO_SECRETS", `${dir} does not exist (create it: planet secrets init --domain D ${dir})`, { phase });
  const record = loadRecord(dir);
  const certs = readdirSync(dir)
    .filter((f) => f.endsWith(".cert"))
    .map((f) => f.slice(0, -5))
    .sort();
  if (certs.length === 0) throw new PlanetError("NO_SECRETS", `${dir} holds no certificates`, { phase });
  // Each CA's file as trust: a leaf signed by either certificate of a CA being rotated is valid.
  const cas = new Map<string, string>();
  for (const n of certs) {
    const kind = record?.files[n]?.kind;
    if (kind === "ca" || (!record && n === "root")) cas.set(n, read(dir, `${n}.cert`) as string);
  }
  return certs.map((name) => {
    let cert: ReturnType<typeof parseCert>;
    try {
      cert = parseCert(read(dir, `${name}.cert`) as string);
    } catch {
      return {
        name,
        subject: "?",
        sans: [],
        notAfter: "?",
        daysLeft: 0,
        chainValid: false,
        keyMatches: false,
        status: "invalid" as const,
      };
    }
    const issuerName = record?.files[name]?.issuer ?? (cas.has(name) ? name : "root");
    const issuer = cas.get(issuerName);
    const chainValid = !!issuer && signedByAny(cert, issuer);
    const keyText = read(dir, `${name}.key`);
    let matches = false;
    try {
      // A host's directory holds CA certificates without their keys: nothing to match there.
      // So does a CA going out of a rotation (`<ca>-old`): it signs nothing more.
      matches = keyText
        ? keyMatches(cert, parseKey(keyText))
        : record?.files[name]?.kind === "ca" && (!!record.host || name.endsWith("-old"));
    } catch {
      matches = false;
    }
    const daysLeft = Math.floor((cert.validity.notAfter.getTime() - Date.now()) / DAY);
    const status = !chainValid || !matches ? "invalid" : daysLeft < 0 ? "expired" : daysLeft < warnDays ? "expiring" : "ok";
    return {
      name,
      subject: subjectText(cert),
      sans: sansOf(cert),
      notAfter: cert.validity.notAfter.toISOString(),
      daysLeft,
      chainValid,
      keyMatches: matches,
      status,
    };
  });
}

/**
 * Reissues, with the same keys and the same request, every leaf that expires within `warnDays`
 * (or is expired). CAs are never renewed silently.
 */
export async function renewSecrets(dir: string, warnDays: number, validityDays?: number): Promise<string[]> {
  const record = loadRecord(dir);
  if (!record)
    throw new PlanetError("NO_RECORD", `${dir} has no ${RECORD}; renew works on directories made by planet secrets init`, {
      phase,
    });
  // A master's own directory holds every CA's key (their keyRoles): it renews itself. A node's holds none.
  if (record.host && !record.host.roles.includes("master"))
    throw new PlanetError(
      "HOST_DIR",
      `${dir} holds host ${record.nodeName}'s secrets, without the CA keys: it renews through the masters (planet secrets renew --masters …), or reissue it: planet secrets host <cluster-dir> ${dir} --node-name ${record.nodeName} …`,
      { phase },
    );
  const rows = checkSecrets(dir, warnDays);
  const due = rows.filter((r) => r.status === "expiring" || r.status === "expired").map((r) => r.name);
  const batch = new Batch(dir);
  const renewed: string[] = [];
  // Each CA is read and checked once, however many of its leaves are due.
  const cas = new Map<string, KeyPair | null>();
  const caOf = (name: string) => {
    if (!cas.has(name)) cas.set(name, loadCA(dir, name));
    return cas.get(name) ?? null;
  };
  try {
    for (const name of due) {
      const entry = record.files[name];
      if (entry?.kind !== "cert" || !entry.request) continue; // a CA: reported by check, renewed by hand
      const ca = caOf(entry.issuer ?? "root");
      const root = read(dir, "root.cert");
      if (!ca || !root) throw new PlanetError("CA_INCOMPLETE", `the CA of ${name} is missing`, { phase });
      if (validityDays) entry.validityDays = validityDays;
      else if ((entry.validityDays ?? 365) <= warnDays) entry.validityDays = 365;
      await writeLeaf(batch, dir, entry, ca, root, true);
      entry.hash = hashOf({ req: entry.request, issuer: entry.issuer, server: entry.kubeconfig, v: entry.validityDays });
      renewed.push(name);
    }
    if (renewed.length) batch.put(RECORD, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    batch.commit();
  } catch (e) {
    batch.abort();
    throw e;
  }
  return renewed;
}
