/**
 * Leader election against a real etcd (Debian's etcd-server on loopback, TLS with certificates from
 * `planet secrets init`), and the check runner against real probes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Agent, createAgent } from "../core/agent/agent.ts";
import { CheckRunner, hostChecks, manifestChecks } from "../core/agent/checks.ts";
import { devSecrets, freePort, REPO, waitFor } from "./helpers.ts";

const hasEtcd = Bun.which("etcd") !== null;
const work = mkdtempSync(join(tmpdir(), "planet-agent-"));
const secrets = join(work, "secrets");
const TERM = 2;

let etcd: ReturnType<typeof Bun.spawn> | undefined;
let endpoint = "";
afterAll(() => {
  etcd?.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

const agentOpts = (ip: string, ep = endpoint) => ({
  node: ip,
  ip,
  roles: ["master" as const],
  checks: [],
  secretsDir: secrets,
  leaderKey: "/planet/test/leader",
  termSeconds: TERM,
  etcd: {
    endpoints: [ep],
    ca: join(secrets, "etcd-ca.cert"),
    cert: join(secrets, "agent-etcd-client.cert"),
    key: join(secrets, "agent-etcd-client.key"),
    serverName: "etcd",
  },
  rpcAddrs: [],
  rpcPort: 0,
  members: [],
});

describe.if(hasEtcd)("leader election on a real etcd", () => {
  beforeAll(async () => {
    await devSecrets(secrets, { domain: "test.local", ips: ["127.0.0.1", "127.0.0.2", "127.0.0.3"], node: "n" });
    const [client, peer] = [await freePort(), await freePort()];
    endpoint = `https://127.0.0.1:${client}`;
    const tls = [
      `--cert-file=${secrets}/etcd.cert`,
      `--key-file=${secrets}/etcd.key`,
      `--trusted-ca-file=${secrets}/etcd-ca.cert`,
      "--client-cert-auth",
    ];
    etcd = Bun.spawn(
      ["etcd", "--name=t", `--data-dir=${work}/etcd`, `--listen-client-urls=${endpoint}`, `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-cluster=t=http://127.0.0.1:${peer}`, ...tls], // biome-ignore format: flags
      { stdout: "ignore", stderr: "ignore" },
    );
    await waitFor(
      "etcd",
      async () =>
        (
          await fetch(`${endpoint}/health`, {
            tls: {
              ca: Bun.file(`${secrets}/etcd-ca.cert`),
              cert: Bun.file(`${secrets}/etcd.cert`),
              key: Bun.file(`${secrets}/etcd.key`),
            },
          })
        ).ok,
      20_000,
    );
  }, 60_000);

  test("two agents: one leads; kill -9 it and the other takes over once its lease runs out", async () => {
    const first = Bun.spawn(
      [process.execPath, join(REPO, "test/fixtures/agent-proc.ts"), endpoint, secrets, "10.0.0.1", String(TERM)],
      {
        stdout: "pipe",
        stderr: "ignore",
      },
    );
    try {
      const reader = first.stdout.getReader();
      const line = await Promise.race([reader.read(), Bun.sleep(20_000).then(() => ({ value: undefined }))]);
      expect(new TextDecoder().decode(line.value)).toContain("elected");
      await using second = await createAgent(agentOpts("10.0.0.2"));
      await waitFor("second sees the leader", () => second.election?.leader, 15_000, 50);
      expect(second.election?.leader).toBe("10.0.0.1");
      expect(second.election?.isLeader).toBe(false);
      first.kill("SIGKILL");
      // Until the dead leader's lease runs out the other does not lead; then it takes over.
      expect(second.election?.isLeader).toBe(false);
      await waitFor("takeover", () => second.election?.isLeader, 4 * TERM * 1000, 50);
      expect(second.view.leader()).toMatchObject({ leader: "10.0.0.2", isLeader: true, etcd: "up" });
    } finally {
      first.kill("SIGKILL");
    }
  }, 60_000);

  test("leader pause makes a node step aside; resume lets it campaign again", async () => {
    await using a = await createAgent(agentOpts("10.0.0.3"));
    await waitFor("a leads", () => a.election?.isLeader, 15_000, 50);
    await using b = await createAgent(agentOpts("10.0.0.4"));
    await waitFor("b sees a", () => b.election?.leader === "10.0.0.3", 10_000, 50);
    await a.view.pause();
    await waitFor("b leads", () => b.election?.isLeader, 10_000, 50);
    expect(a.view.leader()).toMatchObject({ paused: true, isLeader: false });
    await waitFor("a sees b", () => a.election?.leader === "10.0.0.4", 10_000, 50);
    await a.view.resume();
    expect(a.view.leader().paused).toBe(false);
  }, 60_000);

  test("the cluster's upgrade lock: one owner at a time, taken again by its owner, released by it or by force", async () => {
    const opts = (ip: string) => ({ ...agentOpts(ip), leaderKey: "/planet/test-lock/master", campaign: false });
    await using a = await createAgent(opts("10.0.1.1"));
    await using b = await createAgent(opts("10.0.1.2"));
    const call = async (agent: typeof a, method: string, path: string, body?: unknown) => {
      const res = await agent.app.request(path, { method, ...(body ? { body: JSON.stringify(body) } : {}) });
      return {
        status: res.status,
        body: (await res.json()) as {
          lock?: { owner: string; node: string } | null;
          released?: unknown;
          error?: { code: string; message: string };
        },
      };
    };
    expect((await call(a, "GET", "/upgrade/lock")).body.lock).toBeNull();
    const took = await call(a, "POST", "/upgrade/lock", { owner: "up-1", what: "upgrade host a" });
    expect(took.body.lock).toMatchObject({ owner: "up-1", node: "10.0.1.1" });
    // Another owner, through another agent: refused, naming who holds it.
    const refused = await call(b, "POST", "/upgrade/lock", { owner: "up-2", what: "upgrade host b" });
    expect(refused.status).toBe(409);
    expect(refused.body.error?.code).toBe("UPGRADE_LOCKED");
    expect(refused.body.error?.message).toContain("upgrade host a (owner up-1, from node 10.0.1.1");
    // Its owner again (a resumed upgrade, or a roll's next host): granted, the lock as it was.
    expect((await call(b, "POST", "/upgrade/lock", { owner: "up-1", what: "again" })).body.lock).toMatchObject({
      what: "upgrade host a",
    });
    expect((await call(b, "DELETE", "/upgrade/lock?owner=up-2")).status).toBe(409);
    expect((await call(b, "DELETE", "/upgrade/lock?owner=up-1")).body.released).toMatchObject({ owner: "up-1" });
    expect((await call(a, "GET", "/upgrade/lock")).body.lock).toBeNull();
    expect((await call(a, "DELETE", "/upgrade/lock?owner=up-1")).body.released).toBeNull();
    await call(b, "POST", "/upgrade/lock", { owner: "up-2", what: "upgrade host b" });
    expect((await call(a, "DELETE", "/upgrade/lock?force=1")).body.released).toMatchObject({ owner: "up-2" });
    expect((await call(a, "POST", "/upgrade/lock", { what: "no owner" })).status).toBe(400);
  }, 60_000);

  test("mTLS API: members aggregated over mTLS, a client without a cert forbidden, clock drift to the leader flagged", async () => {
    const port = await freePort();
    const member = (ip: string, skewMs: number) => ({
      ...agentOpts(ip),
      leaderKey: "/planet/test/mtls-leader",
      rpcAddrs: [`${ip}:${port}`],
      rpcPort: port,
      members: [
        { name: "a", ip: "127.0.0.2" },
        { name: "b", ip: "127.0.0.3" },
      ],
      timing: { readyEveryMs: 200, healthEveryMs: 200 },
      now: () => Date.now() + skewMs,
    });
    await using a = await createAgent(member("127.0.0.2", 0));
    await waitFor("a leads", () => a.election?.isLeader, 15_000, 50);
    await using b = await createAgent(member("127.0.0.3", 5000));
    await waitFor("b sees a", () => b.election?.leader === "127.0.0.2", 10_000, 50);
    await waitFor("b's drift check failed", () => b.runner.status.get("host-time-drift")?.state === "failed", 10_000, 100);
    expect(b.runner.status.get("host-time-drift")?.results[0]?.error).toMatch(
      /clock differs from the leader 127\.0\.0\.2 by -(49\d\d|50\d\d) ms/,
    );
    expect(a.runner.status.get("host-time-drift")?.results[0]?.error).toBeUndefined(); // the leader is its own reference
    // /status on a gathers b's /health over mTLS.
    const st = (await (await a.app.request("/status")).json()) as {
      members: { ip: string; status: string; health?: { node: string } }[];
    };
    // a is healthy; b (its clock 5 s off) is degraded, and that arrives over mTLS from b's own API.
    expect(st.members.map((m) => [m.ip, m.status])).toEqual([
      ["127.0.0.2", "healthy"],
      ["127.0.0.3", "degraded"],
    ]);
    expect(st.members[1]?.health?.node).toBe("127.0.0.3");
    const ca = Bun.file(join(secrets, "root.cert"));
    // Without a client certificate only the join protocol answers: the health is forbidden.
    expect((await fetch(`https://127.0.0.2:${port}/health`, { tls: { ca } })).status).toBe(403);
    const withCert = await fetch(`https://127.0.0.2:${port}/health`, {
      tls: { ca, cert: Bun.file(join(secrets, "planet-rpc-client.cert")), key: Bun.file(join(secrets, "planet-rpc-client.key")) },
    });
    expect(withCert.status).toBe(200);
  }, 60_000);

  test("without etcd the agent keeps serving local checks and reports etcd down", async () => {
    const dead = `https://127.0.0.1:${await freePort()}`;
    let agent: Agent | undefined;
    try {
      agent = await createAgent({ ...agentOpts("10.0.0.5", dead), checks: [{ name: "always", plugin: "t", command: ["true"] }] });
      await waitFor("check ran", () => agent?.view.checks()[0]?.state === "ok", 5000, 50);
      await waitFor("etcd reported down", () => agent?.view.leader().error, 10_000, 100);
      expect(agent.view.leader()).toMatchObject({ leader: null, isLeader: false, etcd: "down" });
      expect((await agent.app.request("/health")).status).toBe(200);
    } finally {
      await agent?.close();
    }
  }, 30_000);
});

describe("check runner", () => {
  test("manifest checks: a malformed one is named and skipped; roles filter the rest", () => {
    const { checks, skipped } = manifestChecks(
      [
        { name: "ok-one", plugin: "p", tcp: "127.0.0.1:1", roles: ["master"] },
        { name: "node-only", plugin: "p", unit: "x.service", roles: ["node"] },
        { name: "two-kinds", plugin: "p", tcp: "127.0.0.1:1", unit: "x.service" },
        { name: "bad-url", plugin: "p", http: "ftp://x" },
        { plugin: "p", tcp: "127.0.0.1:1" },
      ],
      ["master"],
    );
    expect(checks.map((c) => c.name)).toEqual(["ok-one"]);
    expect(skipped).toEqual([
      { name: "two-kinds", reason: "needs exactly one of http, tcp, unit, command (has tcp,unit)" },
      { name: "bad-url", reason: "http must be an http(s) URL" },
      { name: "?", reason: "no name" },
    ]);
  });

  test("http, tcp, command probes; ready gate then health; last three results kept", async () => {
    using server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (r) =>
        new Response(new URL(r.url).pathname === "/ok" ? "all ok" : "bad", {
          status: new URL(r.url).pathname === "/ok" ? 200 : 500,
        }),
    });
    const base = `http://127.0.0.1:${server.port}`;
    const runner = new CheckRunner(
      [
        { name: "web", plugin: "p", http: `${base}/ok`, expect: "ok" },
        { name: "web-body", plugin: "p", http: `${base}/ok`, expect: "nope" },
        { name: "web-500", plugin: "p", http: `${base}/bad` },
        { name: "port", plugin: "p", tcp: `127.0.0.1:${server.port}` },
        { name: "closed", plugin: "p", tcp: "127.0.0.1:9", timeoutMs: 1000 },
        { name: "cmd", plugin: "q", command: ["sh", "-c", "exit 3"], severity: "warning" },
      ],
      { secretsDir: "/nonexistent" },
      { readyEveryMs: 20, healthEveryMs: 20 },
    );
    runner.start();
    await waitFor("three results each", () => [...runner.status.values()].every((s) => s.results.length === 3), 10_000, 20);
    runner.stop();
    const st = Object.fromEntries([...runner.status.values()].map((s) => [s.name, s]));
    expect(st.web?.state).toBe("ok");
    expect(st["web-body"]?.results[0]?.error).toContain('lacks "nope"');
    expect(st["web-500"]?.results[0]?.error).toContain("HTTP 500");
    expect(st.port?.state).toBe("ok");
    expect(st.closed?.state).toBe("failed");
    expect(st.cmd?.results[0]?.error).toContain("exited 3");
    expect(runner.summary()).toMatchObject({ status: "degraded", failed: ["web-body", "web-500", "closed"] });
  });

  test("host checks report a full volume and forwarding", async () => {
    const checks = hostChecks({ volumes: ["/"], diskWarn: 0, diskCritical: 2 });
    const runner = new CheckRunner(checks, { secretsDir: "/" });
    for (const c of checks) await runner.runOnce(c);
    expect(runner.status.get("host-disk-root-warning")?.state).toBe("failed");
    expect(runner.status.get("host-disk-root-critical")?.state).toBe("ok");
    const forwarding = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim() === "1";
    expect(runner.status.get("host-ip-forward")?.state).toBe(forwarding ? "ok" : "failed");
  });
});
