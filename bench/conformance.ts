#!/usr/bin/env bun
/**
 * The full conformance run: one master and two nodes from the production images (build/master,
 * build/node) in test hosts on one bridge, the conformance bundle (build/conformance) imported into
 * the master's registry, and every `[Conformance]` spec of e2e.test through `planet test
 * --conformance`. Writes docs/conformance/README.md (spec, result, time; a cause beside each failure
 * from docs/conformance/causes.json) and prints the wall times.
 *
 *   make production conformance && bun bench/conformance.ts [--parallel 4] [--focus re] [--skip re] [--keep]
 *     [--label-filter 'Feature: containsAny NetworkPolicy' --out docs/conformance/netpol]   (another set of specs)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Fleet } from "../test/fleet.ts";
import { REPO } from "../test/helpers.ts";
import { table } from "./_table.ts";

const { values: opt } = parseArgs({
  options: {
    parallel: { type: "string", default: "4" },
    focus: { type: "string" },
    skip: { type: "string" },
    "label-filter": { type: "string", default: "Conformance" },
    timeout: { type: "string", default: "24h" },
    keep: { type: "boolean", default: false },
    out: { type: "string", default: join(REPO, "docs/conformance") },
  },
});

for (const need of ["build/master/rootfs", "build/node/rootfs", "build/conformance/bundle.json"])
  if (!existsSync(join(REPO, need))) {
    process.stderr.write(`${need} is missing: run make production conformance first\n`);
    process.exit(1);
  }

const work = join(REPO, "build/bench-conformance");
const fleet = new Fleet({
  cluster: "conformance",
  bridge: "pt-confbr",
  work,
  masterImage: join(REPO, "build/master/rootfs"),
  nodeImage: join(REPO, "build/node/rootfs"),
  hosts: [
    { name: "cm1", host: "pt-cm1", ip: "10.219.0.1", role: "master" },
    { name: "cn1", host: "pt-cn1", ip: "10.219.0.2", role: "node" },
    { name: "cn2", host: "pt-cn2", ip: "10.219.0.3", role: "node" },
  ],
});
const master = fleet.masters[0];
if (!master) throw new Error("no master");

const t0 = Date.now();
await fleet.prepare();
await fleet.startAll();
await fleet.ready();
const up = (Date.now() - t0) / 1000;
// The admin's kubeconfig, pointed at the master (planet-master resolves only inside the bubbles).
const kubeconfig = join(work, "admin.kubeconfig");
writeFileSync(
  kubeconfig,
  readFileSync(join(fleet.clusterDir, "admin.kubeconfig"), "utf8").replace(/server: \S+/, `server: https://${master.ip}:6443`),
);
// Outside the fleet's work folder, which fleet.down() removes: the JUnit and e2e.log stay for reading.
const report = join(REPO, "build/conformance-report");
// A JUnit left by an earlier run must not be read as this run's.
rmSync(report, { recursive: true, force: true });
mkdirSync(report, { recursive: true });
const args = [
  "test",
  "--conformance",
  "--kubeconfig",
  kubeconfig,
  "--rootfs",
  fleet.rootfs(master),
  "--bundle",
  join(REPO, "build/conformance"),
  "--parallel",
  opt.parallel as string,
  "--report-dir",
  report,
  ...(opt.focus ? ["--focus", opt.focus] : []),
  ...(opt.skip ? ["--skip", opt.skip] : []),
  "--label-filter",
  opt["label-filter"] as string,
  "--timeout",
  opt.timeout as string,
];
const t1 = Date.now();
const proc = Bun.spawn([process.execPath, join(REPO, "core/cli/main.ts"), ...args], { stdout: "pipe", stderr: "inherit" });
let last = "";
for await (const chunk of proc.stdout) {
  const text = new TextDecoder().decode(chunk);
  process.stdout.write(text);
  last = (last + text).split("\n").slice(-3).join("\n");
}
const code = await proc.exited;
const wall = (Date.now() - t1) / 1000;

// The JUnit e2e.test wrote: every spec it ran, with its time and failure.
interface Case {
  name: string;
  time: number;
  result: "passed" | "failed" | "skipped" | "timed out";
}
const cases: Case[] = [];
for (const f of readdirSync(report).filter((f) => /^junit.*\.xml$/.test(f))) {
  const xml = readFileSync(join(report, f), "utf8");
  for (const m of xml.matchAll(/<testcase name="([^"]*)"[^>]*time="([\d.]+)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = (m[1] as string)
      .replace(/&#34;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&amp;/g, "&")
      .replace(/&lt;/g, "<")
      .replace(/&gt;/g, ">");
    const body = m[4] ?? "";
    // A spec in flight when the run's --timeout ran out is not a failure of the cluster.
    const result = /<skipped/.test(body)
      ? "skipped"
      : /A suite timeout occurred/.test(body)
        ? "timed out"
        : /<failure|<error/.test(body)
          ? "failed"
          : "passed";
    // With --focus every spec left out is "skipped": the report lists what ran.
    if (result === "skipped" && (!name.includes("[Conformance]") || opt.focus)) continue;
    if (/^\[(Synchronized|Report)(Before|After)Suite\]/.test(name)) continue;
    cases.push({ name: name.replace(/^\[It\] /, ""), time: Number(m[2]), result });
  }
}
const causesFile = join(opt.out as string, "causes.json");
const causes = existsSync(causesFile) ? (JSON.parse(readFileSync(causesFile, "utf8")) as Record<string, string>) : {};
const count = (r: Case["result"]) => cases.filter((c) => c.result === r).length;
const serial = cases.filter((c) => c.name.includes("[Serial]")).reduce((s, c) => s + c.time, 0);
mkdirSync(opt.out as string, { recursive: true });
const summaryLine = last.trim().split("\n").at(-1) ?? "";
const labels = opt["label-filter"] as string;
const md = [
  labels === "Conformance" ? "# Conformance run" : `# e2e run: specs labelled \`${labels}\``,
  "",
  `Kubernetes v1.37.2 e2e.test (built from k8s.io/kubernetes@v1.37.2 here), ${new Date().toISOString().slice(0, 10)},`,
  `one master and two nodes from the production images in test hosts on one bridge of one 2-core VM,`,
  `offline (the bundle's images imported into the master's registry), ginkgo --procs=${opt.parallel}.`,
  `Produced by \`bun bench/conformance.ts --parallel ${opt.parallel}${labels === "Conformance" ? "" : ` --label-filter '${labels}'`}${opt.focus ? ` --focus '${opt.focus}'` : ""}${opt.skip ? ` --skip '${opt.skip}'` : ""}\`; the raw \`e2e.log\` and \`junit_01.xml\` (gzip) beside this file.`,
  "",
  `**${summaryLine}**`,
  "",
  `| measure | value |`,
  `|---|---|`,
  `| cluster up (3 bubbles, all Nodes Ready) | ${up.toFixed(0)} s |`,
  `| run wall time (import + specs) | ${(wall / 60).toFixed(1)} min |`,
  `| sum of spec times: parallel part / [Serial] part | ${((cases.reduce((s, c) => s + c.time, 0) - serial) / 60).toFixed(1)} min / ${(serial / 60).toFixed(1)} min |`,
  `| passed / failed / skipped / cut off by --timeout | ${count("passed")} / ${count("failed")} / ${count("skipped")} / ${count("timed out")} |`,
  "",
  "| spec | result | time (s) | cause of a failure |",
  "|---|---|---|---|",
  ...cases
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(
      (c) =>
        `| ${c.name.replaceAll("|", "\\|")} | ${c.result} | ${c.time.toFixed(1)} | ${c.result === "failed" ? (causes[c.name] ?? "not yet known") : ""} |`,
    ),
  "",
].join("\n");
for (const f of ["e2e.log", "junit_01.xml"])
  if (existsSync(join(report, f)))
    Bun.spawnSync(["sh", "-c", `gzip -9 -c '${join(report, f)}' > '${join(opt.out as string, f)}.gz'`]);
writeFileSync(join(opt.out as string, "README.md.tmp"), md);
Bun.spawnSync(["mv", join(opt.out as string, "README.md.tmp"), join(opt.out as string, "README.md")]);
// The checkout's formatter owns markdown too (biome): the report lands as it would write it.
Bun.spawnSync(["bunx", "biome", "format", "--write", join(opt.out as string, "README.md")], { cwd: REPO });
table("conformance (full run)", [
  ["measure", "value"],
  ["cluster up", `${up.toFixed(0)} s`],
  ["conformance wall time", `${(wall / 60).toFixed(1)} min`],
  ["specs passed/failed/skipped", `${count("passed")}/${count("failed")}/${count("skipped")}`],
]);
if (!opt.keep) fleet.down();
process.exit(code);
