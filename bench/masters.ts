#!/usr/bin/env bun
/**
 * Masters on a running cluster: one born alone, two more joining with a master token (start →
 * voting etcd member), a node joining with a token; then a master killed (-9, its whole bubble) as a
 * node's kubelet sees it — through the node-local load balancer, and again without it (planet-master
 * following the agents' leader, `--disable apilb`) — and a dead master replaced end to end (`planet
 * remove`, a fresh host under its name joining). Writes under all of it: acknowledged / lost.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { RUNC_ROOT } from "../core/bubble/state.ts";
import type { EtcdMember } from "../plugins/etcd/members.ts";
import type { FleetHost } from "../test/fleet.ts";
import { waitFor } from "../test/helpers.ts";
import { benchFleet, CLI, check, run, runAsync, table } from "./_table.ts";

const fleet = benchFleet("masters", "pbm", "10.225.0", [
  ["m1", "master"],
  ["m2", "master"],
  ["m3", "master"],
  ["n1", "node"],
]);
const [m1, m2, m3] = fleet.masters as [FleetHost, FleetHost, FleetHost];
const node = fleet.host("n1");
const rows: (string | number)[][] = [["measure", "value", "target"]];
let token = "";
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const planetIn = (h: FleetHost, ...args: string[]) => run([...CLI, "exec", "--rootfs", fleet.rootfs(h), "--", "planet", ...args]);
const voters = (h: FleetHost) =>
  (JSON.parse(check(planetIn(h, "etcd", "member", "list", "--json")).out) as EtcdMember[]).filter((m) => !m.learner).length;

/** Starts `h` alone (no --initial-cluster beyond itself). */
function startAlone(h: FleetHost) {
  return runAsync([
    ...CLI,
    "start",
    "--rootfs",
    fleet.rootfs(h),
    "--netns",
    h.host,
    "--cluster-id",
    fleet.o.cluster,
    "--node-name",
    h.name,
    "--secrets-dir",
    fleet.secrets(h),
    "--data-dir",
    fleet.dataDir(h),
    "--ready-timeout",
    "300",
    "--detach",
  ]);
}

/** Kills a bubble as a power cut would: SIGKILL to its init, every process of it gone at once. */
function killBubble(h: FleetHost): void {
  const st = JSON.parse(check(run(["runc", "--root", RUNC_ROOT, "state", `planet-${fleet.o.cluster}-${h.host}`])).out) as {
    pid: number;
  };
  process.kill(st.pid, "SIGKILL");
}

/**
 * What the node's kubelet sees: its own credential asking its apiserver address (planet-master in its
 * bubble) every 100 ms from its network. Returns a stop() giving the longest stretch without an answer.
 */
function probeFromNode(): { stop(): Promise<{ longestMs: number; failed: number; ok: number }> } {
  const dir = fleet.joinedSecrets(node);
  const hosts = readFileSync(join(fleet.rootfs(node), "etc/hosts"), "utf8");
  const at = /^(\S+)\s+planet-master$/m.exec(hosts)?.[1] ?? "127.0.0.1";
  let going = true;
  let ok = 0;
  let failed = 0;
  let longest = 0;
  const done = (async () => {
    let last = performance.now();
    while (going) {
      // planet-master may move (without the load balancer the agent repoints it): read it each time.
      const now = /^(\S+)\s+planet-master$/m.exec(readFileSync(join(fleet.rootfs(node), "etc/hosts"), "utf8"))?.[1] ?? at;
      const r = await runAsync([
        "ip",
        "netns",
        "exec",
        node.host,
        "curl",
        "-sf",
        "--max-time",
        "1",
        "-o",
        "/dev/null",
        "--cacert",
        join(dir, "root.cert"),
        "--cert",
        join(dir, "kubelet.cert"),
        "--key",
        join(dir, "kubelet.key"),
        "--resolve",
        `planet-master:6443:${now}`,
        "https://planet-master:6443/api/v1/nodes/n1",
      ]);
      const t = performance.now();
      if (r.code === 0) {
        longest = Math.max(longest, t - last);
        last = t;
        ok++;
      } else failed++;
      await Bun.sleep(100);
    }
  })();
  return {
    stop: async () => {
      going = false;
      await done;
      return { longestMs: longest, failed, ok };
    },
  };
}

/** Kills the agents' leader with the probe running; restarts it; the probe's worst gap. */
async function killLeader(label: string): Promise<void> {
  const leaderIp = await waitFor("agent leader", () => fleet.leader(node), 60_000, 500);
  const leader = fleet.host(leaderIp);
  const probe = probeFromNode();
  await Bun.sleep(3000);
  killBubble(leader);
  await Bun.sleep(20_000);
  const seen = await probe.stop();
  rows.push([
    `${label}: longest time the node's kubelet credential got no API answer (leader ${leader.name} killed)`,
    s(seen.longestMs),
    "≤ 2 s",
  ]);
  rows.push([`${label}: probes answered / failed (100 ms apart)`, `${seen.ok} / ${seen.failed}`, ""]);
  run([...CLI, "stop", "--rootfs", fleet.rootfs(leader)]);
  // A host that joined keeps its secrets: --join with the token again needs no master (joined already).
  const back =
    leader === m1
      ? await startAlone(m1)
      : await fleet.startJoin(leader, m1, token).then((r) => ({ code: r.exitCode, err: r.stderr }));
  if (back.code !== 0) throw new Error(`restart ${leader.name}: ${back.err.slice(-800)}`);
  await fleet.ready();
}

try {
  await fleet.prepare();
  for (const h of [m2, m3, node]) rmSync(fleet.secrets(h), { recursive: true, force: true });
  check(await startAlone(m1));
  const writer = fleet.writer("b");
  token = check(planetIn(m1, "token", "create", "--role", "master", "--ttl", "1h")).out.trim();
  for (const m of [m2, m3]) {
    const t0 = performance.now();
    const r = await fleet.startJoin(m, m1, token);
    if (r.exitCode !== 0) throw new Error(`join ${m.name}: ${r.stderr.slice(-800)}`);
    rows.push([`master ${m.name}: planet start --join → voting etcd member, bubble ready`, s(performance.now() - t0), ""]);
    rows.push([`  etcd voting members after ${m.name}`, voters(m1), ""]);
  }
  const nodeToken = check(planetIn(m1, "token", "create", "--ttl", "1h")).out.trim();
  const n0 = performance.now();
  const joined = await fleet.startJoin(node, m1, nodeToken);
  if (joined.exitCode !== 0) throw new Error(`join n1: ${joined.stderr.slice(-800)}`);
  await fleet.ready();
  rows.push(["node n1: planet start --join → Ready", s(performance.now() - n0), ""]);

  await killLeader("with the node-local load balancer");
  check(run([...CLI, "stop", "--rootfs", fleet.rootfs(node)]));
  const restarted = await fleet.startJoin(node, m1, nodeToken, "--disable", "apilb");
  if (restarted.exitCode !== 0) throw new Error(`restart n1: ${restarted.stderr.slice(-800)}`);
  await fleet.ready();
  await killLeader("without it (planet-master follows the leader)");

  // A master's disk dies: removed from another, a fresh host under its name joins.
  const r0 = performance.now();
  killBubble(m3);
  run([...CLI, "stop", "--rootfs", fleet.rootfs(m3)]);
  check(planetIn(m1, "remove", "m3"));
  rmSync(fleet.dataDir(m3), { recursive: true, force: true });
  rmSync(fleet.joinedSecrets(m3), { recursive: true, force: true });
  const again = await fleet.startJoin(m3, m1, token);
  if (again.exitCode !== 0) throw new Error(`replace m3: ${again.stderr.slice(-800)}`);
  rows.push(["master replaced: killed → planet remove → fresh host joins → voting", s(performance.now() - r0), ""]);
  rows.push(["  etcd voting members after", voters(m1), "3"]);

  await writer.stop();
  const have = new Set(
    (await fleet.kube(m1).get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces/default/configmaps")).items.map(
      (c) => c.metadata.name,
    ),
  );
  rows.push([
    "acknowledged writes / lost",
    `${writer.acked.length} / ${writer.acked.filter((x) => !have.has(x)).length}`,
    "lost 0",
  ]);
  table(
    `masters joining, killed and replaced: 3 masters + 1 node, test hosts on one bridge (${new Date().toISOString().slice(0, 10)})`,
    rows,
  );
} finally {
  fleet.down();
}
