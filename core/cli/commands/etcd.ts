import { defineCommand } from "citty";
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

export default defineCommand({
  meta: { name: "etcd", description: "the etcd of this master: snapshots (save, list, prune)" },
  subCommands: {
    snapshot: defineCommand({
      meta: { name: "snapshot", description: "etcd snapshots in the etcd volume" },
      subCommands: { save, list, prune },
    }),
  },
});
