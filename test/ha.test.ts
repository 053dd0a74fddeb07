/**
 * Three masters and a node: etcd as a 3-member cluster, an apiserver on each master, the agents'
 * leader followed by `planet-master` on every host. A writer creates ConfigMaps in a loop while
 * the leader's bubble is stopped: a new leader takes over, the node follows and stays Ready,
 * every write the API acknowledged is still there, and the old leader rejoins when started again.
 * Four bubbles on two cores: about 4 minutes. Part of `make test`; PLANET_HA=0 skips it, `make ha-test`
 * runs it alone.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet, type FleetHost } from "./fleet.ts";
import { buildTest, canBoot, hostSnapshot, planet, REPO, waitFor } from "./helpers.ts";

const fleet = new Fleet({
  cluster: "hatest",
  bridge: "pth-br",
  work: join(REPO, "build", "test-ha-work"),
  masterImage: "",
  nodeImage: "",
  hosts: [
    { name: "m1", host: "pth-m1", ip: "10.218.0.1", role: "master" },
    { name: "m2", host: "pth-m2", ip: "10.218.0.2", role: "master" },
    { name: "m3", host: "pth-m3", ip: "10.218.0.3", role: "master" },
    { name: "n1", host: "pth-n1", ip: "10.218.0.4", role: "node" },
  ],
});

describe.if(canBoot && process.env.PLANET_HA !== "0")("three masters survive the loss of the leader", () => {
  let before: Record<string, unknown> = {};
  const node = fleet.host("n1");

  beforeAll(async () => {
    fleet.o.masterImage = join(buildTest("master", ["--target", "master"]), "rootfs");
    fleet.o.nodeImage = join(buildTest("node", ["--target", "node"]), "rootfs");
    fleet.down();
    before = hostSnapshot();
    await fleet.prepare();
  }, 300_000);
  afterAll(() => fleet.down());

  test("three masters and a node boot into one cluster: a 3-member etcd, four Ready Nodes, one agent leader", async () => {
    await fleet.startAll();
    await fleet.ready();
    const members = planet("exec", "--rootfs", fleet.rootfs(fleet.host("m1")), "--", "etcdctl", "member", "list");
    expect(members.stdout.trim().split("\n")).toHaveLength(3);
    const leader = await waitFor("an agent leader", () => fleet.leader(node), 60_000, 1000);
    expect(fleet.masters.map((m) => m.ip)).toContain(leader);
    // The masters' agents tell the node every master; its load balancer forwards to all three.
    const want = `${fleet.masters.map((m) => `${m.name}:${m.ip}`).join("\n")}\n`;
    await waitFor(
      "the node's masters file",
      () => planet("exec", "--rootfs", fleet.rootfs(node), "--", "cat", "/run/planet/masters").stdout === want,
      30_000,
      1000,
    );
    const cfg = planet("exec", "--rootfs", fleet.rootfs(node), "--", "cat", "/run/planet/haproxy.cfg").stdout;
    for (const m of fleet.masters) expect(cfg).toContain(`server ${m.name} ${m.ip}:6443 check`);
  }, 600_000);

  test("the leader's bubble stops: a new leader, the node follows, every acknowledged write is kept, the old leader rejoins", async () => {
    const oldIp = fleet.leader(node) as string;
    const old = fleet.host(oldIp);
    // The writer goes to each master in turn while one answers, like a client with three endpoints.
    const writer = fleet.writer();
    const { acked } = writer;
    await waitFor("writes flowing", () => acked.length >= 20, 60_000, 200);
    expect(fleet.stop(old).exitCode).toBe(0);
    const newIp = await waitFor(
      "a new agent leader",
      () => {
        const l = fleet.leader(node);
        return l && l !== oldIp ? l : null;
      },
      60_000,
      500,
    );
    expect(fleet.masters.filter((m) => m !== old).map((m) => m.ip)).toContain(newIp);
    // The node never waited for that election: planet-master is its own load balancer in front of
    // every master, which found the stopped one down and serves through the other two.
    const nodeRootfs = fleet.rootfs(node);
    expect(readFileSync(join(nodeRootfs, "etc/hosts"), "utf8")).toMatch(/^127\.0\.0\.1\s+planet-master$/m);
    await waitFor(
      `the node's load balancer marks ${old.name} down`,
      () => planet("exec", "--rootfs", nodeRootfs, "--", "/usr/lib/planet/apilb-config", "check").stdout.includes(old.name),
      30_000,
      500,
    );
    const live = fleet.kube(fleet.host(newIp));
    const stoppedAt = Date.now();
    await waitFor(
      "n1 heartbeats after the stop",
      async () => {
        const lease = await live.get<{ spec: { renewTime: string } }>(
          "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
        );
        return Date.parse(lease.spec.renewTime) > stoppedAt;
      },
      60_000,
      1000,
    );
    const countAfter = acked.length;
    await waitFor("writes after the failover", () => acked.length >= countAfter + 20, 60_000, 200);
    await writer.stop();
    const cms = await live.get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces/default/configmaps");
    const have = new Set(cms.items.map((c) => c.metadata.name));
    const lost = acked.filter((n) => !have.has(n));
    expect(lost).toEqual([]);
    expect(acked.length).toBeGreaterThan(40);
    await fleet.ready(120_000).catch(() => {}); // the stopped master's Node goes NotReady: only n1 matters here
    const n1 = await live.get<{ status: { conditions: { type: string; status: string }[] } }>("/api/v1/nodes/n1");
    expect(n1.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");

    // The old leader comes back with its data: etcd takes it in again, its Node turns Ready.
    const back = await fleet.start(old);
    expect(back.exitCode).toBe(0);
    await fleet.ready();
    const health = planet("exec", "--rootfs", fleet.rootfs(old), "--", "etcdctl", "endpoint", "health", "--cluster");
    expect(health.stdout.match(/is healthy/g)).toHaveLength(3);
    const seen = await fleet.kube(old).get<{ items: unknown[] }>("/api/v1/namespaces/default/configmaps");
    expect(seen.items.length).toBeGreaterThanOrEqual(acked.length);
  }, 600_000);

  test("every bubble stops and the host is as it was", () => {
    for (const h of [...fleet.nodes, ...fleet.masters] as FleetHost[]) expect(fleet.stop(h).exitCode).toBe(0);
    fleet.down();
    expect(hostSnapshot()).toEqual(before);
  }, 300_000);
});
