#!/usr/bin/env bun
/**
 * Kubernetes in the bubble (dev image, test host): start → node Ready (fresh cluster and restart),
 * start → first pod Running on a fresh cluster, memory of the bubble's memory cgroup and per unit
 * after --settle seconds (default 300) with one pod, the agent's idle RSS/CPU and `planet status`
 * latency. Targets: Ready ≤ 8 s, pod ≤ 15 s, memory ≤ 350 MiB, agent < 60 MB and < 1 % CPU.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import { startArgs } from "../test/helpers.ts";
import { CLI, check, median, mib, pausePid, REPO, run, table } from "./_table.ts";

const settle = Number(process.argv.find((a) => a.startsWith("--settle="))?.slice(9) ?? 300);
const IP = "10.215.0.1";
const NS = "pt-kbench";
const ID = "planet-kbench-pt-kbench";
const rootfs = join(REPO, "build", "dev", "rootfs");
const work = mkdtempSync(join(tmpdir(), "planet-kbench-"));
const secrets = join(work, "secrets");
const start = () =>
  check(run([...CLI, ...startArgs({ rootfs, host: NS, cluster: "kbench", node: "bench", secrets, data: join(work, "data") })]));

check(run([...CLI, "build", "--target", "dev"]));
check(run([...CLI, "secrets", "init", "--domain", "bench.local", "--ip", IP, "--node-name", "bench", secrets]));
check(run([...CLI, "dev-host", "up", NS, "--ip", IP]));
const kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig")));

async function until(probe: () => Promise<boolean>, ms = 180_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await probe().catch(() => false)) return;
    await Bun.sleep(100);
  }
  throw new Error("timeout");
}
const ready = (since: number) => async () => {
  const n = await kube.get<{ status: { conditions: { type: string; status: string; lastHeartbeatTime: string }[] } }>(
    "/api/v1/nodes/bench",
  );
  const c = n.status.conditions.find((x) => x.type === "Ready");
  return c?.status === "True" && Date.parse(c.lastHeartbeatTime) >= since - 1000;
};
const pod = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "bb" },
  spec: {
    terminationGracePeriodSeconds: 1,
    containers: [
      { name: "bb", image: "docker.io/library/busybox:latest", imagePullPolicy: "IfNotPresent", command: ["sleep", "36000"] },
    ],
  },
};

const rows: (string | number)[][] = [["measure", "value", "target"]];
try {
  let t0 = Date.now();
  start();
  await until(ready(t0));
  rows.push(["fresh cluster: start → node Ready", `${((Date.now() - t0) / 1000).toFixed(1)} s`, "≤ 8 s"]);
  await until(async () => {
    await kube.create("/api/v1/namespaces/default/pods", pod);
    return true;
  });
  await until(
    async () => (await kube.get<{ status: { phase: string } }>("/api/v1/namespaces/default/pods/bb")).status.phase === "Running",
  );
  rows.push(["fresh cluster: start → first pod Running", `${((Date.now() - t0) / 1000).toFixed(1)} s`, "≤ 15 s"]);

  const restarts: number[] = [];
  for (let i = 0; i < 3; i++) {
    check(run([...CLI, "stop", "--rootfs", rootfs]));
    t0 = Date.now();
    start();
    await until(ready(t0));
    restarts.push((Date.now() - t0) / 1000);
  }
  rows.push([
    "restart: start → node Ready (median of 3)",
    `${median(restarts).toFixed(1)} s`,
    `runs ${restarts.map((x) => x.toFixed(1)).join(" ")}`,
  ]);

  await until(
    async () => (await kube.get<{ status: { phase: string } }>("/api/v1/namespaces/default/pods/bb")).status.phase === "Running",
  );
  process.stderr.write(`settling ${settle}s with one pod…\n`);
  await Bun.sleep(settle * 1000);
  // DNS from the pod: queries sent inside its network namespace (the pause process's, found by the
  // pod's UID in its cgroup), through the kube-dns Service.
  const uid = (await kube.get<{ metadata: { uid: string } }>("/api/v1/namespaces/default/pods/bb")).metadata.uid;
  const podPid = pausePid(uid);
  if (podPid) {
    const probe = run(["nsenter", "-t", podPid, "-n", process.execPath, join(REPO, "bench/dns-probe.ts"), "10.100.0.10", "1000"]);
    const dns = JSON.parse(probe.out || "{}") as Record<string, { p50: number; p99: number; errors: number }>;
    for (const [kind, r] of Object.entries(dns))
      rows.push([
        `DNS from a pod, ${kind} (1000 queries)`,
        `p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`,
        `${r.errors} errors`,
      ]);
  } else rows.push(["DNS from a pod", "pod sandbox not found", ""]);
  const cg = `/sys/fs/cgroup/memory/${ID}`;
  const stat = (dir: string) =>
    Object.fromEntries(
      readFileSync(join(dir, "memory.stat"), "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split(" ") as [string, string])
        .map(([k, v]) => [k, Number(v)]),
    );
  const s = stat(cg);
  rows.push([
    `bubble memory cgroup usage (${settle}s after Ready, 1 pod)`,
    mib(Number(readFileSync(join(cg, "memory.usage_in_bytes"), "utf8"))),
    "≤ 350 MiB",
  ]);
  rows.push(["  of which rss (anon) / cache", `${mib(s.total_rss ?? 0)} / ${mib(s.total_cache ?? 0)}`, ""]);
  rows.push([
    "  working set (usage − inactive_file)",
    mib(Number(readFileSync(join(cg, "memory.usage_in_bytes"), "utf8")) - (s.total_inactive_file ?? 0)),
    "",
  ]);
  const units = join(cg, "system.slice");
  const perUnit: [string, number][] = [];
  for (const u of existsSync(units) ? readdirSync(units).filter((d) => d.endsWith(".service")) : []) {
    const pids = readFileSync(join(units, u, "cgroup.procs"), "utf8")
      .trim()
      .split("\n")
      .filter(Boolean);
    const rss = pids.reduce((sum, pid) => {
      try {
        return sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
      } catch {
        return sum;
      }
    }, 0);
    if (rss > 0) perUnit.push([u, rss]);
  }
  for (const [u, rss] of perUnit.sort((a, b) => b[1] - a[1])) rows.push([`  RSS ${u}`, mib(rss), ""]);

  // The agent at idle: RSS and CPU over 30 s, from its unit's cgroup on the host.
  const agentPids = readFileSync(join(units, "planet-agent.service/cgroup.procs"), "utf8").trim().split("\n").filter(Boolean);
  const ticks = () =>
    agentPids.reduce((t, pid) => {
      // utime and stime: fields 14 and 15 of /proc/<pid>/stat, counted after the command name
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      return t + Number(f[11] ?? 0) + Number(f[12] ?? 0);
    }, 0);
  const t1 = ticks();
  await Bun.sleep(30_000);
  const cpu = (ticks() - t1) / 100 / 30;
  const agentRss = perUnit.find(([u]) => u === "planet-agent.service")?.[1] ?? 0;
  const kb = (field: string) =>
    agentPids.reduce(
      (sum, pid) => sum + Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0),
      0,
    ) * 1024;
  rows.push(["agent RSS at idle", mib(agentRss), "< 60 MB"]);
  rows.push(["  agent RssAnon / RssFile", `${mib(kb("RssAnon"))} / ${mib(kb("RssFile"))}`, "file = pages of the 106 MB binary"]);
  rows.push(["agent CPU at idle (30 s)", `${(cpu * 100).toFixed(2)} % of a core`, "< 1 %"]);
  const lat: number[] = [];
  for (let i = 0; i < 10; i++) lat.push(run([...CLI, "status", "--rootfs", rootfs, "--json"]).seconds);
  const api: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    await fetch("http://agent/status", { unix: join(rootfs, "var/lib/planet/agent.sock") });
    api.push((performance.now() - t) / 1000);
  }
  rows.push(["planet status (CLI, median of 10)", `${(median(lat) * 1000).toFixed(0)} ms`, ""]);
  rows.push(["agent /status over the socket (median of 10)", `${(median(api) * 1000).toFixed(1)} ms`, ""]);
} finally {
  run([...CLI, "stop", "--rootfs", rootfs]);
  run([...CLI, "dev-host", "down", NS]);
  rmSync(work, { recursive: true, force: true });
}
table("Kubernetes in the bubble (dev image, test host)", rows);
