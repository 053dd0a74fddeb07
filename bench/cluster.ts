#!/usr/bin/env bun
import { join } from "node:path";
import { memoryInUse } from "../core/bubble/cgroups.ts";
import type { Kube, KubeError } from "../core/kube/client.ts";
import { waitFor } from "../test/helpers.ts";
import { benchFleet, CLI, check, mib, pausePid, REPO, run, table } from "./_table.ts";

const fleet = benchFleet("cluster", "pbc", "10.219.0", [
  ["m1", "master"],
  ["m2", "master"],
  ["m3", "master"],
  ["n1", "node"],
]);
const node = fleet.host("n1");
const rows: (string | number)[][] = [["measure", "value", "target"]];
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const children: ReturnType<typeof Bun.spawn>[] = [];

async function nodeReady(kube: Kube, name: string): Promise<boolean> {
  const n = await kube.get<{ status: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${name}`);
  return n.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** The pid of a pod's pause process (its network namespace), found by the pod UID in its cgroup. */
async function podPid(kube: Kube, name: string): Promise<string> {
  const uid = (await kube.get<{ metadata: { uid: string } }>(`/api/v1/namespaces/default/pods/${name}`)).metadata.uid;
  const pid = pausePid(uid);
  if (!pid) throw new Error(`no pause process for pod ${name}`);
  return pid;
}

/** Runs tcp-probe's server in `enter` (a command prefix entering a namespace) and the client in `from`. */
async function tcp(
  serverIn: string[],
  clientIn: string[],
  ip: string,
): Promise<{ rttP50: number; rttP99: number; mbps: number }> {
  const probe = join(REPO, "bench/tcp-probe.ts");
  const server = Bun.spawn([...serverIn, process.execPath, probe, "serve", "9400"], { stdout: "ignore", stderr: "ignore" });
  children.push(server);
  await Bun.sleep(800);
  try {
    const r = check(run([...clientIn, process.execPath, probe, "client", ip, "9400", "256"]));
    return JSON.parse(r.out);
  } finally {
    server.kill();
    await server.exited;
  }
}

try {
  await fleet.prepare();
  const t0 = performance.now();
  const masters = await Promise.all(fleet.masters.map((m) => fleet.start(m)));
  for (const r of masters) if (r.exitCode !== 0) throw new Error(r.stderr.slice(-800));
  rows.push(["3 masters start (together) → ready", s(performance.now() - t0), ""]);
  const kube = fleet.kube();
  await waitFor(
    "masters Ready",
    async () => (await Promise.all(fleet.masters.map((m) => nodeReady(kube, m.name)))).every(Boolean),
    240_000,
    1000,
  );
  const j0 = performance.now();
  const started = await fleet.start(node);
  if (started.exitCode !== 0) throw new Error(started.stderr.slice(-800));
  await waitFor("n1 Ready", () => nodeReady(kube, "n1").catch(() => false), 120_000, 200);
  rows.push(["node start → Ready, joining a running cluster", s(performance.now() - j0), ""]);

  // Memory of each bubble's cgroup once settled, without the page cache it can drop.
  await Bun.sleep(20_000);
  for (const h of [fleet.host("m1"), node])
    rows.push([
      `memory, ${h.role} bubble (${h.name}), less inactive file cache`,
      mib(memoryInUse(`planet-${fleet.o.cluster}-${h.host}`)),
      "",
    ]);

  // Pod to pod across hosts (m1 → n1 over vxlan) and host to host on the bridge.
  await waitFor("default service account", () => kube.get("/api/v1/namespaces/default/serviceaccounts/default"), 60_000);
  for (const n of ["m1", "n1"])
    await kube.create("/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `bb-${n}` },
      spec: {
        nodeName: n,
        tolerations: [{ operator: "Exists" }],
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: "main",
            image: "docker.io/library/busybox:latest",
            imagePullPolicy: "IfNotPresent",
            command: ["sleep", "3600"],
          },
        ],
      },
    });
  const podIp = (n: string) =>
    waitFor(
      `bb-${n} IP`,
      async () => (await kube.get<{ status: { podIP?: string } }>(`/api/v1/namespaces/default/pods/bb-${n}`)).status.podIP,
      90_000,
      500,
    );
  const [ipM1, ipN1] = [await podIp("m1"), await podIp("n1")];
  const enterPod = async (n: string) => ["nsenter", "-t", await podPid(kube, `bb-${n}`), "-n"];
  const pods = await tcp(await enterPod("n1"), await enterPod("m1"), ipN1);
  const hosts = await tcp(["ip", "netns", "exec", node.host], ["ip", "netns", "exec", "pbc-m1"], node.ip);
  rows.push(["pod → pod across hosts (vxlan): round trip p50 / p99", `${pods.rttP50} / ${pods.rttP99} ms`, ""]);
  rows.push(["host → host on the bridge: round trip p50 / p99", `${hosts.rttP50} / ${hosts.rttP99} ms`, ""]);
  rows.push(["pod → pod across hosts (vxlan): one TCP connection", `${pods.mbps} Mbit/s`, ""]);
  rows.push(["host → host on the bridge: one TCP connection", `${hosts.mbps} Mbit/s`, ""]);
  void ipM1;

  // Failover under a writer.
  const oldIp = await waitFor("agent leader", () => fleet.leader(node), 60_000, 500);
  const old = fleet.host(oldIp);
  const acked: string[] = [];
  let writing = true;
  let longestGap = 0;
  const writer = (async () => {
    let last = performance.now();
    for (let i = 0; writing; i++) {
      for (const m of fleet.masters)
        try {
          await fleet.kube(m).create("/api/v1/namespaces/default/configmaps", {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: `w-${i}` },
          });
          acked.push(`w-${i}`);
          break;
        } catch (e) {
          if ((e as KubeError).status === 409) {
            acked.push(`w-${i}`);
            break;
          }
        }
      const now = performance.now();
      if (acked.at(-1) === `w-${i}`) {
        longestGap = Math.max(longestGap, now - last);
        last = now;
      }
      await Bun.sleep(20);
    }
  })();
  await waitFor("writes", () => acked.length > 50, 60_000, 100);
  const stopAt = performance.now();
  const stopWall = Date.now();
  const stopping = Bun.spawn([...CLI, "stop", "--rootfs", fleet.rootfs(old)], { stdout: "ignore", stderr: "ignore" });
  const newIp = await waitFor(
    "new agent leader",
    () => {
      const l = fleet.leader(node);
      return l && l !== oldIp ? l : null;
    },
    120_000,
    100,
  );
  rows.push(["leader stop → new agent leader (seen on the node)", s(performance.now() - stopAt), ""]);
  const live = fleet.kube(fleet.host(newIp));
  await waitFor(
    "n1 heard by a live apiserver",
    async () => {
      const lease = await live.get<{ spec: { renewTime: string } }>(
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
      );
      return Date.parse(lease.spec.renewTime) > stopWall;
    },
    120_000,
    100,
  );
  rows.push(["leader stop → node's kubelet heard by a live apiserver", s(performance.now() - stopAt), "≤ 15 s"]);
  await stopping.exited;
  rows.push(["leader bubble stop (planet stop)", s(performance.now() - stopAt), ""]);
  const n = acked.length;
  await waitFor("writes after failover", () => acked.length > n + 50, 60_000, 100);
  writing = false;
  await writer;
  const have = new Set(
    (await live.get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces/default/configmaps")).items.map(
      (c) => c.metadata.name,
    ),
  );
  rows.push(["acknowledged writes / lost", `${acked.length} / ${acked.filter((x) => !have.has(x)).length}`, "lost 0"]);
  rows.push(["longest gap between acknowledged writes", s(longestGap), ""]);
  table(`many hosts: 3 masters + 1 node, each a test host on one bridge (${new Date().toISOString().slice(0, 10)})`, rows);
} finally {
  for (const c of children) c.kill();
  fleet.down();
}
