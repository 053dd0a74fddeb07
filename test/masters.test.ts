/**
 * Masters added and taken out of a running cluster, under a writer: one master is born alone, two
 * more join it with a master token (etcd learners promoted once caught up), one's etcd is killed
 * with -9 and another is cut off by dropped packets and healed, then one is lost and
 * removed from another master, one leaves by itself, and a fresh host under a lost master's name
 * replaces it. Every write the API acknowledged is still there at the end. Refused, with nothing
 * changed: a node's token asked for a master, removing a member while another is down, the last
 * master leaving, removing oneself.
 * Three bubbles on two cores: about 5 minutes. PLANET_HA=0 skips it with the three-master test.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { EtcdMember } from "../plugins/etcd/members.ts";
import { Fleet, type FleetHost } from "./fleet.ts";
import { buildTest, canBoot, hostSnapshot, planet, planetAsync, type Ran, REPO, sh, startArgs, waitFor } from "./helpers.ts";

const fleet = new Fleet({
  cluster: "mstest",
  bridge: "ptm-br",
  work: join(REPO, "build", "test-masters-work"),
  masterImage: "",
  nodeImage: "",
  hosts: [
    { name: "m1", host: "ptm-m1", ip: "10.224.0.1", role: "master" },
    { name: "m2", host: "ptm-m2", ip: "10.224.0.2", role: "master" },
    { name: "m3", host: "ptm-m3", ip: "10.224.0.3", role: "master" },
  ],
});
const [m1, m2, m3] = fleet.masters as [FleetHost, FleetHost, FleetHost];

/** `planet <args>` in a master's bubble. */
const onMaster = (h: FleetHost, ...args: string[]): Ran => planet("exec", "--rootfs", fleet.rootfs(h), "--", "planet", ...args);

function members(h: FleetHost = m1): EtcdMember[] {
  const r = onMaster(h, "etcd", "member", "list", "--json");
  if (r.exitCode !== 0) throw new Error(`etcd member list on ${h.name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as EtcdMember[];
}
const voters = (h?: FleetHost) =>
  members(h)
    .filter((m) => !m.learner)
    .map((m) => m.name)
    .sort();

async function nodeNames(h: FleetHost = m1): Promise<string[]> {
  const nodes = await fleet.kube(h).get<{ items: { metadata: { name: string } }[] }>("/api/v1/nodes");
  return nodes.items.map((n) => n.metadata.name).sort();
}

/** The one-line refusal of a command, and that it failed. */
function refused(r: Ran, text: string | RegExp): void {
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toMatch(text);
}

describe.if(canBoot && process.env.PLANET_HA !== "0")("masters join and leave a running cluster", () => {
  let before: Record<string, unknown> = {};
  let token = "";
  let writer: ReturnType<Fleet["writer"]>;

  beforeAll(async () => {
    fleet.o.masterImage = join(buildTest("master", ["--target", "master"]), "rootfs");
    fleet.down();
    before = hostSnapshot();
    await fleet.prepare();
  }, 300_000);
  afterAll(async () => {
    await writer?.stop();
    if (process.env.PLANET_KEEP_LOGS) fleet.saveLogs(join(REPO, "build", "test-masters-logs"));
    fleet.down();
  });

  test("one master is born alone; a node's token cannot make a master, and nothing is written", async () => {
    const r = await planetAsync(
      startArgs(
        {
          rootfs: fleet.rootfs(m1),
          host: m1.host,
          cluster: "mstest",
          node: "m1",
          secrets: fleet.secrets(m1),
          data: fleet.dataDir(m1),
        },
        "--ready-timeout",
        "300",
      ),
    );
    expect(r.exitCode).toBe(0);
    expect(voters()).toEqual(["m1"]);
    writer = fleet.writer();
    await waitFor("writes flowing", () => writer.acked.length >= 10, 60_000, 200);
    const nodeToken = onMaster(m1, "token", "create", "--ttl", "10m");
    expect(nodeToken.exitCode).toBe(0);
    const asNode = await fleet.startJoin(m2, m1, nodeToken.stdout.trim());
    refused(asNode, /this token admits a node, not master/);
    expect(existsSync(fleet.joinedSecrets(m2))).toBe(false);
    expect(existsSync(fleet.dataDir(m2))).toBe(false);
    expect(voters()).toEqual(["m1"]);
    const t = onMaster(m1, "token", "create", "--role", "master", "--ttl", "30m", "--description", "masters test");
    expect(t.exitCode).toBe(0);
    token = t.stdout.trim();
  }, 420_000);

  test("two masters join with a master token: learners first, then voting; every apiserver serves", async () => {
    for (const m of [m2, m3]) {
      const r = await fleet.startJoin(m, m1, token);
      if (r.exitCode !== 0) fleet.saveLogs(join(REPO, "build", "test-masters-logs"));
      expect(r.stderr).toContain("joining the cluster through");
      expect(r.exitCode).toBe(0);
      // Its secrets: the CA keys every master holds, its own leaves, the masters it learned.
      const files = readdirSync(fleet.joinedSecrets(m));
      for (const f of ["root.key", "etcd-ca.key", "etcd.cert", "etcd.key", "apiserver.cert", "admin.kubeconfig"])
        expect(files).toContain(f);
      // `planet start` returns once the bubble booted: the learner was promoted on the way.
      expect(voters(m)).toContain(m.name);
    }
    expect(voters()).toEqual(["m1", "m2", "m3"]);
    const health = planet("exec", "--rootfs", fleet.rootfs(m3), "--", "etcdctl", "endpoint", "health", "--cluster");
    expect(health.stdout.match(/is healthy/g)).toHaveLength(3);
    for (const m of fleet.masters) await fleet.kube(m).waitReady(60);
    await fleet.ready();
    // A write through the newest master is read through the first.
    await fleet.kube(m3).create("/api/v1/namespaces/default/configmaps", { metadata: { name: "via-m3" }, data: {} });
    expect(
      (await fleet.kube(m1).get<{ metadata: { name: string } }>("/api/v1/namespaces/default/configmaps/via-m3")).metadata.name,
    ).toBe("via-m3");
  }, 900_000);

  test("faults on three masters under the writer: one's etcd killed with -9, one cut off from the others by dropped packets and healed", async () => {
    const health = () =>
      planet("exec", "--rootfs", fleet.rootfs(m1), "--", "etcdctl", "endpoint", "health", "--cluster").stdout.match(/is healthy/g)
        ?.length ?? 0;
    // etcd on m2 dies at once (SIGKILL): systemd starts it again, it catches up from the others.
    const pid = planet(
      "exec",
      "--rootfs",
      fleet.rootfs(m2),
      "--",
      "systemctl",
      "show",
      "-P",
      "MainPID",
      "etcd.service",
    ).stdout.trim();
    expect(
      planet("exec", "--rootfs", fleet.rootfs(m2), "--", "systemctl", "kill", "--signal=SIGKILL", "etcd.service").exitCode,
    ).toBe(0);
    await waitFor(
      "m2's etcd back",
      () =>
        planet("exec", "--rootfs", fleet.rootfs(m2), "--", "systemctl", "show", "-P", "MainPID", "etcd.service").stdout.trim() !==
          pid && health() === 3,
      60_000,
      1000,
    );
    // m3 cut off: every packet between it and the other masters dropped on its side of the bridge.
    const rules = [
      ["INPUT", "-s"],
      ["OUTPUT", "-d"],
    ].map(([chain, dir]) => [chain as string, dir as string, `${m1.ip.replace(/\.\d+$/, ".0")}/24`]);
    const ipt = (op: string) =>
      rules.map(([chain, dir, net]) =>
        sh(["ip", "netns", "exec", m3.host, "iptables", op, chain as string, dir as string, net as string, "-j", "DROP"]),
      );
    const count = writer.acked.length;
    try {
      for (const r of ipt("-I")) expect(r.exitCode).toBe(0);
      await waitFor("m3 seen down by the others", () => health() === 2, 60_000, 1000);
      await waitFor("writes while m3 is cut off", () => writer.acked.length >= count + 20, 60_000, 200);
    } finally {
      ipt("-D");
    }
    await waitFor("m3 back in the cluster", () => health() === 3, 90_000, 1000);
    // It caught up: the writes made while it was away are there through its own apiserver.
    const last = writer.acked.at(-1) as string;
    await waitFor(
      `${last} through m3`,
      () =>
        fleet
          .kube(m3)
          .get(`/api/v1/namespaces/default/configmaps/${last}`)
          .then(
            () => true,
            () => false,
          ),
      60_000,
      1000,
    );
  }, 600_000);

  test("shrink 3 → 1: a lost master removed from another, one leaves; quorum, the last master and oneself refused", async () => {
    // m3's disk dies: its bubble is gone.
    expect(fleet.stop(m3).exitCode).toBe(0);
    // Removing m2 now would leave m1 alone with m3 down: refused, nothing changed.
    refused(onMaster(m1, "remove", "m2"), /QUORUM_AT_RISK.*m3 .*does not answer/);
    refused(onMaster(m1, "remove", "m1"), /m1 is this host: run planet leave on it instead/);
    refused(onMaster(m1, "remove", "m9"), /NO_MEMBER.*no host m9 in this cluster/);
    expect(voters()).toEqual(["m1", "m2", "m3"]);
    // While an upgrade holds the cluster's lock nobody leaves or is removed.
    const agent = (...args: string[]) =>
      planet("exec", "--rootfs", fleet.rootfs(m1), "--", "curl", "-sf", "--unix-socket", "/var/lib/planet/agent.sock", ...args);
    expect(
      agent("-X", "POST", "-d", '{"owner":"masters-test","what":"a pretend upgrade"}', "http://agent/upgrade/lock").exitCode,
    ).toBe(0);
    refused(onMaster(m1, "remove", "m3"), /UPGRADE_LOCKED: .*a pretend upgrade holds the upgrade lock/);
    refused(onMaster(m2, "leave"), /UPGRADE_LOCKED/);
    expect(agent("-X", "DELETE", "http://agent/upgrade/lock?owner=masters-test").exitCode).toBe(0);
    expect(voters()).toEqual(["m1", "m2", "m3"]);
    const removed = onMaster(m1, "remove", "m3");
    expect(removed.exitCode).toBe(0);
    // Two members tolerate no more failures than one: said.
    expect(removed.stderr).toContain("an even count tolerates no more failures");
    expect(voters()).toEqual(["m1", "m2"]);
    expect(await nodeNames()).toEqual(["m1", "m2"]);
    // m2 leaves by itself: its etcd member and its Node go, through m1.
    const left = onMaster(m2, "leave");
    expect(left.stderr).toContain("m2 left the cluster");
    expect(left.exitCode).toBe(0);
    expect(voters()).toEqual(["m1"]);
    expect(await nodeNames()).toEqual(["m1"]);
    expect(fleet.stop(m2).exitCode).toBe(0);
    refused(onMaster(m1, "leave"), /LAST_MEMBER.*m1 is the cluster's last master/);
    expect(voters()).toEqual(["m1"]);
    await fleet.kube(m1).waitReady(60);
  }, 600_000);

  test("a fresh host replaces the lost master under its name; every acknowledged write is kept", async () => {
    // Its data and secrets are gone; a new token (the old one still works too, until it expires).
    rmSync(fleet.dataDir(m3), { recursive: true, force: true });
    rmSync(fleet.joinedSecrets(m3), { recursive: true, force: true });
    const r = await fleet.startJoin(m3, m1, token);
    if (r.exitCode !== 0) fleet.saveLogs(join(REPO, "build", "test-masters-logs"));
    expect(r.exitCode).toBe(0);
    expect(voters()).toEqual(["m1", "m3"]);
    await fleet.kube(m3).waitReady(60);
    const count = writer.acked.length;
    await waitFor("writes after the changes", () => writer.acked.length >= count + 20, 60_000, 200);
    await writer.stop();
    const cms = await fleet.kube(m3).get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces/default/configmaps");
    const have = new Set(cms.items.map((c) => c.metadata.name));
    expect(writer.acked.filter((n) => !have.has(n))).toEqual([]);
    expect(writer.acked.length).toBeGreaterThan(100);
  }, 600_000);

  test("every bubble stops and the host is as it was", () => {
    // m2 left and was stopped already.
    for (const h of [m1, m3]) expect(fleet.stop(h).exitCode).toBe(0);
    fleet.down();
    expect(hostSnapshot()).toEqual(before);
  }, 300_000);
});
