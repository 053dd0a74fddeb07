/**
 * `planet secrets rotate-ca`: a CA replaced with an overlap in which the old and the new one are both
 * trusted, in three stages run where `planet secrets init` ran (the CA keys are there):
 *
 *   prepare  a new CA `<ca>-next`; the CA's file (`<ca>.cert`, which every component reads as trust,
 *            and every bundle and kubeconfig made from it) holds old + new. Leaves stay as they are.
 *   rotate   the new CA signs: `<ca>.key` is its key, `<ca>.cert` new + old (`<ca>-old.cert` keeps the
 *            old one apart), and every leaf the CA signed is issued anew by it.
 *   finish   `<ca>.cert` holds the new CA alone; the old one is trusted nowhere once hosts have it.
 *
 * Between stages every host gets its directory again (`planet secrets host`, or for hosts that
 * joined with a token the masters' `/trust` through `planet secrets renew`) and restarts what uses the
 * changed files (`--restart-units`). Each stage works out what is left to do from the files alone, so
 * one killed at any point is completed by running it again; `-next` files are removed last.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type ErrorCode, PlanetError } from "../core/errors.ts";
import type { CertRequest } from "../core/plugin.ts";
import { checkSecrets } from "./check.ts";
import { initSecrets } from "./init.ts";
import { certPem, createCA, keyMatches, keyPem, parseCert, parseKey, pemsOf, sameCert, signedBy } from "./pki.ts";
import { Batch, loadCA, loadRecord, RECORD, type Record_, read, rotating } from "./record.ts";

export const CA_STAGES = ["prepare", "rotate", "finish"] as const;
export type CaStage = (typeof CA_STAGES)[number];

const phase = "rotate-ca";

/** The new CA's common name: `planet-ca` → `planet-ca-2` → `planet-ca-3`. */
function nextName(cn: string): string {
  const m = /^(.*)-(\d+)$/.exec(cn);
  return m ? `${m[1]}-${Number(m[2]) + 1}` : `${cn}-2`;
}

const cnOf = (pem: string) => String(parseCert(pem).subject.getField("CN")?.value ?? "");

/**
 * Runs one stage of rotating `ca` in the cluster directory `dir`. `requests` are every plugin's
 * certificate requests (those the directory holds are re-checked after the stage, so kubeconfigs,
 * bundles and leaves follow the CA's file). Returns what was done, in one line.
 */
export async function rotateCA(dir: string, ca: string, stage: CaStage, requests: CertRequest[]): Promise<string> {
  const fail = (code: ErrorCode, msg: string) => new PlanetError(code, msg, { phase });
  const record = loadRecord(dir);
  if (!record) throw fail("NO_RECORD", `${dir} has no ${RECORD}: rotate a CA where planet secrets init ran`);
  if (record.host)
    throw fail(
      "HOST_DIR",
      `${dir} holds host ${record.nodeName}'s secrets: rotate the CA where planet secrets init ran, then planet secrets host for each host`,
    );
  const cas = Object.entries(record.files)
    .filter(([name, f]) => f.kind === "ca" && !rotating("").some((suffix) => name.endsWith(suffix)))
    .map(([name]) => name);
  if (!cas.includes(ca)) throw fail("UNKNOWN_CERT", `--ca ${ca}: this directory's CAs are ${cas.join(", ")}`);
  const [next, old] = rotating(ca) as [string, string];
  const trust = read(dir, `${ca}.cert`);
  if (!trust || !read(dir, `${ca}.key`)) throw fail("CA_INCOMPLETE", `${join(dir, ca)}.cert/.key missing: restore them first`);
  const certs = pemsOf(trust);
  const batch = new Batch(dir);
  const save = (r: Record_) => batch.put(RECORD, `${JSON.stringify(r, null, 2)}\n`, 0o600);
  let said: string;
  try {
    if (stage === "prepare") {
      if (record.files[old] || (certs.length > 1 && !existsSync(join(dir, `${next}.key`))))
        throw fail("ROTATION_ORDER", `${ca}'s last rotation is not finished: planet secrets rotate-ca --ca ${ca} --stage finish`);
      // A new CA from a run that was killed is taken up again, not made twice.
      const current = loadCA(dir, ca);
      const pair = existsSync(join(dir, `${next}.key`)) ? loadCA(dir, next) : null;
      const orgs = current?.cert.subject.attributes.filter((a) => a.shortName === "O").map((a) => String(a.value));
      const incoming = pair ?? (await createCA(nextName(cnOf(trust)), orgs));
      batch.put(`${next}.cert`, certPem(incoming.cert), 0o644);
      batch.put(`${next}.key`, keyPem(incoming.key), 0o600);
      batch.put(`${ca}.cert`, `${certs[0]}${certPem(incoming.cert)}`, 0o644);
      record.files[next] = { kind: "ca", hash: "next" };
      save(record);
      batch.commit();
      said = `${ca}: ${cnOf(certPem(incoming.cert))} made and trusted beside ${cnOf(trust)}; give every host its directory again and restart what uses it, then --stage rotate`;
    } else if (stage === "rotate") {
      const incoming = existsSync(join(dir, `${next}.key`)) ? loadCA(dir, next) : null;
      if (incoming) {
        const nextPem = certPem(incoming.cert);
        const outgoing = certs.filter((p) => !sameCert(p, nextPem));
        if (!outgoing.length) throw fail("CA_CORRUPT", `${ca}.cert does not hold the CA going out; restore it`);
        batch.put(`${ca}.key`, keyPem(incoming.key), 0o600);
        batch.put(`${ca}.cert`, [nextPem, ...outgoing].join(""), 0o644);
        batch.put(`${old}.cert`, outgoing.join(""), 0o644);
        delete record.files[next];
        record.files[old] = { kind: "ca", hash: "old" };
        save(record);
        batch.commit();
        rmSync(join(dir, `${next}.cert`), { force: true });
        rmSync(join(dir, `${next}.key`), { force: true });
      } else if (!record.files[old]) throw fail("ROTATION_ORDER", `${ca} is not being rotated: --stage prepare first`);
      said = `${ca}: ${cnOf(read(dir, `${ca}.cert`) as string)} signs; every leaf it signed issued anew; give every host its directory again and restart what uses it, then --stage finish`;
    } else {
      if (existsSync(join(dir, `${next}.key`)))
        throw fail("ROTATION_ORDER", `${ca} is prepared but not rotated: --stage rotate first`);
      const signer = loadCA(dir, ca);
      if (!signer) throw fail("CA_INCOMPLETE", `${join(dir, ca)}.cert/.key missing`);
      // Every leaf of this CA must be the new one's: a rotate cut short is run again first.
      const stale = checkSecrets(dir, 0)
        .filter((r) => record.files[r.name]?.kind === "cert" && (record.files[r.name]?.issuer ?? "root") === ca)
        .filter((r) => !signedBy(parseCert(read(dir, `${r.name}.cert`) as string), signer.cert))
        .map((r) => r.name);
      if (stale.length)
        throw fail("ROTATION_ORDER", `${stale.slice(0, 3).join(", ")} not yet issued by the new ${ca}: --stage rotate again`);
      const pem = certPem(signer.cert);
      if (!keyMatches(signer.cert, parseKey(read(dir, `${ca}.key`) as string)))
        throw fail("CA_MISMATCH", `${ca}.key does not belong to ${ca}.cert`);
      batch.put(`${ca}.cert`, pem, 0o644);
      delete record.files[old];
      save(record);
      batch.commit();
      rmSync(join(dir, `${old}.cert`), { force: true });
      said = `${ca}: only ${cnOf(pem)} is trusted; give every host its directory again and restart what uses it`;
    }
  } catch (e) {
    batch.abort();
    throw e;
  }
  // Bundles, kubeconfigs and leaves follow the CA's file: what no longer matches is written anew.
  const held = requests.filter((r) => record.files[r.name] || r.name === ca);
  const validity = Object.values(record.files).find((f) => f.kind === "cert")?.validityDays ?? 365;
  const res = await initSecrets(dir, held, { ...record, validityDays: validity });
  return `${said} (${res.issued.length} files written)`;
}
