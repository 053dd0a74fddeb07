/**
 * `planet backup <file>` on a master's host: one archive (tar.gz, 0600, written atomically) holding an
 * etcd snapshot taken now and the master's whole secrets directory (every CA and its key, the
 * service-account key, the encryption-at-rest key, serf's key: all a restore needs), described by
 * `backup.json` with each file's sha256. `planet restore <file>` on a fresh host makes that host the
 * one master of the cluster again: its etcd restored from the snapshot as a one-member cluster, its
 * own certificates issued from the restored CAs. Other masters and nodes then join it.
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { defineCommand } from "citty";
import { issueHost } from "../../../secrets/host.ts";
import { loadRecord, RECORD } from "../../../secrets/record.ts";
import { findBubble } from "../../bubble/bubble.ts";
import { execRun } from "../../bubble/exec.ts";
import { listStates, ownerAlive } from "../../bubble/state.ts";
import { PlanetError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { certsFor, readManifest } from "../../manifest.ts";
import { run } from "../../proc.ts";
import { fsyncPath } from "../../util.ts";
import { debugArg } from "../_args.ts";

const log = logger("backup");
const BACKUP_JSON = "backup.json";
/** The etcd volume as the host holds it, under the data dir (the etcd plugin's `volumes`). */
const ETCD_VOLUME = "etcd";

export interface BackupInfo {
  schema: 1;
  cluster: string;
  node: string;
  created: string;
  /** etcd's version in the image that took it: a restore refuses an older etcd than this. */
  etcd: string;
  snapshot: { file: string; revision: number; keys: number };
  /** sha256 of every file in the archive but this one. */
  files: Record<string, string>;
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

/** The value of `--flag v` / `--flag=v` in a bubble's recorded start flags. */
function flagOf(args: string[] | undefined, flag: string): string | undefined {
  for (let i = 0; i < (args?.length ?? 0); i++) {
    const a = args?.[i] ?? "";
    if (a === flag) return args?.[i + 1];
    if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
  }
  return undefined;
}

function etcdVersion(rootfs: string): string {
  const v = readManifest(rootfs)?.manifest.assets.find((a) => a.name === "etcd")?.version;
  if (!v) throw new PlanetError("NOT_AN_IMAGE", `${rootfs} is not a master image (its manifest names no etcd)`);
  return v;
}

export const backupCmd = defineCommand({
  meta: {
    name: "backup",
    description: "one archive of a master: an etcd snapshot taken now and every secret a restore needs (0600)",
  },
  args: {
    ...debugArg,
    file: { type: "positional", description: "the archive to write (.tar.gz); never half-written", required: true },
    rootfs: { type: "string", description: "the running master bubble's rootfs", required: true },
    "secrets-dir": { type: "string", description: "its secrets directory (default: the one it was started with)" },
  },
  async run({ args }) {
    const rootfs = resolve(args.rootfs);
    const state = findBubble(rootfs);
    const image = readManifest(rootfs);
    if (!image?.manifest.roles.includes("master"))
      throw new PlanetError("NOT_AN_IMAGE", `${rootfs} is not a master image: only a master holds etcd and the CA keys`);
    const secretsDir = args["secrets-dir"] ?? flagOf(state.args, "--secrets-dir");
    if (!secretsDir || !existsSync(join(secretsDir, RECORD)))
      throw new PlanetError("NO_SECRETS", `no secrets directory ${secretsDir ?? ""} with ${RECORD}: pass --secrets-dir`);
    if (!state.dataDir) throw new PlanetError("CORRUPT_STATE", `bubble ${state.id} recorded no data dir`);
    const out = resolve(args.file);
    if (!existsSync(dirname(out))) throw new PlanetError("NOT_A_DIR", `${dirname(out)} does not exist`);
    const snap = await execRun(rootfs, ["planet", "etcd", "snapshot", "save", "--kind", "backup", "--keep", "3", "--json"]);
    if (snap.exitCode !== 0)
      throw new PlanetError("ETCD_ERROR", `snapshot in ${state.id}: ${snap.stderr.trim().split("\n").at(-1) ?? ""}`);
    const taken = JSON.parse(snap.stdout.trim().split("\n").at(-1) ?? "{}") as {
      name: string;
      revision: number;
      totalKey: number;
    };
    const stage = mkdtempSync(join(dirname(out), `.${basename(out)}.stage-`));
    const tmp = `${out}.tmp-${process.pid}`;
    try {
      cpSync(join(state.dataDir, ETCD_VOLUME, "snapshots", taken.name), join(stage, "etcd.db"));
      mkdirSync(join(stage, "secrets"), { mode: 0o700 });
      for (const f of readdirSync(secretsDir))
        if (statSync(join(secretsDir, f)).isFile()) cpSync(join(secretsDir, f), join(stage, "secrets", f));
      const files: Record<string, string> = { "etcd.db": sha256(join(stage, "etcd.db")) };
      for (const f of readdirSync(join(stage, "secrets")).sort()) files[`secrets/${f}`] = sha256(join(stage, "secrets", f));
      const info: BackupInfo = {
        schema: 1,
        cluster: state.clusterId,
        node: loadRecord(secretsDir)?.nodeName ?? "",
        created: new Date().toISOString(),
        etcd: etcdVersion(rootfs),
        snapshot: { file: "etcd.db", revision: taken.revision, keys: taken.totalKey },
        files,
      };
      writeFileSync(join(stage, BACKUP_JSON), `${JSON.stringify(info, null, 2)}\n`);
      writeFileSync(tmp, "", { mode: 0o600 });
      const tar = await run(["tar", "-C", stage, "-czf", tmp, BACKUP_JSON, "etcd.db", "secrets"]);
      if (tar.exitCode !== 0) throw new PlanetError("COMMAND_FAILED", `tar: ${tar.stderr.trim()}`);
      chmodSync(tmp, 0o600);
      fsyncPath(tmp);
      renameSync(tmp, out);
      fsyncPath(dirname(out));
      log.success(
        `${out}: cluster ${info.cluster}, etcd revision ${info.snapshot.revision} (${info.snapshot.keys} keys), ${Object.keys(files).length - 1} secrets, ${(statSync(out).size / 1024 / 1024).toFixed(1)} MiB`,
      );
    } finally {
      rmSync(stage, { recursive: true, force: true });
      rmSync(tmp, { force: true });
    }
  },
});

/** Unpacks and checks a backup: every file listed, each matching its sha256. */
export async function openBackup(file: string, into: string): Promise<BackupInfo> {
  if (!existsSync(file)) throw new PlanetError("NOT_FOUND", `${file} does not exist`);
  const tar = await run(["tar", "-C", into, "-xzf", file]);
  if (tar.exitCode !== 0)
    throw new PlanetError("BACKUP_INVALID", `${file} is not a whole backup (tar: ${tar.stderr.trim().split("\n").at(-1) ?? ""})`);
  let info: BackupInfo;
  try {
    info = JSON.parse(readFileSync(join(into, BACKUP_JSON), "utf8")) as BackupInfo;
  } catch {
    throw new PlanetError("BACKUP_INVALID", `${file} holds no ${BACKUP_JSON}: not a backup planet wrote`);
  }
  if (info.schema !== 1 || !info.files || !info.cluster)
    throw new PlanetError("BACKUP_INVALID", `${file}: ${BACKUP_JSON} is not one planet wrote (schema ${String(info.schema)})`);
  for (const [f, sum] of Object.entries(info.files))
    if (!existsSync(join(into, f)) || sha256(join(into, f)) !== sum)
      throw new PlanetError("BACKUP_INVALID", `${file}: ${f} is missing or altered (sha256 differs)`);
  return info;
}

/** `3.7.3` → [3, 7]. */
const minor = (v: string) => v.split(".").slice(0, 2).map(Number) as [number, number];

export const restoreCmd = defineCommand({
  meta: {
    name: "restore",
    description:
      "make this fresh host the one master of a backed-up cluster: etcd from the snapshot, its certificates from the restored CAs",
  },
  args: {
    ...debugArg,
    file: { type: "positional", description: "the archive planet backup wrote", required: true },
    rootfs: { type: "string", description: "the master image this host will start (its etcdutl restores)", required: true },
    "secrets-dir": { type: "string", description: "where this host's secrets go (must be empty or absent)", required: true },
    "data-dir": { type: "string", description: "this host's data dir (must hold no etcd data)", required: true },
    "node-name": { type: "string", description: "this host's node name (the etcd member's name too)", required: true },
    ip: { type: "string", description: "this host's public IP (etcd's peer address)", required: true },
    "cluster-id": { type: "string", description: "refuse a backup of another cluster than this one" },
    force: {
      type: "boolean",
      description:
        "onto a host that held a cluster before: its etcd data and secrets are set aside (<path>.before-restore-<time>), not deleted",
    },
  },
  async run({ args }) {
    const rootfs = resolve(args.rootfs);
    const image = readManifest(rootfs);
    if (!image?.manifest.roles.includes("master"))
      throw new PlanetError("NOT_AN_IMAGE", `${rootfs} is not a master image: restore needs one (etcd, the control plane)`);
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(args.ip)) throw new PlanetError("BAD_IP", `--ip ${args.ip}: expected an IPv4 address`);
    const dataDir = resolve(args["data-dir"]);
    const secretsDir = resolve(args["secrets-dir"]);
    const member = join(dataDir, ETCD_VOLUME, "member");
    const running = listStates().find((st) => st.dataDir && resolve(st.dataDir) === dataDir && ownerAlive(st));
    if (running) throw new PlanetError("BUBBLE_RUNNING", `bubble ${running.id} runs on ${dataDir}: stop it first`);
    if (existsSync(member) && !args.force)
      throw new PlanetError(
        "BUBBLE_RUNNING",
        `${member} exists: this host already holds a cluster's etcd; restore onto a fresh --data-dir, or with --force to set it aside`,
      );
    if (existsSync(secretsDir) && readdirSync(secretsDir).length > 0 && !args.force)
      throw new PlanetError(
        "NOT_OUR_DIR",
        `${secretsDir} is not empty: restore writes a fresh secrets directory (--force sets this one aside)`,
      );
    mkdirSync(dirname(dataDir), { recursive: true });
    const work = mkdtempSync(join(dirname(dataDir), ".planet-restore-"));
    try {
      const info = await openBackup(resolve(args.file), work);
      if (args["cluster-id"] && args["cluster-id"] !== info.cluster)
        throw new PlanetError("CA_MISMATCH", `${args.file} is a backup of cluster ${info.cluster}, not ${args["cluster-id"]}`);
      const have = etcdVersion(rootfs);
      const [bm, bn] = minor(info.etcd);
      const [im, imn] = minor(have);
      if (bm > im || (bm === im && bn > imn))
        throw new PlanetError(
          "UPGRADE_REFUSED",
          `${args.file} was taken with etcd ${info.etcd}, newer than this image's ${have}: restore with that image`,
        );
      // The restored secrets as a cluster directory (a master's host record made the cluster's again).
      const from = join(work, "secrets");
      const record = JSON.parse(readFileSync(join(from, RECORD), "utf8")) as { host?: unknown };
      delete record.host;
      writeFileSync(join(from, RECORD), `${JSON.stringify(record, null, 2)}\n`);
      // etcd first, into a temp folder renamed into place: a failure leaves the data dir without it.
      mkdirSync(join(dataDir, ETCD_VOLUME), { recursive: true, mode: 0o700 });
      const tmp = `${member}.restore-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      const peer = `https://${args.ip}:2380`;
      const res = await run([
        join(rootfs, "usr/bin/etcdutl"),
        "snapshot",
        "restore",
        join(work, "etcd.db"),
        "--name",
        args["node-name"],
        "--initial-cluster",
        `${args["node-name"]}=${peer}`,
        "--initial-advertise-peer-urls",
        peer,
        "--data-dir",
        tmp,
      ]);
      if (res.exitCode !== 0) {
        rmSync(tmp, { recursive: true, force: true });
        throw new PlanetError("ETCD_ERROR", `etcdutl snapshot restore: ${res.stderr.trim().split("\n").at(-1) ?? ""}`);
      }
      // An old host's etcd data and secrets go aside (an operator may want them), once the backup checked out and etcd restored.
      const aside = `before-restore-${new Date()
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d+Z$/, "Z")}`;
      for (const old of [member, secretsDir])
        if (existsSync(old) && (old === member || readdirSync(old).length > 0)) {
          renameSync(old, `${old}.${aside}`);
          log.warn(`${old} set aside as ${old}.${aside}`);
        }
      const roles = image.manifest.roles;
      try {
        await issueHost(from, secretsDir, certsFor(image.manifest, roles), {
          nodeName: args["node-name"],
          ips: [args.ip],
          hosts: [],
          roles: [...roles],
          validityDays: 365,
        });
      } catch (e) {
        rmSync(tmp, { recursive: true, force: true });
        rmSync(secretsDir, { recursive: true, force: true });
        throw e;
      }
      renameSync(tmp, member);
      fsyncPath(join(dataDir, ETCD_VOLUME));
      log.success(
        `restored cluster ${info.cluster} (etcd revision ${info.snapshot.revision}, taken ${info.created}) as master ${args["node-name"]}: start it with planet start --rootfs ${rootfs} --cluster-id ${info.cluster} --node-name ${args["node-name"]} --secrets-dir ${secretsDir} --data-dir ${dataDir}`,
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
});
