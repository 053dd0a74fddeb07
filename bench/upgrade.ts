#!/usr/bin/env bun
/**
 * `planet upgrade` of one host (the dev image in a test host, master and node in one bubble): the
 * upgrade's wall time and phases, how long the API did not answer (a GET every 100 ms), writes
 * acknowledged and lost under a writer, and the wall time of a rollback (an image whose etcd rejects
 * a flag, gate timeout 60 s). Needs `make dev`. With `--cluster`: a rolling upgrade of three masters
 * and a node (`planet upgrade --plan`) — each host's time, the API's longest silence with any master
 * asked, writes lost. Needs `make production`.
 *
 *   bun bench/upgrade.ts [--cluster]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import type { Journal } from "../core/upgrade/journal.ts";
import { type RollState, stateFile } from "../core/upgrade/roll.ts";
import { Fleet } from "../test/fleet.ts";
import { derivedImage, startArgs } from "../test/helpers.ts";
import { CLI, check, REPO, run, runAsync, table } from "./_table.ts";

const IP = "10.222.0.1";
const NS = "pt-ubench";
const CLUSTER = "ubench";
const dev = join(REPO, "build/dev");
const work = mkdtempSync(join(tmpdir(), "planet-ubench-"));
const secrets = join(work, "secrets");
const data = join(work, "data");
// Async: the API probe and the writer beside it must keep running while the upgrade does.
const upgrade = (...args: string[]) =>
  runAsync([...CLI, "upgrade", "--cluster-id", CLUSTER, "--netns", NS, "--data-dir", data, ...args]);
const last = (): Journal =>
  (JSON.parse(run([...CLI, "upgrade", "--status", "--data-dir", data]).out) as { upgrade: Journal }).upgrade;

/** Seconds between the journal's phases. */
function phases(j: Journal): string {
  const h = j.history;
  return h
    .slice(1)
    .map((p, i) => `${p.phase} ${((Date.parse(p.at) - Date.parse(h[i]?.at ?? p.at)) / 1000).toFixed(1)}`)
    .join(", ");
}

/**
 * Keeps asking the API every 100 ms — every client at once, so a gap is a time when no apiserver
 * answered (not one request hanging on the master being stopped) — and writing ConfigMaps (each
 * client in turn) until `stop()`.
 */
function pressure(kubes: Kube[]) {
  let on = true;
  let lastOk = Date.now();
  let longest = 0;
  const acked: string[] = [];
  const probe = (async () => {
    while (on) {
      try {
        await Promise.any(kubes.map((k) => k.get("/api/v1/namespaces/kube-system")));
        longest = Math.max(longest, Date.now() - lastOk);
        lastOk = Date.now();
      } catch {}
      await Bun.sleep(100);
    }
  })();
  const writer = (async () => {
    for (let i = 0; on; i++)
      try {
        await kubes[i % kubes.length]?.create("/api/v1/namespaces/default/configmaps", { metadata: { name: `b-${i}` } });
        acked.push(`b-${i}`);
      } catch {
        await Bun.sleep(200);
      }
  })();
  return {
    async stop(kube: Kube) {
      on = false;
      await Promise.all([probe, writer]);
      const names = new Set(
        (await kube.get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces/default/configmaps")).items.map(
          (c) => c.metadata.name,
        ),
      );
      return { longest: longest / 1000, acked: acked.length, lost: acked.filter((a) => !names.has(a)).length };
    },
  };
}

if (process.argv.includes("--cluster")) await cluster();
else await oneHost();

async function cluster(): Promise<void> {
  const fleet = new Fleet({
    cluster: "ubench",
    bridge: "ptub-br",
    work,
    masterImage: join(REPO, "build/master"),
    nodeImage: join(REPO, "build/node"),
    slots: true,
    hosts: [
      { name: "bm1", host: "ptub-m1", ip: "10.223.0.1", role: "master" },
      { name: "bm2", host: "ptub-m2", ip: "10.223.0.2", role: "master" },
      { name: "bm3", host: "ptub-m3", ip: "10.223.0.3", role: "master" },
      { name: "bn1", host: "ptub-n1", ip: "10.223.0.4", role: "node" },
    ],
  });
  const rows: (string | number)[][] = [["measure", "value"]];
  try {
    await fleet.prepare();
    const images = {
      master: derivedImage(join(REPO, "build/master"), join(work, "master-v2"), "99.0.1"),
      node: derivedImage(join(REPO, "build/node"), join(work, "node-v2"), "99.0.1"),
    };
    await fleet.startAll();
    await fleet.ready();
    const plan = join(work, "plan.json");
    writeFileSync(
      plan,
      JSON.stringify({
        images,
        kubeconfig: join(fleet.clusterDir, "admin.kubeconfig"),
        hosts: fleet.o.hosts.map((h) => ({
          name: h.name,
          role: h.role,
          clusterId: "ubench",
          netns: h.host,
          dataDir: fleet.dataDir(h),
        })),
      }),
    );
    const load = pressure(fleet.masters.map((m) => fleet.kube(m)));
    const roll = check(await runAsync([...CLI, "upgrade", "--plan", plan]));
    await Bun.sleep(3000);
    const r = await load.stop(fleet.kube());
    const st = JSON.parse(readFileSync(stateFile(plan), "utf8")) as RollState;
    rows.push(["rolling upgrade, 3 masters + 1 node", `${roll.seconds.toFixed(1)} s`]);
    for (const h of fleet.o.hosts) {
      const e = st.hosts[h.name];
      const secs = e?.startedAt ? ((Date.parse(e.at) - Date.parse(e.startedAt)) / 1000).toFixed(1) : "?";
      rows.push([`  ${h.name} (${h.role})`, `${secs} s, ${e?.outcome}`]);
    }
    rows.push(["API unavailable: no master answered (longest gap)", `${r.longest.toFixed(1)} s`]);
    rows.push(["writes acknowledged / lost", `${r.acked} / ${r.lost}`]);
  } finally {
    fleet.down();
    rmSync(work, { recursive: true, force: true });
  }
  table("planet upgrade --plan, 3 masters + 1 node (2 cores)", rows);
}

async function oneHost(): Promise<void> {
  check(run([...CLI, "secrets", "init", "--domain", "bench.local", "--ip", IP, "--node-name", CLUSTER, secrets]));
  check(run([...CLI, "dev-host", "up", NS, "--ip", IP]));
  const rows: (string | number)[][] = [["measure", "value"]];
  try {
    const v2 = derivedImage(dev, join(work, "v2"), "99.0.1");
    const broken = derivedImage(dev, join(work, "broken"), "99.0.2", {
      "etc/systemd/system/etcd.service.d/99-broken.conf": "[Service]\nExecStart=\nExecStart=/usr/bin/etcd --no-such-flag\n",
    });
    const inst = check(run([...CLI, "install", dev, "--data-dir", data]));
    rows.push(["install (verify + copy into a slot)", `${inst.seconds.toFixed(1)} s`]);
    check(run([...CLI, ...startArgs({ host: NS, cluster: CLUSTER, node: CLUSTER, secrets, data })]));
    const kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig"), `https://${IP}:6443`));
    for (let i = 0; i < 300 && run([...CLI, "status", "--data-dir", data, "--local", "--json"]).code !== 0; i++)
      await Bun.sleep(2000);

    const load = pressure([kube]);
    const up = check(await upgrade(v2, "--gate-timeout", "300"));
    await Bun.sleep(3000);
    const r = await load.stop(kube);
    rows.push(["upgrade, one host (dev: master + node)", `${up.seconds.toFixed(1)} s`]);
    rows.push(["  phases (s after the previous)", phases(last())]);
    rows.push(["API unavailable (longest gap between answers)", `${r.longest.toFixed(1)} s`]);
    rows.push(["writes acknowledged / lost", `${r.acked} / ${r.lost}`]);

    const rb = await upgrade(broken, "--gate-timeout", "60");
    if (rb.code === 0) throw new Error("the broken image did not roll back");
    const j = last();
    const rolling = j.history.find((h) => h.phase === "rolling-back")?.at ?? j.startedAt;
    rows.push(["rollback, broken etcd (gate timeout 60 s)", `${rb.seconds.toFixed(1)} s in all`]);
    rows.push([
      "  from the failed gate to the old image back",
      `${((Date.parse(j.endedAt ?? rolling) - Date.parse(rolling)) / 1000).toFixed(1)} s`,
    ]);
  } finally {
    const st = run([...CLI, "upgrade", "--status", "--data-dir", data]);
    const cur = (JSON.parse(st.out || "{}") as { slots?: { name: string; pointer: string | null }[] }).slots?.find(
      (s) => s.pointer === "current",
    );
    if (cur) run([...CLI, "stop", "--rootfs", join(data, "slots", cur.name, "rootfs")]);
    run([...CLI, "dev-host", "down", NS, "--ip", IP]);
    rmSync(work, { recursive: true, force: true });
  }
  table("planet upgrade, one host (2 cores)", rows);
}
