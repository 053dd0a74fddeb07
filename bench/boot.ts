#!/usr/bin/env bun
/**
 * The bubble: `planet start` → READY=1 and `planet stop` → host clean, median of 5, on a small image
 * (secrets + agent + the example plugin) in a test host. Targets: ≤ 3 s and ≤ 5 s.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SMALL_IMAGE, startArgs } from "../test/helpers.ts";
import { CLI, check, median, REPO, run, table } from "./_table.ts";

const N = 5;
const out = join(REPO, "build", "bench-box");
const secrets = mkdtempSync(join(tmpdir(), "planet-bench-"));
check(run([...CLI, "build", ...SMALL_IMAGE, "--out", out]));
check(run([...CLI, "secrets", "init", "--domain", "bench.local", "--plugins", "node", "--ip", "10.214.0.1", join(secrets, "s")]));
check(run([...CLI, "dev-host", "up", "pt-bench", "--ip", "10.214.0.1"]));
const rootfs = join(out, "rootfs");
const ready: number[] = [];
const boot: number[] = [];
const stop: number[] = [];
try {
  for (let i = 0; i < N; i++) {
    const s = check(run([...CLI, ...startArgs({ rootfs, host: "pt-bench", cluster: "bench", secrets: join(secrets, "s") })]));
    ready.push(s.seconds);
    boot.push(Number(/ready in ([\d.]+)s/.exec(s.err)?.[1] ?? Number.NaN));
    const t = check(run([...CLI, "stop", "--rootfs", rootfs]));
    if (existsSync("/run/planet")) throw new Error("stop left /run/planet behind");
    stop.push(t.seconds);
  }
} finally {
  run([...CLI, "dev-host", "down", "pt-bench"]);
  rmSync(secrets, { recursive: true, force: true });
}
const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" ");
table(`bubble start/stop, median of ${N} (small image in a test host)`, [
  ["measure", "median s", "runs", "target"],
  ["runc run → systemd READY=1", median(boot).toFixed(2), fmt(boot), "≤ 3 s"],
  ["planet start --detach (CLI, incl. unit report)", median(ready).toFixed(2), fmt(ready), ""],
  ["planet stop → host clean", median(stop).toFixed(2), fmt(stop), "≤ 5 s"],
]);
