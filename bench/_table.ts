import { readdirSync, readFileSync } from "node:fs";

/** Prints rows as an aligned table — what every bench ends with. */
export function table(title: string, rows: (string | number)[][]): void {
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
