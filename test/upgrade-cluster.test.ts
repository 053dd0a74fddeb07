/**
 * A rolling upgrade of three masters and a node from one place (`planet upgrade --plan`), from
 * Kubernetes 1.36.3 (`--asset kubernetes@1.36.3`) to the default build's 1.37.2: the
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
import { buildTest, canBoot, derivedImage, planet, planetAsync, REPO, startWriter, waitFor } from "./helpers.ts";

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

const FROM = "1.36.3";
const TO = "1.37.2";

/** The planet and Kubernetes versions of the image a host runs. */
const version = (h: string) => {
  const slot = (
    JSON.parse(planet("upgrade", "--status", "--data-dir", fleet.dataDir(fleet.host(h))).stdout) as {
      slots: { version: string; assets: Record<string, string>; pointer: string | null }[];
    }
  ).slots.find((s) => s.pointer === "current");
  return `${slot?.version} ${slot?.assets.kubernetes}`;
};
const OLD = `0.1.0 ${FROM}`;
const NEW = `99.0.1 ${TO}`;

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
    fleet.o.masterImage = buildTest(`master-k8s${FROM}`, ["--target", "master", "--asset", `kubernetes@${FROM}`]);
    fleet.o.nodeImage = buildTest(`node-k8s${FROM}`, ["--target", "node", "--asset", `kubernetes@${FROM}`]);
    const master = buildTest("master", ["--target", "master"]);
    const node = buildTest("node", ["--target", "node"]);
    fleet.down();
    await fleet.prepare();
    // The planet version moves on too, so planet status tells the images apart.
    images.master = derivedImage(master, join(work, "image-master-v2"), "99.0.1");
    images.node = derivedImage(node, join(work, "image-node-v2"), "99.0.1");
    await fleet.startAll();
    await fleet.ready();
  }, 2_400_000);
  afterAll(() => {
    fleet.saveLogs(join(REPO, "build", "test-upgrade-cluster-logs"));
    fleet.down();
  });

  test("the second master fails its gate: it rolls back, the roll halts, the cluster stays healthy and mixed; --resume completes", async () => {
    const kube = fleet.kube();
    const writer = startWriter((i) => fleet.kube(fleet.masters[i % 3]), "r");
    writePlan("um2");
    const first = await planetAsync(["upgrade", "--plan", plan]);
    expect(first.exitCode).toBe(1);
    expect(first.stderr).toContain("um2: rolled back");
    expect(first.stderr).toContain("--resume");
    expect([version("um1"), version("um2"), version("um3"), version("un1")]).toEqual([NEW, OLD, OLD, OLD]);
    // Healthy and mixed: three etcd members answer, every Node Ready.
    await fleet.ready(300_000);
    const members = planet("exec", "--rootfs", fleet.rootfs(fleet.host("um3")), "--", "etcdctl", "member", "list");
    expect(members.stdout.trim().split("\n")).toHaveLength(3);

    writePlan();
    const resumed = await planetAsync(["upgrade", "--plan", plan, "--resume"]);
    expect(resumed.stderr).toContain("cluster upgraded");
    expect(resumed.exitCode).toBe(0);
    expect(fleet.o.hosts.map((h) => version(h.name))).toEqual([NEW, NEW, NEW, NEW]);
    await writer.stop();
    await fleet.ready(300_000);
    expect(writer.acked.length).toBeGreaterThan(20);
    expect(await writer.lost(kube)).toEqual([]);
    const nodes = await kube.get<{ items: { status: { nodeInfo: { kubeletVersion: string } } }[] }>("/api/v1/nodes");
    expect(nodes.items.map((n) => n.status.nodeInfo.kubeletVersion)).toEqual([`v${TO}`, `v${TO}`, `v${TO}`, `v${TO}`]);
    const again = await planetAsync(["upgrade", "--plan", plan]);
    expect(again.exitCode).toBe(0);
    await waitFor(
      "status of um1 shows the new version",
      () => {
        const out = planet("status", "--data-dir", fleet.dataDir(fleet.host("um1"))).stdout;
        return out.includes("master 99.0.1 (") && out.includes(`kubernetes ${TO}`) && !out.includes(`kubernetes ${FROM}`);
      },
      60_000,
      2000,
    );
  }, 3_600_000);
});
