#!/usr/bin/env bun
/**
 * Backup and restore (dev image, test hosts): a cluster with --objects ConfigMaps (default 2000),
 * `planet etcd snapshot save` time, `planet backup` time and archive size, then the host destroyed and
 * `planet restore` onto a fresh test host: restore time, start → API serving, start → every object
 * back, objects lost (target 0).
 *
 *   bun bench/backup.ts [--objects=2000]
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import { startArgs } from "../test/helpers.ts";
import { CLI, check, REPO, run, table } from "./_table.ts";

const objects = Number(process.argv.find((a) => a.startsWith("--objects="))?.split("=")[1] ?? 2000);
const OLD = { host: "pt-bkb-a", ip: "10.228.0.1" };
const NEW = { host: "pt-bkb-b", ip: "10.228.1.1" };
const work = mkdtempSync(join(tmpdir(), "planet-bkbench-"));
const rootfs = join(REPO, "build", "bench-backup", "rootfs");
const dirs = (h: typeof OLD) => ({ secrets: join(work, `secrets-${h.host}`), data: join(work, `data-${h.host}`) });
const start = (h: typeof OLD) =>
  check(run([...CLI, ...startArgs({ rootfs, host: h.host, cluster: "bkbench", node: "bk", ...dirs(h) })])).seconds;

check(run([...CLI, "build", "--target", "dev", "--out", join(REPO, "build", "bench-backup")]));
check(run([...CLI, "secrets", "init", "--domain", "bench.local", "--ip", OLD.ip, "--node-name", "bk", dirs(OLD).secrets]));
check(run([...CLI, "dev-host", "up", OLD.host, "--ip", OLD.ip]));

async function until<T>(probe: () => Promise<T | undefined>, ms = 300_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    await Bun.sleep(100);
  }
  throw new Error("timeout");
}
const sec = (s: number) => `${s.toFixed(1)} s`;
const rows: (string | number)[][] = [["measure", "value", "note"]];
const archive = join(work, "cluster.tar.gz");
try {
  start(OLD);
  const kube = new Kube(loadKubeconfig(join(dirs(OLD).secrets, "admin.kubeconfig")));
  await until(() => kube.get("/api/v1/namespaces/default/serviceaccounts/default"));
  const payload = "x".repeat(1024);
  for (let i = 0; i < objects; i += 50)
    await Promise.all(
      Array.from({ length: Math.min(50, objects - i) }, (_, j) =>
        kube.create("/api/v1/namespaces/default/configmaps", { metadata: { name: `o-${i + j}` }, data: { v: payload } }),
      ),
    );
  const snap = check(run([...CLI, "exec", "--rootfs", rootfs, "--", "planet", "etcd", "snapshot", "save", "--json"]));
  const s = JSON.parse(snap.out.trim().split("\n").at(-1) ?? "{}") as { bytes: number; totalKey: number };
  rows.push([
    `etcd snapshot save (${objects} ConfigMaps of 1 KiB)`,
    sec(snap.seconds),
    `${(s.bytes / 1024 / 1024).toFixed(1)} MiB, ${s.totalKey} keys`,
  ]);
  const b = check(run([...CLI, "backup", archive, "--rootfs", rootfs]));
  rows.push(["planet backup", sec(b.seconds), `archive ${(statSync(archive).size / 1024 / 1024).toFixed(1)} MiB (gzip)`]);

  check(run([...CLI, "stop", "--rootfs", rootfs]));
  run([...CLI, "dev-host", "down", OLD.host]);
  const oldAdmin = readFileSync(join(dirs(OLD).secrets, "admin.kubeconfig"), "utf8");
  rmSync(dirs(OLD).data, { recursive: true, force: true });
  rmSync(dirs(OLD).secrets, { recursive: true, force: true });
  check(run([...CLI, "dev-host", "up", NEW.host, "--ip", NEW.ip]));
  const r = check(
    run([
      ...CLI,
      "restore",
      archive,
      "--rootfs",
      rootfs,
      "--secrets-dir",
      dirs(NEW).secrets,
      "--data-dir",
      dirs(NEW).data,
      "--node-name",
      "bk",
      "--ip",
      NEW.ip,
      "--cluster-id",
      "bkbench",
    ]),
  );
  rows.push(["planet restore (etcd + this host's certificates)", sec(r.seconds), ""]);
  const t0 = Date.now();
  const ready = start(NEW);
  rows.push(["restored host: start → ready (planet start --detach)", sec(ready), ""]);
  const admin = new Kube(loadKubeconfig(join(dirs(NEW).secrets, "admin.kubeconfig"), `https://${NEW.ip}:6443`));
  await until(() => admin.request("GET", "/readyz", undefined, "text/plain"));
  rows.push(["restored host: start → API serving", sec((Date.now() - t0) / 1000), ""]);
  const count = await until(async () => {
    const l = await admin.get<{ items: unknown[] }>("/api/v1/namespaces/default/configmaps?labelSelector=&limit=100000");
    return l.items.length >= objects ? l.items.length : undefined;
  });
  rows.push([
    "restored host: start → every object back",
    sec((Date.now() - t0) / 1000),
    `${count - 1} ConfigMaps (+ kube-root-ca.crt)`,
  ]);
  rows.push(["objects lost", String(Math.max(0, objects - (count - 1))), "target 0"]);
  // The credentials issued before the loss still work: one CA.
  writeFileSync(join(work, "old.kubeconfig"), oldAdmin);
  const old = new Kube(loadKubeconfig(join(work, "old.kubeconfig"), `https://${NEW.ip}:6443`));
  await old.get("/api/v1/namespaces/default/configmaps/o-0");
  rows.push(["the old admin kubeconfig after the restore", "accepted", "same CA"]);
} finally {
  run([...CLI, "stop", "--rootfs", rootfs]);
  run([...CLI, "dev-host", "down", OLD.host]);
  run([...CLI, "dev-host", "down", NEW.host]);
  rmSync(work, { recursive: true, force: true });
}
table("Backup and restore (dev image, test hosts)", rows);
