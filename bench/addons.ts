#!/usr/bin/env bun
/**
 * What the out-of-the-box add-ons cost and how fast they act (dev image, one test host): start →
 * ready with them and without them (`--without metrics/storage/netpol/helm`), start → every add-on
 * check ok, a claim → Bound and its pod Running, a NetworkPolicy created/deleted → enforced/lifted
 * as a pod sees it, and the RSS of each add-on's processes after --settle seconds (default 300).
 * Target: the add-ons together ≤ 60 MiB RSS.
 *
 *   bun bench/addons.ts [--settle=300] [--runs=3]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import { busybox, startArgs } from "../test/helpers.ts";
import { CLI, check, median, mib, REPO, run, table } from "./_table.ts";

const arg = (name: string, dflt: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? dflt);
const settle = arg("settle", 300);
const runs = arg("runs", 3);
const IP = "10.226.0.1";
const NS = "pt-addons";
const ADDONS = ["metrics", "storage", "netpol", "helm"];
const CHECKS = ["metrics-api", "storage-provisioner", "netpol-kube-router-running", "netpol-chains", "helm-charts"];
const work = mkdtempSync(join(tmpdir(), "planet-addons-"));
const secrets = join(work, "secrets");
const full = join(REPO, "build", "bench-addons-full");
const bare = join(REPO, "build", "bench-addons-bare");

check(run([...CLI, "build", "--target", "dev", "--out", full]));
check(run([...CLI, "build", "--target", "dev", ...ADDONS.flatMap((a) => ["--without", a]), "--out", bare]));
check(run([...CLI, "secrets", "init", "--domain", "bench.local", "--ip", IP, "--node-name", "bench", secrets]));
check(run([...CLI, "dev-host", "up", NS, "--ip", IP]));
const kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig")));

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
let waitingFor = "";
async function until<T>(probe: () => Promise<T | undefined | false>, ms = 180_000, step = 100): Promise<T> {
  const end = Date.now() + ms;
  let last = "";
  while (Date.now() < end) {
    const v = await probe().catch((e: Error) => {
      last = e.message;
      return undefined;
    });
    if (v) return v;
    await Bun.sleep(step);
  }
  throw new Error(`timed out after ${ms / 1000} s waiting for ${waitingFor}${last ? `: ${last}` : ""}`);
}
const step = (what: string) => {
  waitingFor = what;
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${what}\n`);
};
/** `planet start --detach` of a rootfs with a data dir of its own: seconds until it says ready. */
const start = (rootfs: string, data: string) =>
  check(run([...CLI, ...startArgs({ rootfs, host: NS, cluster: "addons", node: "bench", secrets, data })])).seconds;
const stop = (rootfs: string) => check(run([...CLI, "stop", "--rootfs", rootfs]));
const podPhase = async (name: string) =>
  (await kube.get<{ status: { phase: string; podIP?: string } }>(`/api/v1/namespaces/default/pods/${name}`)).status;

const rows: (string | number)[][] = [["measure", "value", "note"]];
try {
  // Boot with and without the add-ons: fresh cluster each (own data dir), then restarts.
  for (const [label, out] of [
    ["without the add-ons", bare],
    ["with the add-ons", full],
  ] as const) {
    const rootfs = join(out, "rootfs");
    const data = join(work, `data-${label.replaceAll(" ", "-")}`);
    const fresh = start(rootfs, data);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      stop(rootfs);
      times.push(start(rootfs, data));
    }
    rows.push([
      `start → ready, ${label}: fresh / restart (median of ${runs})`,
      `${fresh.toFixed(1)} s / ${median(times).toFixed(1)} s`,
      `runs ${times.map((t) => t.toFixed(1)).join(" ")}`,
    ]);
    if (out === bare) stop(rootfs);
  }
  const rootfs = join(full, "rootfs");
  stop(rootfs);
  // start → every add-on check ok, on a restart (a fresh cluster's first boot also pulls images).
  let t0 = Date.now();
  start(rootfs, join(work, "data-with-the-add-ons"));
  step("every add-on check ok");
  await until(
    async () => {
      const st = JSON.parse(run([...CLI, "status", "--rootfs", rootfs, "--local", "--json"]).out || "{}") as {
        members?: { checks?: { name: string; state: string }[] }[];
      };
      const checks = st.members?.[0]?.checks ?? [];
      const bad = CHECKS.filter((n) => !checks.some((c) => c.name === n && c.state === "ok"));
      if (bad.length) throw new Error(`not ok: ${bad.join(", ")}`);
      return true;
    },
    300_000,
    500,
  );
  rows.push(["restart → every add-on check ok", sec(Date.now() - t0), CHECKS.join(", ")]);

  // A claim → Bound (WaitForFirstConsumer: once its pod is scheduled) → its pod Running.
  step("default service account");
  await until(async () => kube.get("/api/v1/namespaces/default/serviceaccounts/default"));
  const bound: number[] = [];
  const running: number[] = [];
  for (let i = 0; i < runs; i++) {
    t0 = Date.now();
    await kube.create("/api/v1/namespaces/default/persistentvolumeclaims", {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: `c${i}` },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "16Mi" } } },
    });
    await kube.create("/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `p${i}` },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          busybox(["sh", "-c", "echo x > /data/x && sleep 3600"], { volumeMounts: [{ name: "d", mountPath: "/data" }] }),
        ],
        volumes: [{ name: "d", persistentVolumeClaim: { claimName: `c${i}` } }],
      },
    });
    step("PVC Bound");
    await until(
      async () =>
        (await kube.get<{ status: { phase: string } }>(`/api/v1/namespaces/default/persistentvolumeclaims/c${i}`)).status
          .phase === "Bound",
    );
    bound.push(Date.now() - t0);
    step("PVC pod Running");
    await until(async () => (await podPhase(`p${i}`)).phase === "Running");
    running.push(Date.now() - t0);
  }
  rows.push([`PVC created → Bound (median of ${runs})`, sec(median(bound)), `runs ${bound.map(sec).join(" ")}`]);
  rows.push([`PVC created → its pod Running (median of ${runs})`, sec(median(running)), ""]);

  // NetworkPolicy: created → the client's connection refused; deleted → it connects again.
  for (const [name, labels, cmd] of [
    ["srv", { app: "srv" }, ["sh", "-c", "mkdir -p /w && echo ok > /w/i && exec httpd -f -p 8080 -h /w"]],
    ["cli", {}, ["sleep", "3600"]],
  ] as const)
    await kube.create("/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels },
      spec: { terminationGracePeriodSeconds: 1, containers: [busybox([...cmd])] },
    });
  step("srv Running");
  const ip = await until(async () => {
    const s = await podPhase("srv");
    return s.phase === "Running" && s.podIP;
  });
  step("cli Running");
  await until(async () => (await podPhase("cli")).phase === "Running");
  const connects = async () =>
    (
      await kube.exec("default", "cli", ["sh", "-c", `printf 'GET /i HTTP/1.0\\r\\n\\r\\n' | nc -w 1 ${ip} 8080 | tail -n 1`])
    ).stdout.trim() === "ok";
  const probeMs: number[] = [];
  const enforce: number[] = [];
  const lift: number[] = [];
  const policies = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
  for (let i = 0; i < runs; i++) {
    step("client connects");
    await until(connects);
    const p0 = Date.now();
    await connects();
    probeMs.push(Date.now() - p0);
    t0 = Date.now();
    await kube.create(policies, {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "deny" },
      spec: { podSelector: { matchLabels: { app: "srv" } }, policyTypes: ["Ingress"] },
    });
    step("policy enforced");
    await until(async () => !(await connects()), 60_000, 0);
    enforce.push(Date.now() - t0);
    t0 = Date.now();
    await kube.delete(`${policies}/deny`);
    step("policy lifted");
    await until(connects, 60_000, 0);
    lift.push(Date.now() - t0);
  }
  rows.push([`NetworkPolicy created → enforced (median of ${runs})`, sec(median(enforce)), `runs ${enforce.map(sec).join(" ")}`]);
  rows.push([
    `NetworkPolicy deleted → lifted (median of ${runs})`,
    sec(median(lift)),
    `one probe (exec + nc) takes ${sec(median(probeMs))}`,
  ]);

  process.stderr.write(`settling ${settle}s…\n`);
  await Bun.sleep(settle * 1000);
  // RSS of the add-ons' processes on the host (pods' and units' alike), by command name: all of it, and
  // the anonymous part (heap, stacks) apart from the file-backed pages of their binaries, which the
  // kernel can drop and read again.
  const rss: Record<string, { all: number; anon: number; file: number }> = {};
  const kib = (status: string, field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p)))
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      if (!["kube-router", "metrics-server", "local-path-prov"].includes(comm)) continue;
      if (!readFileSync(`/proc/${pid}/cgroup`, "utf8").includes("planet-addons")) continue;
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const r = rss[comm] ?? { all: 0, anon: 0, file: 0 };
      rss[comm] = {
        all: r.all + kib(status, "VmRSS"),
        anon: r.anon + kib(status, "RssAnon"),
        file: r.file + kib(status, "RssFile"),
      };
    } catch {
      // gone meanwhile
    }
  for (const [comm, r] of Object.entries(rss).sort())
    rows.push([
      `  RSS ${comm} (${settle} s after): all / anonymous / file`,
      `${mib(r.all)} / ${mib(r.anon)} / ${mib(r.file)}`,
      "",
    ]);
  const sum = (k: "all" | "anon" | "file") => Object.values(rss).reduce((a, r) => a + r[k], 0);
  rows.push([
    "add-ons' RSS together: all / anonymous / file",
    `${mib(sum("all"))} / ${mib(sum("anon"))} / ${mib(sum("file"))}`,
    `target ≤ 60 MiB; helm runs only at boot (its unit holds no process) — ${Object.keys(rss).length} of 3 found`,
  ]);
} finally {
  run([...CLI, "stop", "--rootfs", join(full, "rootfs")]);
  run([...CLI, "stop", "--rootfs", join(bare, "rootfs")]);
  run([...CLI, "dev-host", "down", NS]);
  rmSync(work, { recursive: true, force: true });
}
table("Out-of-the-box add-ons (dev image, test host)", rows);
