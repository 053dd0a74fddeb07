/**
 * A rolling upgrade of three masters and a node from one place (`planet upgrade --plan`): the
 * second master's health gate is made to fail, so it rolls back by itself and the roll halts with
 * the cluster healthy and mixed (m1 new, m2 and m3 old, etcd never without a quorum); `--resume`
 * without the fault completes it. A writer runs throughout: no acknowledged write is lost. Five
 * bubbles' worth of boots on two cores (about 15 minutes): `make upgrade-test` runs it, `make test`
 * only with PLANET_UPGRADE_CLUSTER=1.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "./fleet.ts";
import { buildTest, canBoot, derivedImage, planet, planetAsync, REPO, waitFor } from "./helpers.ts";

const work = join(REPO, "build", "test-upgrade-cluster-work");
const fleet = new Fleet({
  cluster: "upgroll",
  bridge: "ptu-br",
  work,
  masterImage: "",
  nodeImage: "",
  slots: true,
  hosts: [
    { name: "um1", host: "ptu-m1", ip: "10.221.0.1", role: "master" },
    { name: "um2", host: "ptu-m2", ip: "10.221.0.2", role: "master" },
    { name: "um3", host: "ptu-m3", ip: "10.221.0.3", role: "master" },
    { name: "un1", host: "ptu-n1", ip: "10.221.0.4", role: "node" },
  ],
});

const version = (h: string) =>
  (
    JSON.parse(planet("upgrade", "--status", "--data-dir", fleet.dataDir(fleet.host(h))).stdout) as {
      slots: { version: string; pointer: string | null }[];
    }
  ).slots.find((s) => s.pointer === "current")?.version;

describe.if(canBoot && process.env.PLANET_UPGRADE_CLUSTER === "1")("rolling upgrade of a cluster", () => {
  // In the fleet's work folder, which its prepare() empties: no state of an earlier run is left.
  const plan = join(work, "plan.json");
  const images = { master: "", node: "" };
  const writePlan = (failOn?: string) =>
    writeFileSync(
      plan,
      JSON.stringify({
        images,
        gateTimeout: 300,
        kubeconfig: join(fleet.clusterDir, "admin.kubeconfig"),
        hosts: fleet.o.hosts.map((h) => ({
          name: h.name,
          role: h.role,
          clusterId: "upgroll",
          netns: h.host,
          dataDir: fleet.dataDir(h),
          ...(h.name === failOn ? { env: { PLANET_FAILPOINT: "upgrade-gate" } } : {}),
        })),
      }),
    );

  beforeAll(async () => {
    const master = buildTest("master", ["--target", "master"]);
    const node = buildTest("node", ["--target", "node"]);
    fleet.o.masterImage = master;
    fleet.o.nodeImage = node;
    fleet.down();
    await fleet.prepare();
    images.master = derivedImage(master, join(work, "image-master-v2"), "99.0.1");
    images.node = derivedImage(node, join(work, "image-node-v2"), "99.0.1");
    await fleet.startAll();
    await fleet.ready();
  }, 1_200_000);
  afterAll(() => fleet.down());

  test("the second master fails its gate: it rolls back, the roll halts, the cluster stays healthy and mixed; --resume completes", async () => {
    const kube = fleet.kube();
    const acked: string[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const m = fleet.masters[i % 3];
        try {
          await fleet.kube(m).create("/api/v1/namespaces/default/configmaps", { metadata: { name: `r-${i}` } });
          acked.push(`r-${i}`);
        } catch {
          await Bun.sleep(100);
        }
        await Bun.sleep(100);
      }
    })();
    writePlan("um2");
    const first = await planetAsync(["upgrade", "--plan", plan]);
    expect(first.exitCode).toBe(1);
    expect(first.stderr).toContain("um2: rolled back");
    expect(first.stderr).toContain("--resume");
    expect([version("um1"), version("um2"), version("um3"), version("un1")]).toEqual(["99.0.1", "0.1.0", "0.1.0", "0.1.0"]);
    // Healthy and mixed: three etcd members answer, every Node Ready.
    await fleet.ready(300_000);
    const members = planet("exec", "--rootfs", fleet.rootfs(fleet.host("um3")), "--", "etcdctl", "member", "list");
    expect(members.stdout.trim().split("\n")).toHaveLength(3);

    writePlan();
    const resumed = await planetAsync(["upgrade", "--plan", plan, "--resume"]);
    expect(resumed.stderr).toContain("cluster upgraded");
    expect(resumed.exitCode).toBe(0);
    expect(fleet.o.hosts.map((h) => version(h.name))).toEqual(["99.0.1", "99.0.1", "99.0.1", "99.0.1"]);
    writing = false;
    await writer;
    await fleet.ready(300_000);
    const names = new Set(
      (await kube.get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces/default/configmaps")).items.map(
        (c) => c.metadata.name,
      ),
    );
    expect(acked.length).toBeGreaterThan(20);
    expect(acked.filter((a) => !names.has(a))).toEqual([]);
    const again = await planetAsync(["upgrade", "--plan", plan]);
    expect(again.exitCode).toBe(0);
    await waitFor(
      "status of um1 shows the new version",
      () => planet("status", "--data-dir", fleet.dataDir(fleet.host("um1"))).stdout.includes("99.0.1"),
      60_000,
      2000,
    );
  }, 3_600_000);
});
