#!/usr/bin/env bun
/** Wall time of a full `planet secrets init` for the dev target (median of 5; target ≤ 1 s). */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { certRequests } from "../core/cli/commands/secrets.ts";
import { initSecrets } from "../secrets/init.ts";
import { CLI, median, run, table } from "./_table.ts";

const { requests } = certRequests("dev");
const opts = {
  domain: "bench.local",
  serviceSubnet: "10.100.0.0/16",
  ips: ["10.211.0.1"],
  hosts: [],
  nodeName: "n",
  validityDays: 365,
};
const lib: number[] = [];
const cli: number[] = [];
for (let i = 0; i < 5; i++) {
  const dir = mkdtempSync(join(tmpdir(), "planet-bench-secrets-"));
  const t0 = performance.now();
  await initSecrets(join(dir, "a"), requests, opts);
  lib.push((performance.now() - t0) / 1000);
  cli.push(run([...CLI, "secrets", "init", "--domain", "bench.local", "--ip", "10.211.0.1", join(dir, "b")]).seconds);
  rmSync(dir, { recursive: true, force: true });
}
table(`planet secrets init (${requests.length} requests, median of 5)`, [
  ["measure", "seconds", "runs"],
  ["library (initSecrets)", median(lib).toFixed(3), lib.map((s) => s.toFixed(2)).join(" ")],
  ["CLI incl. bun start-up", median(cli).toFixed(3), cli.map((s) => s.toFixed(2)).join(" ")],
]);
