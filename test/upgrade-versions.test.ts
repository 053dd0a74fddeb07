/**
 * `planet upgrade` between two real Kubernetes versions on one host: a dev bubble built with
 * Kubernetes 1.36.3 (`--asset kubernetes@1.36.3`) moves to the default build's 1.37.2 while a writer
 * creates ConfigMaps — every acknowledged write kept, the same cluster (kube-system's UID, the CA the
 * cluster publishes), apiserver and kubelet report 1.37.2, the slot says so. Then images that would
 * move Kubernetes back or skip a minor, an image larger than the disk, and any upgrade of a host
 * whose checks fail are refused with the bubble left running. Compiling the second
 * Kubernetes takes about 15 minutes on a cold cache: `make upgrade-test` runs this, `make test` only
 * with PLANET_UPGRADE_VERSIONS=1.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readState } from "../core/bubble/state.ts";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
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

const HOST = "pt-upv";
const IP = "10.224.0.1";
const CLUSTER = "upvtest";
const NODE = "upv-node-1";
const FROM = "1.36.3";
const TO = "1.37.2";
const work = join(REPO, "build", "test-upgrade-versions-work");
const secrets = join(work, "secrets");
const data = join(work, "data");

interface SlotStatus {
  slots: { version: string; assets: Record<string, string>; pointer: string | null }[];
  upgrade: { phase: string; changes: string[] } | null;
}

describe.if(canBoot && process.env.PLANET_UPGRADE_VERSIONS === "1")(`upgrade Kubernetes ${FROM} → ${TO} (one host)`, () => {
  let older = "";
  let newer = "";
  let host: ReturnType<typeof testHost> | undefined;
  let kube: Kube;
  const upgrade = (image: string) =>
    planetAsync(["upgrade", image, "--cluster-id", CLUSTER, "--netns", HOST, "--data-dir", data, "--gate-timeout", "300"]);
  const status = (): SlotStatus => JSON.parse(planet("upgrade", "--status", "--data-dir", data).stdout) as SlotStatus;
  const current = () => status().slots.find((s) => s.pointer === "current");
  const runningPid = () => readState(`planet-${CLUSTER}-${HOST}`)?.pid;
  const versions = async () => ({
    apiserver: (await kube.get<{ gitVersion: string }>("/version")).gitVersion,
    kubelet: (await kube.get<{ status: { nodeInfo: { kubeletVersion: string } } }>(`/api/v1/nodes/${NODE}`)).status.nodeInfo
      .kubeletVersion,
  });

  beforeAll(async () => {
    older = buildTest(`dev-k8s${FROM}`, ["--target", "dev", "--asset", `kubernetes@${FROM}`]);
    newer = buildTest("dev", ["--target", "dev"]);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    await devSecrets(secrets, { domain: "upv.test", ips: [IP], node: NODE });
    host = testHost(HOST, IP);
    kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig"), `https://${IP}:6443`));
    expect(planet("install", older, "--data-dir", data).exitCode).toBe(0);
    const start = await planetAsync(startArgs({ host: HOST, cluster: CLUSTER, node: NODE, secrets, data }));
    if (start.exitCode !== 0) throw new Error(`start: ${start.stderr.slice(-2000)}`);
    await waitFor(
      "every check green",
      () => planet("status", "--data-dir", data, "--local", "--json").exitCode === 0,
      300_000,
      3000,
    );
  }, 2_400_000);
  afterAll(() => {
    const st = readState(`planet-${CLUSTER}-${HOST}`);
    if (st) planet("stop", "--rootfs", st.rootfs, "--timeout", "30");
    host?.[Symbol.dispose]();
    rmSync(work, { recursive: true, force: true });
  });

  test(`${FROM} → ${TO} with a writer running: no acknowledged write lost, the same cluster, ${TO} reported`, async () => {
    expect(current()?.assets.kubernetes).toBe(FROM);
    expect(await versions()).toEqual({ apiserver: `v${FROM}`, kubelet: `v${FROM}` });
    const uid = (await kube.get<{ metadata: { uid: string } }>("/api/v1/namespaces/kube-system")).metadata.uid;
    const writer = startWriter(() => kube, "v");
    const res = await upgrade(newer);
    await writer.stop();
    expect(res.stderr).toContain(`kubernetes ${FROM} → ${TO}`);
    expect(res.stderr).toContain("now runs");
    expect(res.exitCode).toBe(0);
    const st = status();
    expect(st.upgrade?.phase).toBe("committed");
    expect(current()?.assets.kubernetes).toBe(TO);
    expect(st.slots.find((s) => s.pointer === "previous")?.assets.kubernetes).toBe(FROM);
    await waitFor("the apiserver", () => kube.get("/api/v1/namespaces/kube-system").catch(() => null), 120_000, 1000);
    expect(await versions()).toEqual({ apiserver: `v${TO}`, kubelet: `v${TO}` });
    // planet status names the Kubernetes each member runs.
    await waitFor(
      "planet status with the new versions",
      () => planet("status", "--data-dir", data).stdout.includes(`kubernetes ${TO}`),
      60_000,
      2000,
    );
    expect(writer.acked.length).toBeGreaterThan(5);
    expect(await writer.lost(kube)).toEqual([]);
    expect((await kube.get<{ metadata: { uid: string } }>("/api/v1/namespaces/kube-system")).metadata.uid).toBe(uid);
    // The CA the cluster publishes to its pods is still the one `planet secrets init` made.
    const published = await kube.get<{ data: Record<string, string> }>("/api/v1/namespaces/default/configmaps/kube-root-ca.crt");
    expect(published.data["ca.crt"]?.trim()).toBe(readFileSync(join(secrets, "root.cert"), "utf8").trim());
  }, 1_200_000);

  test("Kubernetes going back, or skipping a minor: refused with one line, the bubble left running", async () => {
    const pid = runningPid();
    // A newer planet version, but the Kubernetes it carries is the older one.
    const back = await upgrade(derivedImage(older, join(work, "image-back"), "99.0.1"));
    expect(back.exitCode).toBe(1);
    expect(back.stderr).toContain(`kubernetes ${FROM} is older than the running ${TO}`);
    // An image whose manifest says Kubernetes 1.39: the skew rule reads the manifest.
    const skip = await upgrade(
      derivedImage(newer, join(work, "image-skip"), "99.0.2", {}, (m) => {
        for (const a of m.assets) if (a.name === "kubernetes") a.version = "1.39.0";
      }),
    );
    expect(skip.exitCode).toBe(1);
    expect(skip.stderr).toContain(`kubernetes ${TO} → 1.39.0 skips 1 minor version: upgrade to 1.38 first`);
    expect(runningPid()).toBe(pid);
    expect(current()?.assets.kubernetes).toBe(TO);
  }, 600_000);

  test("not enough disk, or a host that is not healthy: refused with one line, nothing stopped", async () => {
    const pid = runningPid();
    // An image of 10 TiB (one sparse file): more than this disk has.
    const huge = derivedImage(newer, join(work, "image-huge"), "99.0.3");
    writeFileSync(join(huge, "rootfs", "var", "huge"), "");
    truncateSync(join(huge, "rootfs", "var", "huge"), 10 * 2 ** 40);
    const full = await upgrade(huge);
    expect(full.exitCode).toBe(1);
    expect(full.stderr).toMatch(/^NO_SPACE: .* MiB free, the upgrade needs \d+ MiB/m);
    rmSync(huge, { recursive: true, force: true });
    // The scheduler stopped a moment ago: the check's last green is older than the upgrade, so the
    // preflight waits for a fresh probe, which fails for the minute it waits.
    const rootfs = readState(`planet-${CLUSTER}-${HOST}`)?.rootfs as string;
    expect(planet("exec", "--rootfs", rootfs, "--", "systemctl", "stop", "kube-scheduler").exitCode).toBe(0);
    try {
      const sick = await upgrade(derivedImage(newer, join(work, "image-next"), "99.0.4"));
      expect(sick.exitCode).toBe(1);
      expect(sick.stderr).toContain(
        "CLUSTER_UNHEALTHY: this host is not healthy, so nothing was stopped: kube-master-scheduler-healthz",
      );
    } finally {
      planet("exec", "--rootfs", rootfs, "--", "systemctl", "start", "kube-scheduler");
    }
    expect(runningPid()).toBe(pid);
    expect(status().upgrade?.phase).toBe("committed");
  }, 600_000);
});
