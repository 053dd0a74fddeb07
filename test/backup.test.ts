/**
 * Snapshots, backup and restore: `planet etcd snapshot save|list|prune` on a master; `planet backup`
 * writes one 0600 archive; bad archives and bad targets are refused with one line and nothing written;
 * the host is destroyed, and `planet restore` on a fresh test host (another address, the same node
 * name) brings the cluster back — every object, the Secret decrypted with the restored key, the
 * Deployment's pods running again, the old admin credentials still valid — with scheduled snapshots
 * taken and pruned as its environment says.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { readState } from "../core/bubble/state.ts";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import {
  buildTest,
  busybox,
  canBoot,
  devSecrets,
  planet,
  planetAsync,
  REPO,
  sh,
  startArgs,
  testHost,
  waitFor,
} from "./helpers.ts";

const CLUSTER = "bktest";
const NODE = "bk-1";
const OLD = { host: "pt-bk-a", ip: "10.227.0.1" };
const NEW = { host: "pt-bk-b", ip: "10.227.1.1" };
const work = join(REPO, "build", "test-backup-work");
const archive = join(work, "cluster.tar.gz");

type Pod = { status: { phase?: string } };

describe.if(canBoot)("etcd snapshots, backup and restore (dev target)", () => {
  let rootfs = "";
  let hostA: ReturnType<typeof testHost> | undefined;
  let hostB: ReturnType<typeof testHost> | undefined;
  let kube: Kube;
  const dirs = (h: typeof OLD) => ({ secrets: join(work, `secrets-${h.host}`), data: join(work, `data-${h.host}`) });
  const start = (h: typeof OLD, ...extra: string[]) =>
    planetAsync(startArgs({ rootfs, host: h.host, cluster: CLUSTER, node: NODE, ...dirs(h) }, ...extra));
  const inBubble = (...cmd: string[]) => planet("exec", "--rootfs", rootfs, "--", ...cmd);
  /** The admin of the restored host (its kubeconfig is made from the restored CA). */
  const admin = () => new Kube(loadKubeconfig(join(dirs(NEW).secrets, "admin.kubeconfig"), `https://${NEW.ip}:6443`));
  const restore = (file: string, h: typeof OLD, ...extra: string[]) =>
    planet(
      "restore",
      file,
      "--rootfs",
      rootfs,
      "--secrets-dir",
      dirs(h).secrets,
      "--data-dir",
      dirs(h).data,
      "--node-name",
      NODE,
      "--ip",
      h.ip,
      ...extra,
    );

  beforeAll(async () => {
    rootfs = join(buildTest("backup", ["--target", "dev"]), "rootfs");
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    await devSecrets(dirs(OLD).secrets, { domain: "bk.test", ips: [OLD.ip], node: NODE });
    kube = new Kube(loadKubeconfig(join(dirs(OLD).secrets, "admin.kubeconfig")));
    hostA = testHost(OLD.host, OLD.ip);
  }, 600_000);
  afterAll(() => {
    if (readState(`planet-${CLUSTER}-${OLD.host}`) || readState(`planet-${CLUSTER}-${NEW.host}`))
      planet("stop", "--rootfs", rootfs, "--timeout", "30");
    hostA?.[Symbol.dispose]();
    hostB?.[Symbol.dispose]();
  });

  test("a cluster with objects; snapshots saved, listed and pruned in the etcd volume", async () => {
    expect((await start(OLD)).exitCode).toBe(0);
    await waitFor("default service account", () => kube.get("/api/v1/namespaces/default/serviceaccounts/default"), 90_000);
    await kube.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "keep" } });
    await kube.create("/api/v1/namespaces/keep/configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "cm" },
      data: { v: "one" },
    });
    await kube.create("/api/v1/namespaces/keep/secrets", {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "s" },
      stringData: { password: "hunter2" },
    });
    await kube.create("/apis/apps/v1/namespaces/keep/deployments", {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "app" },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "app" } },
        template: {
          metadata: { labels: { app: "app" } },
          spec: { terminationGracePeriodSeconds: 1, containers: [busybox(["sleep", "36000"])] },
        },
      },
    });
    await waitFor(
      "app available",
      async () =>
        (await kube.get<{ status: { availableReplicas?: number } }>("/apis/apps/v1/namespaces/keep/deployments/app")).status
          .availableReplicas === 2 || undefined,
      120_000,
      1000,
    );
    // Three manual snapshots, then keep two; a pre-upgrade one is another kind and stays.
    for (let i = 0; i < 3; i++) {
      expect(inBubble("planet", "etcd", "snapshot", "save").exitCode).toBe(0);
      await Bun.sleep(1100);
    }
    expect(inBubble("/usr/lib/planet/etcd-snapshot").exitCode).toBe(0);
    const list = () =>
      JSON.parse(inBubble("planet", "etcd", "snapshot", "list", "--json").stdout) as {
        name: string;
        kind: string;
        revision?: number;
        error?: string;
      }[];
    expect(list().filter((s) => s.kind === "manual")).toHaveLength(3);
    expect(inBubble("planet", "etcd", "snapshot", "prune", "--keep", "2").exitCode).toBe(0);
    const left = list();
    expect(left.map((s) => s.kind).sort()).toEqual(["manual", "manual", "pre-upgrade"]);
    for (const s of left) expect(s.revision).toBeGreaterThan(0);
    // They live in the host's etcd volume.
    expect(readdirSync(join(dirs(OLD).data, "etcd/snapshots")).filter((f) => f.endsWith(".db"))).toHaveLength(3);
    // The timer runs on the default schedule, twice a day.
    expect(inBubble("systemctl", "is-active", "etcd-snapshot.timer").stdout.trim()).toBe("active");
    expect(inBubble("systemctl", "show", "-P", "TimersCalendar", "etcd-snapshot.timer").stdout).toContain("*-*-* 00,12:00:00");
    // Bad input: one line each.
    const bad = inBubble("planet", "etcd", "snapshot", "prune", "--keep", "0");
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^BAD_FLAG: --keep 0: expected a whole number ≥ 1$/m);
    expect(inBubble("planet", "etcd", "snapshot", "save", "--kind", "weekly").stderr).toMatch(
      /--kind weekly: expected one of scheduled, manual, pre-upgrade, backup/,
    );
  }, 400_000);

  test("planet backup writes one 0600 archive of the snapshot and every secret; bad archives and targets are refused, nothing written", async () => {
    const res = planet("backup", archive, "--rootfs", rootfs);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(statSync(archive).mode & 0o777).toBe(0o600);
    const names = sh(["tar", "-tzf", archive]).stdout.split("\n");
    for (const f of [
      "backup.json",
      "etcd.db",
      "secrets/root.key",
      "secrets/sa.key",
      "secrets/encryption.key",
      "secrets/etcd-ca.key",
    ])
      expect(names).toContain(f);
    expect(readdirSync(work).filter((f) => f.includes(".tmp-") || f.includes(".stage-"))).toEqual([]);

    // Bad archives and targets, each onto the fresh host's (empty) folders: one line, nothing written.
    const edited = (name: string, edit: (dir: string) => void) => {
      const dir = join(work, `edit-${name}`);
      mkdirSync(dir, { recursive: true });
      sh(["tar", "-C", dir, "-xzf", archive]);
      edit(dir);
      const file = join(work, `${name}.tar.gz`);
      sh(["tar", "-C", dir, "-czf", file, "."]);
      return file;
    };
    const truncated = join(work, "truncated.tar.gz");
    writeFileSync(truncated, readFileSync(archive));
    truncateSync(truncated, Math.floor(statSync(archive).size / 2));
    const altered = edited("altered", (d) => writeFileSync(join(d, "secrets/sa.key"), "not the key"));
    const newer = edited("newer", (d) => {
      const info = JSON.parse(readFileSync(join(d, "backup.json"), "utf8"));
      writeFileSync(join(d, "backup.json"), JSON.stringify({ ...info, etcd: "3.9.0" }));
    });
    const cases: [string, string[], RegExp][] = [
      [truncated, [], /^BACKUP_INVALID: .*truncated\.tar\.gz is not a whole backup/],
      [altered, [], /^BACKUP_INVALID: .*secrets\/sa\.key is missing or altered/],
      [newer, [], /^UPGRADE_REFUSED: .*etcd 3\.9\.0, newer than this image's 3\.7\.\d+/],
      [archive, ["--cluster-id", "other"], /^CA_MISMATCH: .*is a backup of cluster bktest, not other$/],
      [join(work, "nope.tar.gz"), [], /^NOT_FOUND: .*nope\.tar\.gz does not exist$/],
    ];
    for (const [file, extra, error] of cases) {
      const r = restore(file, NEW, ...extra);
      expect(r.exitCode, file).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1), file).toMatch(error);
      expect(existsSync(join(dirs(NEW).data, "etcd/member")), file).toBe(false);
      expect(existsSync(dirs(NEW).secrets) && readdirSync(dirs(NEW).secrets).length > 0, file).toBe(false);
    }
    // Onto the host that runs the cluster: refused, even with --force, its data untouched.
    for (const extra of [[], ["--force"]]) {
      const onto = restore(archive, OLD, ...extra);
      expect(onto.exitCode).toBe(1);
      expect(onto.stderr).toMatch(/BUBBLE_RUNNING: .*runs on .*: stop it first/);
    }
    expect(readdirSync(dirname(join(dirs(OLD).data, "etcd/member"))).filter((f) => f.includes("before-restore"))).toEqual([]);
  }, 300_000);

  test("every host destroyed; restore on a fresh test host brings the cluster back: objects, the Secret, the pods, scheduled snapshots", async () => {
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    hostA?.[Symbol.dispose]();
    hostA = undefined;
    rmSync(dirs(OLD).data, { recursive: true, force: true });
    const oldAdmin = readFileSync(join(dirs(OLD).secrets, "admin.kubeconfig"), "utf8");
    rmSync(dirs(OLD).secrets, { recursive: true, force: true });

    hostB = testHost(NEW.host, NEW.ip);
    const res = restore(archive, NEW, "--cluster-id", CLUSTER);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(existsSync(join(dirs(NEW).secrets, "root.key"))).toBe(true);
    // Snapshots every 20 s, two kept: the schedule and the count come from the environment.
    expect(
      (await start(NEW, "--env", "PLANET_ETCD_SNAPSHOT_SCHEDULE=*:*:0/20", "--env", "PLANET_ETCD_SNAPSHOT_KEEP=2")).exitCode,
    ).toBe(0);
    // The new host's admin and the old one's alike: one CA.
    const admin = new Kube(loadKubeconfig(join(dirs(NEW).secrets, "admin.kubeconfig"), `https://${NEW.ip}:6443`));
    writeFileSync(join(work, "old-admin.kubeconfig"), oldAdmin);
    const before = new Kube(loadKubeconfig(join(work, "old-admin.kubeconfig"), `https://${NEW.ip}:6443`));
    const cm = await waitFor(
      "the ConfigMap back",
      () => before.get<{ data: { v: string } }>("/api/v1/namespaces/keep/configmaps/cm"),
      120_000,
      1000,
    );
    expect(cm.data.v).toBe("one");
    const secret = await admin.get<{ data: { password: string } }>("/api/v1/namespaces/keep/secrets/s");
    expect(Buffer.from(secret.data.password, "base64").toString()).toBe("hunter2");
    await waitFor(
      "the Deployment's pods running again on the restored host",
      async () => {
        const pods = await admin.get<{ items: Pod[] }>("/api/v1/namespaces/keep/pods?labelSelector=app%3Dapp");
        return pods.items.length === 2 && pods.items.every((p) => p.status.phase === "Running") ? true : undefined;
      },
      180_000,
      2000,
    );
    await waitFor(
      "app available",
      async () =>
        (await admin.get<{ status: { availableReplicas?: number } }>("/apis/apps/v1/namespaces/keep/deployments/app")).status
          .availableReplicas === 2 || undefined,
      120_000,
      1000,
    );
    // etcd is one member: this host.
    const members = inBubble("etcdctl", "member", "list").stdout.trim().split("\n");
    expect(members).toHaveLength(1);
    expect(members[0]).toContain(`https://${NEW.ip}:2380`);
    // Scheduled snapshots came, and no more than two are kept.
    await waitFor(
      "two scheduled snapshots",
      () =>
        readdirSync(join(dirs(NEW).data, "etcd/snapshots")).filter((f) => f.startsWith("scheduled-")).length === 2 || undefined,
      90_000,
      2000,
    );
    await Bun.sleep(25_000);
    expect(readdirSync(join(dirs(NEW).data, "etcd/snapshots")).filter((f) => f.startsWith("scheduled-"))).toHaveLength(2);
  }, 600_000);

  test("restored again onto the same host, which holds the cluster's etcd and secrets: refused without --force, set aside with it", async () => {
    await admin().create("/api/v1/namespaces/keep/configmaps", { metadata: { name: "after-backup" }, data: {} });
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    const plain = restore(archive, NEW);
    expect(plain.exitCode).toBe(1);
    expect(plain.stderr).toMatch(/etcd\/member exists: this host already holds a cluster's etcd; .* --force/);
    expect(restore(archive, NEW, "--force").exitCode).toBe(0);
    // What the host held is kept aside, not deleted; the secrets are the backup's again.
    const etcdDir = join(dirs(NEW).data, "etcd");
    expect(readdirSync(etcdDir).filter((f) => /^member\.before-restore-\d{8}T\d{6}Z$/.test(f))).toHaveLength(1);
    expect(readdirSync(dirname(dirs(NEW).secrets)).filter((f) => f.includes(".before-restore-"))).toHaveLength(1);
    expect((await start(NEW)).exitCode).toBe(0);
    const cm = await waitFor(
      "the backed-up ConfigMap",
      () => admin().get<{ data: { v: string } }>("/api/v1/namespaces/keep/configmaps/cm"),
      120_000,
      1000,
    );
    expect(cm.data.v).toBe("one");
    // The object made after the backup is not in it: the cluster is the backup's.
    expect(
      await admin()
        .get("/api/v1/namespaces/keep/configmaps/after-backup")
        .then(
          () => 200,
          (e: { status: number }) => e.status,
        ),
    ).toBe(404);
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
  }, 600_000);
});
