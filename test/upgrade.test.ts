/**
 * `planet upgrade` on one host (the dev image, master and node in one bubble, in a test host):
 * installed into a slot and started from it; upgraded to a newer image while a writer creates
 * ConfigMaps (every acknowledged write kept, the same cluster and CA); a broken image (its etcd
 * rejects a flag) rolls back by itself with the data intact; an older image and other bad input are
 * refused with nothing stopped; an upgrade killed at phase boundaries converges with --resume
 * (`PLANET_UPGRADE_KILLS=all` kills it at every boundary, `make upgrade-test`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { agentSocket, ask } from "../core/agent/client.ts";
import { readState } from "../core/bubble/state.ts";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import { type Journal, PHASES, type UpgradePhase } from "../core/upgrade/journal.ts";
import {
  buildTest,
  canBoot,
  derivedImage,
  devSecrets,
  planet,
  planetAsync,
  REPO,
  startArgs,
  startWriter,
  testHost,
  waitFor,
} from "./helpers.ts";

const HOST = "pt-upg";
const IP = "10.220.0.1";
const CLUSTER = "upgtest";
const NODE = "upg-node-1";
const work = join(REPO, "build", "test-upgrade-work");
const secrets = join(work, "secrets");
const data = join(work, "data");

/** Boundaries a kill is tried at in `make test`; every one with PLANET_UPGRADE_KILLS=all. */
const KILLS: UpgradePhase[] =
  process.env.PLANET_UPGRADE_KILLS === "all"
    ? PHASES.filter((p) => !["committed", "rolling-back", "rolled-back"].includes(p))
    : ["stopped", "started"];

interface UpgradeStatus {
  slots: { name: string; version: string; pointer: string | null }[];
  upgrade: Journal | null;
}

describe.if(canBoot)("planet upgrade (one host)", () => {
  let dev = "";
  let host: ReturnType<typeof testHost> | undefined;
  let kube: Kube;
  const images: Record<string, string> = {};
  const upgrade = (...args: string[]) =>
    planetAsync(["upgrade", "--cluster-id", CLUSTER, "--netns", HOST, "--data-dir", data, "--gate-timeout", "240", ...args]);
  const status = (): UpgradeStatus =>
    JSON.parse(planet("upgrade", "--status", "--data-dir", data).stdout || "{}") as UpgradeStatus;
  const current = () => status().slots.find((s) => s.pointer === "current");
  const runningPid = () => readState(`planet-${CLUSTER}-${HOST}`)?.pid;

  beforeAll(async () => {
    dev = buildTest("dev", ["--target", "dev"]);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    // Newer images of the same build: the planet version moves on (0.1.0 → 0.1.1 → …).
    images.v2 = derivedImage(dev, join(work, "image-v2"), "99.0.1");
    images.v3 = derivedImage(dev, join(work, "image-v3"), "99.0.2");
    images.broken = derivedImage(dev, join(work, "image-broken"), "99.0.3", {
      "etc/systemd/system/etcd.service.d/99-broken.conf": "[Service]\nExecStart=\nExecStart=/usr/bin/etcd --no-such-flag\n",
    });
    // A user's plugin whose unit crash-loops (up a second, down a second) and whose unit check is
    // green whenever it catches the unit up: never committed.
    const unit =
      "[Unit]\nDescription=a user's service that crash-loops\n[Service]\nExecStart=/bin/sh -c 'sleep 1; exit 1'\nRestart=always\nRestartSec=1\n";
    images.flapping = derivedImage(
      dev,
      join(work, "image-flapping"),
      "99.0.4",
      { "etc/systemd/system/flappy.service": unit },
      (m) => {
        const mm = m as unknown as { units: Record<string, string[]>; unitOwners: Record<string, string>; checks: unknown[] };
        mm.units.master = [...(mm.units.master ?? []), "flappy.service"];
        mm.unitOwners["flappy.service"] = "user";
        mm.checks.push({ name: "user-flappy", unit: "flappy.service", plugin: "user", roles: ["master"] });
      },
    );
    // Enabled as a plugin's unit is: a link in its role's target.
    symlinkSync(
      "../flappy.service",
      join(images.flapping, "rootfs/etc/systemd/system/planet-master.target.wants/flappy.service"),
    );
    await devSecrets(secrets, { domain: "upg.test", ips: [IP], node: NODE });
    host = testHost(HOST, IP);
    kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig"), `https://${IP}:6443`));
  }, 1_800_000);
  afterAll(() => {
    const st = readState(`planet-${CLUSTER}-${HOST}`);
    if (st) planet("stop", "--rootfs", st.rootfs, "--timeout", "30");
    host?.[Symbol.dispose]();
    rmSync(work, { recursive: true, force: true });
  });

  test("bad input before anything runs: no image, no bubble, not an image — one line each", async () => {
    const none = await upgrade();
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain("planet upgrade needs the image to move to");
    const notRunning = await upgrade(images.v2 as string);
    expect(notRunning.exitCode).toBe(1);
    expect(notRunning.stderr).toContain("is not running");
    const notImage = planet("install", join(work, "secrets"), "--data-dir", data);
    expect(notImage.exitCode).toBe(1);
    expect(notImage.stderr).toContain("is not a planet image");
    expect(existsSync(join(data, "slots"))).toBe(false);
  });

  test("installed into a slot and started from it: the bubble boots on an overlay, the slot stays as built", async () => {
    const inst = planet("install", dev, "--data-dir", data);
    expect(inst.exitCode).toBe(0);
    const start = await planetAsync(startArgs({ host: HOST, cluster: CLUSTER, node: NODE, secrets, data }));
    expect(start.stderr).toContain("ready in");
    expect(start.exitCode).toBe(0);
    const slot = current();
    expect(slot?.version).toBe("0.1.0");
    const slotDir = join(data, "slots", slot?.name as string);
    // The start wrote the container environment into the overlay's upper layer, not into the slot.
    const envFile = "etc/container-environment";
    expect(readFileSync(join(slotDir, "upper", envFile), "utf8")).toContain(`KUBE_NODE_NAME="${NODE}"`);
    const inSlot = join(slotDir, "rootfs", envFile);
    expect(existsSync(inSlot) ? readFileSync(inSlot, "utf8") : "").not.toContain(NODE);
    await waitFor(
      "node Ready and every check green",
      async () => {
        const r = planet("status", "--rootfs", join(slotDir, "rootfs"), "--local", "--json");
        return r.exitCode === 0;
      },
      300_000,
      3000,
    );
  }, 600_000);

  test("an older image, the same image, another target: refused with the bubble left running", async () => {
    const pid = runningPid();
    const same = await upgrade(dev);
    expect(same.exitCode).toBe(1);
    expect(same.stderr).toMatch(/is the image this host runs|UPGRADE_REFUSED/);
    const older = derivedImage(dev, join(work, "image-old"), "0.0.9");
    const old = await upgrade(older);
    expect(old.exitCode).toBe(1);
    expect(old.stderr).toContain("older than the running 0.1.0");
    expect(runningPid()).toBe(pid);
    rmSync(older, { recursive: true, force: true });
  }, 600_000);

  test("another upgrade holds the cluster's lock: refused, nothing stopped; status names it; --unlock releases it", async () => {
    const pid = runningPid();
    const rootfs = readState(`planet-${CLUSTER}-${HOST}`)?.rootfs as string;
    await ask(agentSocket(rootfs), "/upgrade/lock", "POST", { owner: "elsewhere", what: "an upgrade of another host" });
    const locked = await upgrade(images.v2 as string);
    expect(locked.exitCode).toBe(1);
    expect(locked.stderr).toContain(
      "UPGRADE_LOCKED: another upgrade holds the cluster's upgrade lock: an upgrade of another host",
    );
    expect(runningPid()).toBe(pid);
    expect(status().upgrade).toBeNull();
    const st = JSON.parse(planet("status", "--data-dir", data, "--local", "--json").stdout) as { lock: { owner: string } };
    expect(st.lock.owner).toBe("elsewhere");
    const mine = planet("upgrade", "--unlock", "--lock-owner", "mine", "--cluster-id", CLUSTER, "--netns", HOST);
    expect(mine.exitCode).toBe(1);
    expect(mine.stderr).toContain("held by elsewhere");
    const unlock = planet("upgrade", "--unlock", "--cluster-id", CLUSTER, "--netns", HOST);
    expect(unlock.exitCode).toBe(0);
    expect(unlock.stderr).toContain("released the upgrade lock of elsewhere");
  }, 300_000);

  test("upgraded with a writer running: every acknowledged write kept, the same cluster and CA, the new version current", async () => {
    const uid = (await kube.get<{ metadata: { uid: string } }>("/api/v1/namespaces/kube-system")).metadata.uid;
    const writer = startWriter(() => kube, "w");
    const running = upgrade(images.v2 as string);
    // A second upgrade of this host while the first runs: refused, the first carries on.
    await waitFor("the upgrade's journal", () => status().upgrade, 120_000, 200);
    const second = await upgrade(images.v3 as string);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain("UPGRADE_RUNNING: an upgrade is already running on this host");
    const res = await running;
    await writer.stop();
    expect(res.stderr).toContain("now runs");
    expect(res.exitCode).toBe(0);
    expect(current()?.version).toBe("99.0.1");
    expect(status().slots.find((s) => s.pointer === "previous")?.version).toBe("0.1.0");
    expect(status().upgrade?.phase).toBe("committed");
    await waitFor("the apiserver", () => kube.get("/api/v1/namespaces/kube-system").catch(() => null), 120_000, 1000);
    // The upgrade took the cluster's lock and gave it back.
    expect((JSON.parse(planet("status", "--data-dir", data, "--local", "--json").stdout) as { lock: unknown }).lock).toBeNull();
    expect(writer.acked.length).toBeGreaterThan(5);
    expect(await writer.lost(kube)).toEqual([]);
    expect((await kube.get<{ metadata: { uid: string } }>("/api/v1/namespaces/kube-system")).metadata.uid).toBe(uid);
    // The etcd plugin's step before the stop left a snapshot of the keyspace in its volume.
    const snaps = planet(
      "exec",
      "--rootfs",
      readState(`planet-${CLUSTER}-${HOST}`)?.rootfs as string,
      "--",
      "ls",
      "/ext/etcd/snapshots",
    );
    expect(snaps.stdout).toMatch(/^pre-upgrade-\d{8}T\d{6}Z\.db$/m);
    // Uncordoned by the kube-node plugin's step once the gate passed.
    const node = await kube.get<{ spec: { unschedulable?: boolean } }>(`/api/v1/nodes/${NODE}`);
    expect(node.spec.unschedulable ?? false).toBe(false);
  }, 900_000);

  test("a broken image (its etcd rejects a flag) rolls back by itself: the previous image runs, the data intact", async () => {
    const before = (await kube.get<{ items: unknown[] }>("/api/v1/namespaces/default/configmaps")).items.length;
    const res = await planetAsync([
      "upgrade",
      images.broken as string,
      "--cluster-id",
      CLUSTER,
      "--netns",
      HOST,
      "--data-dir",
      data,
      "--gate-timeout",
      "90",
      // Its etcd never starts, so systemd is never ready: no need to wait the default 300 s for that.
      "--ready-timeout",
      "120",
    ]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain("rolled back");
    // etcd never becomes ready: systemd does not finish booting, or the gate sees etcd-healthz fail.
    expect(res.stderr).toMatch(/did not start|etcd-healthz/);
    const st = status();
    expect(st.slots.find((s) => s.pointer === "current")?.version).toBe("99.0.1");
    expect(st.upgrade?.phase).toBe("rolled-back");
    expect(st.upgrade?.reason).toMatch(/did not start|checks not passing/);
    await waitFor(
      "the apiserver after the rollback",
      () => kube.get("/api/v1/namespaces/kube-system").catch(() => null),
      180_000,
      1000,
    );
    const after = (await kube.get<{ items: unknown[] }>("/api/v1/namespaces/default/configmaps")).items.length;
    expect(after).toBe(before);
  }, 900_000);

  test("an image whose unit crash-loops behind a check that is sometimes green: rolled back every time, never committed", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await upgrade(images.flapping as string);
      expect(res.exitCode).toBe(1);
      expect(res.stderr).toContain("rolled back");
      // Found by its restarts while the gate watched, not at the gate's deadline (240 s here).
      expect(status().upgrade?.reason).toMatch(/crash-looping: flappy\.service restarted \d+ times/);
      expect(current()?.version).toBe("99.0.1");
    }
    await waitFor(
      "the apiserver after the rollbacks",
      () => kube.get("/api/v1/namespaces/kube-system").catch(() => null),
      180_000,
      1000,
    );
  }, 900_000);

  test(`killed after ${KILLS.join(", ")}: --resume converges (to the new image, or back to the old one)`, async () => {
    let target = images.v3 as string;
    let version = "99.0.2";
    for (const [i, phase] of KILLS.entries()) {
      const from = current()?.version;
      const killed = await planetAsync(
        ["upgrade", target, "--cluster-id", CLUSTER, "--netns", HOST, "--data-dir", data, "--gate-timeout", "240"],
        { PLANET_FAILPOINT: `upgrade-after-${phase}` },
      );
      expect(killed.exitCode).not.toBe(0);
      expect(status().upgrade?.phase).toBe(phase);
      const again = await upgrade(target);
      expect(again.stderr).toContain("planet upgrade --resume");
      const resumed = await upgrade("--resume");
      const phaseAfter = status().upgrade?.phase;
      // Before anything stopped it goes back; from the stop on it goes forward.
      if (phase === "preflight" || phase === "staged") {
        expect(phaseAfter).toBe("rolled-back");
        expect(current()?.version).toBe(from);
      } else {
        expect(resumed.stderr).toContain("now runs");
        expect(phaseAfter).toBe("committed");
        expect(current()?.version).toBe(version);
        target = derivedImage(dev, join(work, `image-k${i}`), `99.1.${i}`);
        version = `99.1.${i}`;
      }
      await waitFor("the apiserver", () => kube.get("/api/v1/namespaces/kube-system").catch(() => null), 180_000, 1000);
    }
  }, 3_600_000);
});
