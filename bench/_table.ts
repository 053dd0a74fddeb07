import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { cpus, hostname, release, totalmem } from "node:os";
import { basename, join } from "node:path";
import { readJsonOrNull, writeDurably } from "../core/util.ts";
import { Fleet, type FleetHost } from "../test/fleet.ts";

/**
 * Prints rows as an aligned table — what every bench ends with — each figure beside the one the
 * bench's history (`bench/results/<bench>.json`) last recorded, flagged when worse by more than 10 %;
 * with `--record` (or PLANET_BENCH_RECORD=1) the table is added to that history, with the commit,
 * the machine and the date.
 */
export function table(title: string, rows: (string | number)[][]): void {
  const bench = basename(process.argv[1] ?? "bench", ".ts");
  const previous = lastRecorded(bench, title);
  const shown = previous ? compared(rows, previous) : rows;
  print(title, shown);
  if (previous)
    process.stdout.write(
      `(last: ${previous.date.slice(0, 10)}, ${previous.commit.slice(0, 10)}, ${previous.machine.cpus} cores)\n`,
    );
  if (process.argv.includes("--record") || process.env.PLANET_BENCH_RECORD === "1") record(bench, title, rows);
}

interface Recorded {
  title: string;
  date: string;
  commit: string;
  machine: { host: string; cpus: number; memGiB: number; kernel: string };
  rows: string[][];
}

export const RESULTS = join(new URL("..", import.meta.url).pathname, "bench", "results");
const history = (bench: string): Recorded[] => {
  const file = join(RESULTS, `${bench}.json`);
  try {
    return readJsonOrNull<Recorded[]>(file) ?? [];
  } catch {
    return [];
  }
};

function lastRecorded(bench: string, title: string): Recorded | undefined {
  return history(bench).findLast((r) => r.title === title);
}

function record(bench: string, title: string, rows: (string | number)[][]): void {
  const git = Bun.spawnSync(["git", "rev-parse", "HEAD"], { cwd: join(RESULTS, "..", "..") });
  const entry: Recorded = {
    title,
    date: new Date().toISOString(),
    commit: git.exitCode === 0 ? git.stdout.toString().trim() : "unknown",
    machine: { host: hostname(), cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), kernel: release() },
    rows: rows.map((r) => r.map(String)),
  };
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `${bench}.json`);
  writeDurably(file, `${JSON.stringify([...history(bench), entry], null, 1)}\n`);
  process.stdout.write(`recorded in ${file}\n`);
}

/** A figure's number and whether less is better (times, memory) or more (throughput); null when not a measure. */
export function figure(cell: string): { n: number; lowerBetter: boolean } | null {
  // "0.4 / 0.9 ms" (p50 / p99): the first figure, in the unit at the end.
  const m = /^(-?\d+(?:\.\d+)?)(?:\s*\/\s*-?\d+(?:\.\d+)?)*\s*(ms|s|min|MiB|GiB|KiB|MB|GB|Mbit\/s|Gbit\/s|%)?(?!\S)/.exec(
    cell.trim(),
  );
  if (!m?.[2]) return null;
  return { n: Number(m[1]), lowerBetter: !/bit\/s$/.test(m[2]) };
}

/** Rows with a "last" column (the history's figure for the same measure) and a flag when >10 % worse. */
export function compared(rows: (string | number)[][], previous: Recorded): string[][] {
  const before = new Map(previous.rows.slice(1).map((r) => [r[0], r[1]]));
  return rows.map((r, i) => {
    const cells = r.map(String);
    if (i === 0) return [...cells, "last", ""];
    const old = before.get(cells[0] as string);
    const now = figure(cells[1] ?? "");
    const was = figure(old ?? "");
    let flag = "";
    if (now && was && was.n !== 0) {
      const worse = now.lowerBetter ? (now.n - was.n) / was.n : (was.n - now.n) / was.n;
      if (worse > 0.1) flag = `worse by ${Math.round(worse * 100)} %`;
    }
    return [...cells, old ?? "", flag];
  });
}

function print(title: string, rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length))) ?? [];
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ");
  process.stdout.write(`\n${title}\n${line(cells[0] ?? [])}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  for (const r of cells.slice(1)) process.stdout.write(`${line(r)}\n`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const CLI = [process.execPath, `${REPO}/core/cli/main.ts`];

export function run(args: string[], env?: Record<string, string>): { code: number; out: string; err: string; seconds: number } {
  const t0 = performance.now();
  const r = Bun.spawnSync(args, { cwd: REPO, env: { ...process.env, ...env } });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString(), seconds: (performance.now() - t0) / 1000 };
}

/** `run` without blocking the event loop: probes the bench runs beside the command keep going. */
export async function runAsync(
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number; out: string; err: string; seconds: number }> {
  const t0 = performance.now();
  const p = Bun.spawn(args, { cwd: REPO, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err, seconds: (performance.now() - t0) / 1000 };
}

/** Fails the bench with the command's stderr when it exited non-zero; `check(run([...]))`. */
export function check(r: ReturnType<typeof run>): ReturnType<typeof run> {
  if (r.code !== 0) throw new Error(r.err.slice(-800));
  return r;
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

/** The pid of a pod's pause process (the pod's network namespace), found by the pod UID in its cgroup. */
export function pausePid(podUid: string): string | undefined {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .find((p) => {
      try {
        return (
          readFileSync(`/proc/${p}/comm`, "utf8").trim() === "pause" &&
          readFileSync(`/proc/${p}/cgroup`, "utf8").includes(podUid.replaceAll("-", "_"))
        );
      } catch {
        return false;
      }
    });
}

/** The rootfs of `target` built for the benches (`build/bench-<target>`, from the asset cache). */
export function benchImage(target: string): string {
  const out = join(REPO, "build", `bench-${target}`);
  check(run([...CLI, "build", "--target", target, "--out", out]));
  return join(out, "rootfs");
}

/**
 * A fleet of test hosts for a bench: master and node images built, hosts `<prefix>-<name>` at
 * `<net>.1`, `.2`, … on bridge `<prefix>-br`, the work folder `build/bench-<cluster>-work`.
 */
export function benchFleet(cluster: string, prefix: string, net: string, hosts: [string, FleetHost["role"]][]): Fleet {
  return new Fleet({
    cluster,
    bridge: `${prefix}-br`,
    work: join(REPO, "build", `bench-${cluster}-work`),
    masterImage: benchImage("master"),
    nodeImage: benchImage("node"),
    hosts: hosts.map(([name, role], i) => ({ name, host: `${prefix}-${name}`, ip: `${net}.${i + 1}`, role })),
  });
}
