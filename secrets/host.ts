/**
 * `planet secrets host`: a host's own directory issued from the cluster's, holding what the host's
 * roles and plugins need and no more: every CA's certificate, a CA's key only where its request's
 * `keyRoles` say, the shared keys, and the host's own leaves for its name and addresses.
 */
import { existsSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PlanetError } from "../core/errors.ts";
import { type CertRequest, isCA, type Role } from "../core/plugin.ts";
import { putBundle, putLeaf } from "./leaf.ts";
import { type KeyPair, keyPem } from "./pki.ts";
import {
  Batch,
  checkDir,
  type FileRecord,
  fingerprint,
  hashOf,
  type InitResult,
  keyGoesTo,
  loadCA,
  loadRecord,
  newRecord,
  OWN_EXTS,
  prepareDir,
  RECORD,
  read,
  rotating,
  type SecretsOptions,
  validate,
  withRoot,
} from "./record.ts";

const phase = "secrets";

export interface HostOptions {
  nodeName: string;
  /** The host's addresses; the first is its public IP. */
  ips: string[];
  hosts: string[];
  roles: Role[];
  validityDays: number;
  force?: boolean;
  /** The cluster's masters as a join learned them (`name:ip`), kept in the record. */
  masters?: string[];
}

/**
 * A host's own secrets, issued from the cluster directory `planet secrets init` wrote: every CA's
 * certificate (a CA's key only where its `keyRoles` name one of the host's roles), the shared keys
 * its plugins need, and its own leaf certificates for its name and addresses. `requests` are those
 * of the plugins active on the host. Re-runs keep what still matches, like init.
 */
export async function issueHost(
  clusterDir: string,
  hostDir: string,
  requests: CertRequest[],
  opts: HostOptions,
): Promise<InitResult> {
  const cluster = loadRecord(clusterDir);
  if (!cluster || cluster.host)
    throw new PlanetError(
      "NO_RECORD",
      `${clusterDir} is not a cluster secrets directory (make one: planet secrets init --domain D ${clusterDir})`,
      { phase },
    );
  if (existsSync(hostDir) && realpathSync(hostDir) === realpathSync(clusterDir))
    throw new PlanetError("BAD_FLAG", `the host's directory must not be the cluster's (${clusterDir})`, { phase });
  if (!opts.roles.length) throw new PlanetError("BAD_FLAG", "--role is required (master, node or both)", { phase });
  if (!opts.ips.length) throw new PlanetError("BAD_FLAG", "--ip is required: the host's address", { phase });
  const sopts: SecretsOptions = { ...opts, domain: cluster.domain, serviceSubnet: cluster.serviceSubnet };
  const { serviceIp } = validate(sopts);
  const previous = loadRecord(hostDir);
  if (previous && !previous.host)
    throw new PlanetError("NOT_OUR_DIR", `${hostDir} is a cluster secrets directory, not a host's`, { phase });
  if (previous?.host && previous.nodeName !== opts.nodeName)
    throw new PlanetError(
      "NOT_OUR_DIR",
      `${hostDir} holds the secrets of host ${previous.nodeName}, not ${opts.nodeName}; use a directory per host`,
      { phase },
    );
  checkDir(hostDir, requests, previous);

  const cas = withRoot(requests.filter(isCA));
  const caPairs = new Map<string, KeyPair>();
  const trust = new Map<string, string>();
  for (const r of cas) {
    const pair = loadCA(clusterDir, r.name);
    if (!pair)
      throw new PlanetError(
        "NO_CA",
        `${clusterDir} has no ${r.name} CA; issue it where the cluster's CAs live: planet secrets init --domain ${cluster.domain} --plugins <target> ${clusterDir}`,
        { phase },
      );
    caPairs.set(r.name, pair);
    trust.set(r.name, read(clusterDir, `${r.name}.cert`) as string);
  }
  const shared = (r: CertRequest, file: string): string => {
    const text = read(clusterDir, file);
    if (!text)
      throw new PlanetError(
        "MISSING_SECRET",
        `${join(clusterDir, file)} is missing (the ${r.name} secret every host shares); add it: planet secrets init --domain ${cluster.domain} --plugins <target> ${clusterDir}`,
        { phase },
      );
    return text;
  };
  prepareDir(hostDir);
  const record = newRecord(sopts, serviceIp);
  record.host = {
    roles: opts.roles,
    cluster: fingerprint(caPairs.get("root") as KeyPair),
    ...(opts.masters ? { masters: opts.masters } : {}),
  };
  const batch = new Batch(hostDir);
  const out: InitResult = { issued: [], kept: [] };
  try {
    for (const r of cas) {
      const pair = caPairs.get(r.name) as KeyPair;
      batch.put(`${r.name}.cert`, trust.get(r.name) as string, 0o644);
      if (keyGoesTo(r, opts.roles)) batch.put(`${r.name}.key`, keyPem(pair.key), 0o600);
      record.files[r.name] = { kind: "ca", hash: "ca" };
    }
    await Promise.all(
      requests
        .filter((r) => !isCA(r))
        .map(async (r) => {
          if ("randomBytes" in r || "keyPair" in r) {
            record.files[r.name] =
              "randomBytes" in r ? { kind: "random", hash: hashOf(r.randomBytes) } : { kind: "keypair", hash: "keypair" };
            batch.put(`${r.name}.key`, shared(r, `${r.name}.key`), 0o600);
            // The keys a rotation has beside it go along; once the cluster's are gone, the host's go too.
            for (const c of "randomBytes" in r ? rotating(r.name) : []) {
              const text = cluster.files[c] ? read(clusterDir, `${c}.key`) : null;
              if (text) {
                record.files[c] = cluster.files[c] as FileRecord;
                batch.put(`${c}.key`, text, 0o600);
              }
            }
            if ("keyPair" in r) batch.put(`${r.name}.pub`, shared(r, `${r.name}.pub`), 0o644);
            return;
          }
          if ("bundle" in r) return putBundle(batch, record, r, trust, out);
          await putLeaf(batch, hostDir, record, r, caPairs, trust, sopts, serviceIp, previous, out);
        }),
    );
    // A CA key this host may no longer hold goes (its role changed), and so does every file of a
    // request it is no longer issued (e.g. an etcd client certificate a node held before).
    for (const r of cas) if (!keyGoesTo(r, opts.roles) && read(hostDir, `${r.name}.key`)) rmSync(join(hostDir, `${r.name}.key`));
    for (const name of Object.keys(previous?.files ?? {}))
      if (!record.files[name]) for (const ext of OWN_EXTS) rmSync(join(hostDir, `${name}${ext}`), { force: true });
    batch.put(RECORD, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    batch.commit();
  } catch (e) {
    batch.abort();
    throw e;
  }
  return { issued: out.issued.sort(), kept: out.kept.sort() };
}
