/**
 * The agent's mTLS API with real certificates from `planet secrets init` and `planet secrets host`:
 * each role gets what it may, and the credentials a node holds are refused the rest.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueHost } from "../../secrets/host.ts";
import { initSecrets } from "../../secrets/init.ts";
import { loopbackMaster } from "../../test/helpers.ts";
import { certRequests } from "../cli/commands/secrets.ts";
import type { Agent } from "./agent.ts";
import { allowed, roleOf } from "./roles.ts";

const work = mkdtempSync(join(tmpdir(), "planet-roles-"));
const cluster = join(work, "cluster");
const node = join(work, "n1");
const master = join(work, "m1");
const other = join(work, "other");
let agent: Agent;
let port = 0;

beforeAll(async () => {
  const opts = { domain: "cluster.local", serviceSubnet: "10.100.0.0/16", hosts: [], validityDays: 30 };
  await initSecrets(cluster, certRequests("dev").requests, { ...opts, ips: ["127.0.0.1"], nodeName: "m1" });
  await initSecrets(other, certRequests("dev").requests, { ...opts, ips: ["127.0.0.1"], nodeName: "x" });
  for (const [dir, name, role] of [
    [node, "n1", "node"],
    [master, "m1", "master"],
  ] as const)
    await issueHost(cluster, dir, certRequests("dev", [role]).requests, {
      nodeName: name,
      ips: ["127.0.0.1"],
      hosts: [],
      roles: [role],
      validityDays: 30,
    });
  ({ agent, port } = await loopbackMaster(master));
}, 60_000);

afterAll(async () => {
  await agent?.close();
  rmSync(work, { recursive: true, force: true });
});

/** The status of a call with `dir`'s certificate `cert`, or "refused" when TLS turns it away. */
async function call(dir: string, cert: string, method: string, path: string, ca = join(cluster, "root.cert")) {
  return fetch(`https://127.0.0.1:${port}${path}`, {
    method,
    tls: { ca: Bun.file(ca), cert: Bun.file(join(dir, `${cert}.cert`)), key: Bun.file(join(dir, `${cert}.key`)) },
    ...(method === "POST"
      ? { body: JSON.stringify({ owner: "x", what: "y" }), headers: { "content-type": "application/json" } }
      : {}),
    signal: AbortSignal.timeout(5000),
  })
    .then((r) => r.status)
    .catch(() => "refused" as const);
}

const MUTATING = [
  ["POST", "/leader/pause"],
  ["POST", "/leader/resume"],
  ["POST", "/upgrade/lock"],
  ["DELETE", "/upgrade/lock?force=1"],
] as const;

describe("the agent's API by role", () => {
  test("the role rides in O=planet:<role>; several roles give the least, none gives nothing", () => {
    expect(roleOf({ O: "planet:master" })).toBe("master");
    expect(roleOf({ O: ["planet:admin", "planet:node"] })).toBe("node");
    expect(roleOf({ O: "system:nodes" })).toBeNull();
    expect(roleOf(undefined)).toBeNull();
    expect(allowed("reader", "GET")).toBe(true);
    expect(allowed("node", "POST")).toBe(false);
    // A host renews its own certificates (node or master); a reader does not.
    expect(allowed("node", "POST", "/renew")).toBe(true);
    expect(allowed("reader", "POST", "/renew")).toBe(false);
    expect(allowed("node", "POST", "/leader/pause")).toBe(false);
    expect(allowed(null, "GET")).toBe(false);
  });

  test("a node's agent certificate reads, and every mutating endpoint refuses it", async () => {
    expect(await call(node, "planet-rpc-client", "GET", "/health")).toBe(200);
    expect(await call(node, "planet-rpc-client", "GET", "/leader")).toBe(200);
    for (const [method, path] of MUTATING) expect(await call(node, "planet-rpc-client", method, path)).toBe(403);
    expect(agent.view.leader().paused).toBe(false);
  });

  test("every other credential a node holds is refused, even reading", async () => {
    // Client certificates of the cluster CA without a planet role: the kubelet's, kube-proxy's, CoreDNS's, containerd's.
    for (const cert of ["kubelet", "kube-proxy", "registry-client", "coredns"]) {
      expect(await call(node, cert, "GET", "/health")).toBe(403);
      expect(await call(node, cert, "POST", "/leader/pause")).toBe(403);
    }
    // The agent's server certificate is not a client certificate at all.
    expect(await call(node, "planet-rpc-server", "GET", "/health")).toBe("refused");
    // A certificate of etcd's CA (a master's agent-etcd-client) is not from the cluster CA: TLS refuses it.
    expect(await call(master, "agent-etcd-client", "GET", "/health")).toBe("refused");
  });

  test("another cluster's agent certificate is refused by TLS; without a certificate only the join protocol answers", async () => {
    expect(await call(other, "planet-rpc-master", "POST", "/leader/pause")).toBe("refused");
    const bare = (path: string, method = "GET") =>
      fetch(`https://127.0.0.1:${port}${path}`, { method, tls: { ca: Bun.file(join(cluster, "root.cert")) } })
        .then((r) => r.status)
        .catch(() => "refused");
    for (const path of ["/health", "/leader", "/status", "/upgrade/lock"]) expect(await bare(path)).toBe(403);
    expect(await bare("/leader/pause", "POST")).toBe(403);
    // This agent serves no joins (no join option): the join protocol itself says so.
    expect(await bare("/join/ca")).toBe(404);
  });

  test("a master and the operator may steer: pause and resume the election", async () => {
    expect(await call(master, "planet-rpc-master", "POST", "/leader/pause")).toBe(200);
    expect(await call(cluster, "planet-rpc-admin", "POST", "/leader/resume")).toBe(200);
    // No etcd in this test: the lock answers 503 to whoever may ask, never 403.
    expect(await call(master, "planet-rpc-master", "POST", "/upgrade/lock")).toBe(503);
  });

  test("who holds which: a node has no master or admin certificate; only the cluster directory has admin's", async () => {
    const files = (dir: string) => new Bun.Glob("planet-rpc-*.cert").scanSync(dir);
    expect([...files(node)].sort()).toEqual(["planet-rpc-client.cert", "planet-rpc-server.cert"]);
    expect([...files(master)].sort()).toEqual(["planet-rpc-client.cert", "planet-rpc-master.cert", "planet-rpc-server.cert"]);
    expect([...files(cluster)].sort()).toContain("planet-rpc-admin.cert");
  });
});
