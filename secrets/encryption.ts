/**
 * Rotation of the key Secrets are encrypted with in etcd (`encryption.key`, the apiserver's
 * secretbox key), in the stages that keep every master able to read what any other wrote:
 *
 * 1. `prepare`: a new key, `encryption-next.key`, which apiservers read with but do not write with;
 * 2. `rotate`: the new key becomes `encryption.key` (written with), the old one `encryption-old.key`;
 * 3. `planet secrets reencrypt` (on a master): every Secret rewritten, so all are under the new key;
 * 4. `finish`: the old key is gone.
 *
 * After each stage the masters get the directory again (`planet secrets host`, or it is theirs) and
 * their apiservers restart, one at a time. Each stage refuses to run out of order, and writes its
 * files as temp files then renames (the record last), so an interrupted stage can be run again.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { PlanetError } from "../core/errors.ts";
import type { Kube } from "../core/kube/client.ts";
import { Batch, hashOf, loadRecord, RECORD, read, rotating } from "./record.ts";

const phase = "encryption";
export const KEY = "encryption";
export const STAGES = ["prepare", "rotate", "finish"] as const;
export type Stage = (typeof STAGES)[number];

export function rotateEncryption(dir: string, stage: Stage): string {
  const record = loadRecord(dir);
  if (!record) throw new PlanetError("NO_RECORD", `${dir} holds no ${RECORD}: rotate where planet secrets init ran`, { phase });
  if (record.host)
    throw new PlanetError(
      "HOST_DIR",
      `${dir} holds host ${record.nodeName}'s secrets: rotate in the cluster's directory, then give each master its own again (planet secrets host)`,
      { phase },
    );
  const current = read(dir, `${KEY}.key`);
  const [nextName, oldName] = rotating(KEY) as [string, string];
  const next = read(dir, `${nextName}.key`);
  const old = read(dir, `${oldName}.key`);
  const fail = (why: string) => new PlanetError("ROTATION_ORDER", why, { phase });
  if (!current) throw fail(`${dir} has no ${KEY}.key: issue it first (planet secrets init)`);
  const batch = new Batch(dir);
  const entry = { kind: "random" as const, hash: hashOf(32) };
  const saveRecord = () => {
    batch.put(RECORD, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    try {
      batch.commit();
    } catch (e) {
      batch.abort();
      throw e;
    }
  };
  // Each branch first recognises a stage a kill interrupted (files renamed, record not yet, or the
  // reverse) and completes it, so running a stage again is always safe.
  if (stage === "prepare") {
    if (next && !record.files[nextName]) {
      record.files[nextName] = entry;
      saveRecord();
      return `prepared ${nextName}.key (an interrupted prepare, completed): give it to every master, restart their apiservers, then rotate`;
    }
    if (next) throw fail("a new key is already prepared: rotate next");
    if (old) throw fail("the previous rotation is not finished: reencrypt, then finish");
    batch.put(`${nextName}.key`, `${randomBytes(32).toString("base64")}\n`, 0o600);
    record.files[nextName] = entry;
    saveRecord();
    return `prepared ${nextName}.key: give it to every master and restart their apiservers, then rotate`;
  }
  if (stage === "rotate") {
    if (next && next === current) {
      // Killed after the key files were renamed: the record and the prepared copy are left.
      record.files[oldName] = entry;
      delete record.files[nextName];
      saveRecord();
      rmSync(join(dir, `${nextName}.key`), { force: true });
      return "rotated (an interrupted rotation, completed): restart the apiservers, planet secrets reencrypt, then finish";
    }
    if (!next) throw fail("no key is prepared: run --stage prepare first");
    // An old key equal to the current one is a rotate killed after its first rename: go on.
    if (old && old !== current) throw fail("the previous rotation is not finished: reencrypt, then finish");
    batch.put(`${oldName}.key`, current, 0o600);
    batch.put(`${KEY}.key`, next, 0o600);
    record.files[oldName] = entry;
    delete record.files[nextName];
    saveRecord();
    // Removed last: until now the prepared key and the record naming it were both there.
    rmSync(join(dir, `${nextName}.key`), { force: true });
    return "rotated: Secrets are written with the new key once the apiservers restart; then planet secrets reencrypt, then finish";
  }
  if (next) throw fail("a new key is prepared but not rotated in: rotate first");
  if (!old && !record.files[oldName]) throw fail("no old key to drop: nothing is being rotated");
  delete record.files[oldName];
  saveRecord();
  rmSync(join(dir, `${oldName}.key`), { force: true });
  return "finished: the old key is gone; give the directory to every master and restart their apiservers";
}

/** Rewrites every Secret unchanged, so the apiserver stores each under its current key. */
export async function reencryptSecrets(kube: Kube): Promise<number> {
  const list = await kube.get<{ items: { metadata: { namespace: string; name: string } }[] }>("/api/v1/secrets");
  let n = 0;
  for (const { metadata } of list.items) {
    const path = `/api/v1/namespaces/${metadata.namespace}/secrets/${metadata.name}`;
    // Read and put back: a Secret changed or deleted in between is simply skipped (written anew anyway).
    const fresh = await kube.get<Record<string, unknown>>(path).catch(() => null);
    if (!fresh) continue;
    await kube
      .request("PUT", path, fresh)
      .then(() => n++)
      .catch((e: { status?: number }) => {
        if (e.status !== 404 && e.status !== 409) throw e;
      });
  }
  return n;
}
