/**
 * etcd snapshots on a master, inside the bubble: saved with etcdctl as etcd's root user into the etcd
 * volume (`/ext/etcd/snapshots/<kind>-<UTC time>.db`, written to a temp name, fsynced, renamed),
 * optionally copied to a second folder, listed with what etcdutl reads from each file, and pruned per
 * kind to the newest N. Kinds: `scheduled` (the timer), `manual`, `pre-upgrade`, `backup`.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { PlanetError } from "../../core/errors.ts";
import { run } from "../../core/proc.ts";
import { copyDurably, fsyncPath } from "../../core/util.ts";

export const SNAPSHOT_DIR = "/ext/etcd/snapshots";
export const KINDS = ["scheduled", "manual", "pre-upgrade", "backup"] as const;
export type SnapshotKind = (typeof KINDS)[number];
const NAME = /^(scheduled|manual|pre-upgrade|backup)-(\d{8}T\d{6}Z)\.db$/;

export interface Snapshot {
  name: string;
  kind: SnapshotKind;
  /** When it was taken (from its name), ISO 8601. */
  taken: string;
  path: string;
  bytes: number;
}

export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** `20261207T181200Z` for a date. */
export function stamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

/** The snapshots in `dir`, newest first; files of other names are not ours and are left out. */
export function listSnapshots(dir = SNAPSHOT_DIR): Snapshot[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => ({ name, m: NAME.exec(name) }))
    .filter((x): x is { name: string; m: RegExpExecArray } => x.m !== null)
    .map(({ name, m }) => {
      const t = m[2] as string;
      return {
        name,
        kind: m[1] as SnapshotKind,
        taken: `${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(9, 11)}:${t.slice(11, 13)}:${t.slice(13, 15)}Z`,
        path: join(dir, name),
        bytes: statSync(join(dir, name)).size,
      };
    })
    .sort((a, b) => b.taken.localeCompare(a.taken) || a.name.localeCompare(b.name));
}

/** Deletes all but the `keep` newest snapshots of `kind` in `dir`; returns the names deleted. */
export function pruneSnapshots(kind: SnapshotKind, keep: number, dir = SNAPSHOT_DIR): string[] {
  if (!Number.isInteger(keep) || keep < 1) throw new PlanetError("BAD_FLAG", `--keep ${keep}: expected a whole number ≥ 1`);
  const gone = listSnapshots(dir)
    .filter((s) => s.kind === kind)
    .slice(keep);
  for (const s of gone) rmSync(s.path, { force: true });
  return gone.map((s) => s.name);
}

/** What etcdutl reads from a snapshot file (it checks the file's hash: a truncated one is refused). */
export async function snapshotStatus(file: string, etcdutl = "etcdutl"): Promise<SnapshotStatus> {
  const res = await run([etcdutl, "snapshot", "status", file, "--write-out", "json"], { timeoutMs: 60_000 });
  if (res.exitCode !== 0)
    throw new PlanetError(
      "SNAPSHOT_INVALID",
      `${file} is not a whole etcd snapshot: ${(res.stderr.trim().split("\n").at(-1) ?? "").replace(/^Error: /, "")}`,
    );
  return JSON.parse(res.stdout) as SnapshotStatus;
}

/**
 * Saves a snapshot of the keyspace (etcdctl as etcd's root user, `/usr/local/bin/etcdctl`) into `dir`,
 * checks it with etcdutl, copies it to `copyTo` when given, and returns it.
 */
export async function saveSnapshot(
  kind: SnapshotKind,
  o: { dir?: string; copyTo?: string; etcdctl?: string; etcdutl?: string } = {},
): Promise<Snapshot & SnapshotStatus> {
  const dir = o.dir ?? SNAPSHOT_DIR;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = `${kind}-${stamp()}.db`;
  const path = join(dir, name);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const res = await run([o.etcdctl ?? "/usr/local/bin/etcdctl", "snapshot", "save", tmp], { timeoutMs: 300_000 });
    if (res.exitCode !== 0)
      throw new PlanetError(
        "ETCD_ERROR",
        `etcdctl snapshot save: ${res.stderr.trim().split("\n").at(-1) ?? `exit ${res.exitCode}`}`,
      );
    fsyncPath(tmp);
    const status = await snapshotStatus(tmp, o.etcdutl);
    renameSync(tmp, path);
    fsyncPath(dir);
    if (o.copyTo) {
      if (!existsSync(o.copyTo) || !statSync(o.copyTo).isDirectory())
        throw new PlanetError(
          "NOT_A_DIR",
          `snapshot copy folder ${o.copyTo} is not a folder in the bubble (mount one with --volume)`,
        );
      copyDurably(path, join(o.copyTo, basename(path)));
    }
    return { name, kind, taken: new Date().toISOString(), path, bytes: statSync(path).size, ...status };
  } finally {
    rmSync(tmp, { force: true });
  }
}
