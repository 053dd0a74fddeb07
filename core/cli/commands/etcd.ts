import { defineCommand } from "citty";
import { listMembers, promoteWhenSynced, rootClient } from "../../../plugins/etcd/members.ts";
import {
  KINDS,
  listSnapshots,
  pruneSnapshots,
  type SnapshotKind,
  saveSnapshot,
  snapshotStatus,
} from "../../../plugins/etcd/snapshots.ts";
import { PlanetError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { readManifest } from "../../manifest.ts";
import { debugArg } from "../_args.ts";

const log = logger("etcd");

/** These commands work on the etcd of the master they run in. */
function insideMaster(): void {
  const image = readManifest("/");
  if (!image?.manifest.roles.includes("master"))
    throw new PlanetError(
      "NOT_AN_IMAGE",
      "planet etcd runs inside a master's bubble: planet exec --rootfs <rootfs> -- planet etcd snapshot …",
    );
}

function kindOf(value: string): SnapshotKind {
  if (!(KINDS as readonly string[]).includes(value))
    throw new PlanetError("BAD_FLAG", `--kind ${value}: expected one of ${KINDS.join(", ")}`);
  return value as SnapshotKind;
}

function keepOf(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new PlanetError("BAD_FLAG", `--keep ${value}: expected a whole number ≥ 1`);
  return n;
}

const save = defineCommand({
  meta: {
    name: "save",
    description: "snapshot the keyspace into the etcd volume (and --copy-to); --keep prunes that kind after",
  },
  args: {
    ...debugArg,
    kind: { type: "string", description: `what it is for: ${KINDS.join(", ")}`, default: "manual" },
    "copy-to": {
      type: "string",
      description: "also copy it to this folder in the bubble (mounted with --volume) [PLANET_ETCD_SNAPSHOT_COPY_DIR]",
    },
    keep: { type: "string", description: "then keep only the N newest of this kind (here and in --copy-to)" },
    json: { type: "boolean", description: "print the snapshot as JSON" },
  },
  async run({ args }) {
    insideMaster();
    const kind = kindOf(args.kind);
    const keep = args.keep === undefined ? undefined : keepOf(args.keep);
    const copyTo = args["copy-to"] ?? (process.env.PLANET_ETCD_SNAPSHOT_COPY_DIR || undefined);
    const s = await saveSnapshot(kind, { copyTo });
    const pruned =
      keep === undefined ? [] : [...pruneSnapshots(kind, keep), ...(copyTo ? pruneSnapshots(kind, keep, copyTo) : [])];
    if (args.json) process.stdout.write(`${JSON.stringify({ ...s, pruned })}\n`);
    else {
      log.success(
        `${s.path}: revision ${s.revision}, ${s.totalKey} keys, ${(s.bytes / 1024 / 1024).toFixed(1)} MiB${copyTo ? `, copied to ${copyTo}` : ""}`,
      );
      for (const p of pruned) log.info(`pruned ${p}`);
    }
  },
});

const list = defineCommand({
  meta: { name: "list", description: "the snapshots in the etcd volume, newest first, each checked with etcdutl" },
  args: { ...debugArg, json: { type: "boolean", description: "print as JSON" } },
  async run({ args }) {
    insideMaster();
    const rows = [];
    for (const s of listSnapshots()) {
      const status = await snapshotStatus(s.path).then(
        (st) => ({ revision: st.revision, keys: st.totalKey }),
        (e: Error) => ({ error: e.message }),
      );
      rows.push({ ...s, ...status });
    }
    if (args.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else
      for (const r of rows)
        process.stdout.write(
          `${r.name}\t${(r.bytes / 1024 / 1024).toFixed(1)} MiB\t${"error" in r ? `BROKEN: ${r.error}` : `revision ${r.revision}, ${r.keys} keys`}\n`,
        );
  },
});

const prune = defineCommand({
  meta: { name: "prune", description: "keep only the N newest snapshots of a kind" },
  args: {
    ...debugArg,
    kind: { type: "string", description: `which: ${KINDS.join(", ")}`, default: "manual" },
    keep: { type: "string", description: "how many to keep", required: true },
  },
  async run({ args }) {
    insideMaster();
    for (const p of pruneSnapshots(kindOf(args.kind), keepOf(args.keep))) log.info(`pruned ${p}`);
  },
});

const members = defineCommand({
  meta: { name: "list", description: "etcd's members: name, address, voting or learner" },
  args: { ...debugArg, json: { type: "boolean", description: "print as JSON" } },
  async run({ args }) {
    insideMaster();
    const client = rootClient({ endpoints: ["https://127.0.0.1:2379"] });
    try {
      const all = await listMembers(client);
      if (args.json) return void process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
      for (const m of all)
        process.stdout.write(`${m.id}\t${m.name || "(not started)"}\t${m.ip}\t${m.learner ? "learner" : "voting"}\n`);
    } finally {
      client.close();
    }
  },
});

const promote = defineCommand({
  meta: {
    name: "promote",
    description: "this master's etcd, a learner after a join: promoted to a voting member once caught up",
  },
  args: { ...debugArg, timeout: { type: "string", description: "seconds to wait for it to catch up", default: "600" } },
  async run({ args }) {
    insideMaster();
    const ip = process.env.PLANET_PUBLIC_IP ?? "";
    const seconds = Number(args.timeout);
    if (!Number.isFinite(seconds) || seconds <= 0)
      throw new PlanetError("BAD_FLAG", `--timeout ${args.timeout}: expected seconds`);
    // The others answer for the membership: a learner serves no linearizable read itself.
    const others = (process.env.PLANET_ETCD_ENDPOINTS ?? "").split(",").filter((e) => e && !e.includes(`//${ip}:`));
    if (!others.length) return void log.info("this member is etcd's only one: nothing to promote");
    const client = rootClient({ endpoints: others });
    const t0 = Date.now();
    try {
      const how = await promoteWhenSynced(client, ip, seconds * 1000);
      log.success(
        how === "promoted"
          ? `etcd member ${process.env.KUBE_NODE_NAME} promoted to a voting member after ${((Date.now() - t0) / 1000).toFixed(1)} s`
          : `etcd member ${process.env.KUBE_NODE_NAME} votes already`,
      );
    } finally {
      client.close();
    }
  },
});

export default defineCommand({
  meta: { name: "etcd", description: "the etcd of this master: snapshots (save, list, prune), members (list, promote)" },
  subCommands: {
    snapshot: defineCommand({
      meta: { name: "snapshot", description: "etcd snapshots in the etcd volume" },
      subCommands: { save, list, prune },
    }),
    member: defineCommand({
      meta: { name: "member", description: "etcd's membership (planet leave and planet remove change it)" },
      subCommands: { list: members, promote },
    }),
  },
});
