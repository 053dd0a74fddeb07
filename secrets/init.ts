/**
 * `planet secrets init`: the cluster's directory, issued from the union of the plugins' certificate
 * requests. It holds every CA with its key; the hosts' own directories are cut from it (host.ts).
 */
import { randomBytes } from "node:crypto";
import { PlanetError } from "../core/errors.ts";
import { type CertRequest, isCA } from "../core/plugin.ts";
import { putBundle, putLeaf } from "./leaf.ts";
import { certPem, createCA, generateKey, type KeyPair, keyPem, publicKeyPem } from "./pki.ts";
import {
  Batch,
  checkDir,
  hashOf,
  type InitResult,
  loadCA,
  loadRecord,
  newRecord,
  prepareDir,
  RECORD,
  read,
  rotating,
  type SecretsOptions,
  validate,
  withRoot,
} from "./record.ts";

const phase = "secrets";

/**
 * Issues the union of the requests into `dir`: keeps the CAs and every leaf that still matches its
 * request and verifies, issues what is missing or changed (every leaf with `force`).
 */
export async function initSecrets(dir: string, requests: CertRequest[], opts: SecretsOptions): Promise<InitResult> {
  const { serviceIp } = validate(opts);
  const previous = loadRecord(dir);
  if (previous?.host)
    throw new PlanetError(
      "NOT_OUR_DIR",
      `${dir} holds the secrets of host ${previous.nodeName} (planet secrets host); init the cluster in its own directory`,
      { phase },
    );
  checkDir(dir, requests, previous);
  prepareDir(dir);

  const cas = withRoot(requests.filter(isCA));
  // Every existing CA is checked before anything is written.
  const loaded = new Map(cas.map((r) => [r.name, loadCA(dir, r.name)] as const));
  const record = newRecord(opts, serviceIp);
  const batch = new Batch(dir);
  const out: InitResult = { issued: [], kept: [] };
  try {
    const caPairs = new Map<string, KeyPair>();
    // What each CA's certificate file holds: its certificate, and during a rotation the other one too.
    const trust = new Map<string, string>();
    for (const r of cas) {
      let pair = loaded.get(r.name) ?? null;
      if (!pair) {
        pair = await createCA(r.cn, r.org);
        batch.put(`${r.name}.cert`, certPem(pair.cert), 0o644);
        batch.put(`${r.name}.key`, keyPem(pair.key), 0o600);
        out.issued.push(r.name);
      } else out.kept.push(r.name);
      caPairs.set(r.name, pair);
      trust.set(r.name, read(dir, `${r.name}.cert`) ?? certPem(pair.cert));
      record.files[r.name] = { kind: "ca", hash: "ca" };
      // A CA being rotated (secrets/rotate-ca.ts) keeps its companions: the one coming in, the one going out.
      for (const c of rotating(r.name)) if (previous?.files[c] && read(dir, `${c}.cert`)) record.files[c] = previous.files[c];
    }
    const leaves = requests.filter((r) => !isCA(r));
    await Promise.all(
      leaves.map(async (r) => {
        if ("randomBytes" in r) {
          record.files[r.name] = { kind: "random", hash: hashOf(r.randomBytes) };
          // A key being rotated in or out (secrets/encryption.ts) stays with its record.
          for (const c of rotating(r.name)) if (previous?.files[c] && read(dir, `${c}.key`)) record.files[c] = previous.files[c];
          if (read(dir, `${r.name}.key`) && !opts.force) return void out.kept.push(r.name);
          batch.put(`${r.name}.key`, `${randomBytes(r.randomBytes).toString("base64")}\n`, 0o600);
          return void out.issued.push(r.name);
        }
        if ("keyPair" in r) {
          record.files[r.name] = { kind: "keypair", hash: "keypair" };
          const existing = read(dir, `${r.name}.key`);
          if (existing && read(dir, `${r.name}.pub`)) return void out.kept.push(r.name);
          const key = (await generateKey()).privateKey;
          batch.put(`${r.name}.key`, keyPem(key), 0o600);
          batch.put(`${r.name}.pub`, publicKeyPem(key), 0o644);
          return void out.issued.push(r.name);
        }
        if ("bundle" in r) return putBundle(batch, record, r, trust, out);
        await putLeaf(batch, dir, record, r, caPairs, trust, opts, serviceIp, previous, out);
      }),
    );
    batch.put(RECORD, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    batch.commit();
  } catch (e) {
    batch.abort();
    throw e;
  }
  return { issued: out.issued.sort(), kept: out.kept.sort() };
}
