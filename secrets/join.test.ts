/**
 * Joining with a token, over the real agent API and TLS: the host's keys stay on the host, the
 * master's CA is checked against the token, and every bad input is one line with nothing written.
 * (The tokens' storage as bootstrap token Secrets is tested against a real apiserver in
 * test/cluster.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import forge from "node-forge";
import type { Agent } from "../core/agent/agent.ts";
import { certRequests } from "../core/cli/commands/secrets.ts";
import type { PlanetError } from "../core/errors.ts";
import type { Kube } from "../core/kube/client.ts";
import { issuedTo } from "../core/plugin.ts";
import { plugins } from "../plugins/index.ts";
import { loopbackMaster } from "../test/helpers.ts";
import { issueHost } from "./host.ts";
import { initSecrets } from "./init.ts";
import { answerJoin, type JoinRequest, joinCluster } from "./join.ts";
import { csrPem, generateKey, issue, parseCert, parseKey, pemsOf, sansOf, signedBy, subjectText } from "./pki.ts";
import { filesOf } from "./record.ts";
import { answerRenew, type RenewRequest, renewThroughMasters, trustFiles } from "./renew.ts";
import { rotateCA } from "./rotate-ca.ts";
import { caHash, checkToken, formatToken, type JoinToken, parseToken, parseTtl } from "./token.ts";

const work = mkdtempSync(join(tmpdir(), "planet-join-"));
const cluster = join(work, "cluster");
const master = join(work, "m1");
const other = join(work, "other");
const SECRET = "0123456789abcdef";
let agent: Agent;
let port = 0;
let token: JoinToken;

const nodeRequests = () => certRequests("node", ["node"]).requests.filter((c) => issuedTo(c, ["node"]));
const masterRequests = () => certRequests("master", ["master"]).requests;

beforeAll(async () => {
  const opts = { domain: "cluster.local", serviceSubnet: "10.100.0.0/16", hosts: [], validityDays: 30 };
  await initSecrets(cluster, certRequests("dev").requests, { ...opts, ips: ["127.0.0.1"], nodeName: "m1" });
  await initSecrets(other, certRequests("dev").requests, { ...opts, ips: ["127.0.0.1"], nodeName: "x" });
  await issueHost(cluster, master, certRequests("master", ["master"]).requests, {
    nodeName: "m1",
    ips: ["127.0.0.1"],
    hosts: [],
    roles: ["master"],
    validityDays: 30,
  });
  token = { caHash: caHash(readFileSync(join(cluster, "root.cert"), "utf8")), id: "abc123", secret: SECRET };
  ({ agent, port } = await loopbackMaster(master, {
    renew: async (body) => answerRenew(master, nodeRequests(), body as RenewRequest).certs,
    trust: () => trustFiles(master),
    join: {
      ca: () => readFileSync(join(master, "root.cert"), "utf8"),
      // The apiserver's part (the bootstrap token Secret) stands in as one known token here.
      answer: async (body, peer) => {
        const b = body as JoinRequest;
        // abc124 admits a master (what `planet token create --role master` makes); the agent adds
        // the masters etcd has, the joining one last.
        if (b.token === `abc124.${SECRET}`)
          return {
            ...(await answerJoin(master, masterRequests(), b, "master", peer)),
            masters: ["m1:127.0.0.2", `${b.nodeName}:${b.ip}`],
          };
        if (b.token !== `abc123.${SECRET}`) {
          const { PlanetError } = await import("../core/errors.ts");
          throw new PlanetError("JOIN_REFUSED", "token abc123: wrong secret");
        }
        return answerJoin(master, nodeRequests(), b, "node", peer);
      },
    },
  }));
}, 60_000);

afterAll(async () => {
  await agent?.close();
  rmSync(work, { recursive: true, force: true });
});

const joinAs = (dir: string, extra: Partial<Parameters<typeof joinCluster>[0]> = {}) =>
  joinCluster({
    master: "127.0.0.1",
    port,
    token,
    dir,
    nodeName: "n9",
    ip: "127.0.0.1",
    roles: ["node"],
    requests: nodeRequests(),
    timeoutMs: 5000,
    ...extra,
  });
const codeOf = (p: Promise<unknown>) => p.then(() => "ok").catch((e: PlanetError) => `${e.code}: ${e.message}`);

describe("join tokens", () => {
  test("a token carries the CA hash, an id and a secret; anything else is one line", () => {
    const text = formatToken(token);
    expect(parseToken(text)).toEqual(token);
    expect(parseToken(` ${text}\n`)).toEqual(token);
    for (const bad of ["", "abc123.0123456789abcdef", `P1${"0".repeat(63)}::abc123.${SECRET}`, `${text}x`, "P1::."])
      expect(() => parseToken(bad)).toThrow("is not a planet join token");
    expect(parseTtl("30m")).toBe(1_800_000);
    expect(() => parseTtl("1y")).toThrow("--ttl 1y");
    expect(() => parseTtl("0h")).toThrow();
  });
});

describe("a token checked against its bootstrap token Secret", () => {
  const secretOf = (data: Record<string, string>, labels: Record<string, string> = { "planet.local/join-role": "node" }) => ({
    type: "bootstrap.kubernetes.io/token",
    metadata: { name: "bootstrap-token-abc123", labels },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  });
  /** The apiserver's answer for the one Secret, or a 404. */
  const kubeWith = (secret: unknown) =>
    ({
      get: async () => {
        if (!secret) throw Object.assign(new Error("not found"), { status: 404 });
        return secret;
      },
    }) as unknown as Kube;
  const future = new Date(Date.now() + 600_000).toISOString();
  const t = { caHash: "", id: "abc123", secret: SECRET };
  const why = (secret: unknown) => codeOf(checkToken(kubeWith(secret), t));

  test("the role of a token that exists, matches and has not expired; anything else refused with its reason", async () => {
    expect(await checkToken(kubeWith(secretOf({ "token-secret": SECRET, expiration: future })), t)).toBe("node");
    expect(await why(null)).toContain("unknown or revoked");
    expect(await why(secretOf({ "token-secret": "ffffffffffffffff", expiration: future }))).toContain("wrong secret");
    expect(await why(secretOf({ "token-secret": SECRET, expiration: new Date(Date.now() - 1000).toISOString() }))).toContain(
      "expired at",
    );
    expect(await why(secretOf({ "token-secret": SECRET }))).toContain("expired");
    expect(await why(secretOf({ "token-secret": SECRET, expiration: future }, {}))).toContain("names no role");
  });
});

describe("a host joins through a master's agent", () => {
  test("its keys are made here, its certificates issued by the masters' signer for its name and address only", async () => {
    const dir = join(work, "n9");
    expect(await codeOf(joinAs(dir))).toBe("ok");
    const files = readdirSync(dir).sort();
    // Every file a node's plugins need is there: what planet start's preflight checks.
    for (const r of nodeRequests()) for (const f of filesOf(r, ["node"])) expect(files).toContain(f);
    for (const f of ["root.key", "csr-signer.key", "etcd-ca.key", "sa.key", "encryption.key", "agent-etcd-client.cert"])
      expect(files).not.toContain(f);
    const signer = parseCert(readFileSync(join(cluster, "csr-signer.cert"), "utf8"));
    const kubelet = parseCert(readFileSync(join(dir, "kubelet.cert"), "utf8"));
    expect(subjectText(kubelet)).toBe("CN=system:node:n9,O=system:nodes");
    expect(signedBy(kubelet, signer)).toBe(true);
    expect(sansOf(parseCert(readFileSync(join(dir, "kubelet-server.cert"), "utf8")))).toEqual(
      expect.arrayContaining(["n9", "127.0.0.1"]),
    );
    expect(subjectText(parseCert(readFileSync(join(dir, "planet-rpc-client.cert"), "utf8")))).toBe(
      "CN=planet-agent:n9,O=planet:node",
    );
    // The trust bundle holds both CAs; the shared gossip key came along.
    expect(readFileSync(join(dir, "client-ca.pem"), "utf8")).toBe(readFileSync(join(cluster, "client-ca.pem"), "utf8"));
    expect(readFileSync(join(dir, "serf.key"), "utf8")).toBe(readFileSync(join(cluster, "serf.key"), "utf8"));
    const record = JSON.parse(readFileSync(join(dir, "planet-secrets.json"), "utf8"));
    expect(record.host).toEqual({ roles: ["node"], cluster: token.caHash });
    expect(record.nodeName).toBe("n9");
    // Its new certificate opens the master's agent as a node: reads, no more.
    const as = (path: string, method = "GET") =>
      fetch(`https://127.0.0.1:${port}${path}`, {
        method,
        tls: {
          ca: Bun.file(join(dir, "client-ca.pem")),
          cert: Bun.file(join(dir, "planet-rpc-client.cert")),
          key: Bun.file(join(dir, "planet-rpc-client.key")),
        },
      }).then((r) => r.status);
    expect(await as("/health")).toBe(200);
    expect(await as("/leader/pause", "POST")).toBe(403);
  });

  test("a master joins with a master token: the CA keys every master holds come over, its own certificates are made here", async () => {
    const dir = join(work, "m9");
    const asMaster = {
      nodeName: "m9",
      roles: ["master" as const],
      requests: masterRequests(),
      token: { ...token, id: "abc124" },
    };
    // A master token asked for a node is refused as a node token asked for a master is.
    expect(await codeOf(joinAs(join(work, "m9-as-node"), { ...asMaster, roles: ["node"], requests: nodeRequests() }))).toContain(
      "this token admits a master, not node",
    );
    expect(existsSync(join(work, "m9-as-node"))).toBe(false);
    expect(await codeOf(joinAs(dir, asMaster))).toBe("ok");
    const files = readdirSync(dir).sort();
    for (const r of masterRequests()) for (const f of filesOf(r, ["master"])) expect(files).toContain(f);
    // The same CAs as the cluster's (keys included), the shared secrets the same.
    for (const f of ["root.cert", "root.key", "etcd-ca.key", "csr-signer.key", "front-proxy-ca.key", "sa.key", "serf.key"])
      expect(readFileSync(join(dir, f), "utf8")).toBe(readFileSync(join(master, f), "utf8"));
    // Its leaves are its own: issued for m9, signed by the CAs, keys that the master never had.
    const etcd = parseCert(readFileSync(join(dir, "etcd.cert"), "utf8"));
    expect(signedBy(etcd, parseCert(readFileSync(join(cluster, "etcd-ca.cert"), "utf8")))).toBe(true);
    expect(sansOf(etcd)).toContain("127.0.0.1");
    expect(subjectText(parseCert(readFileSync(join(dir, "planet-rpc-master.cert"), "utf8")))).toBe(
      "CN=planet-agent:m9,O=planet:master",
    );
    for (const f of files.filter(
      (f) => f.endsWith(".key") && !f.match(/^(root|etcd-ca|csr-signer|front-proxy-ca|sa|serf|encryption)\./),
    ))
      expect(readFileSync(join(dir, f), "utf8")).not.toBe(readFileSync(join(master, f), "utf8"));
    const record = JSON.parse(readFileSync(join(dir, "planet-secrets.json"), "utf8"));
    expect(record.host).toEqual({ roles: ["master"], cluster: token.caHash, masters: ["m1:127.0.0.2", "m9:127.0.0.1"] });
    // The cluster's files passed through a private folder beside it, gone now.
    expect(readdirSync(work).filter((f) => f.includes(".join-"))).toEqual([]);
  });

  test("a master of another cluster is found out by the token's CA hash before anything is sent", async () => {
    const dir = join(work, "wrong-ca");
    const forged = { ...token, caHash: caHash(readFileSync(join(other, "root.cert"), "utf8")) };
    expect(await codeOf(joinAs(dir, { token: forged }))).toStartWith("MASTER_CA_MISMATCH: the master at 127.0.0.1 presents CA");
    expect(existsSync(dir)).toBe(false);
  });

  test("a wrong secret, a node token asked for a master, a bad name: refused by the master, nothing written", async () => {
    const dir = join(work, "refused");
    expect(await codeOf(joinAs(dir, { token: { ...token, secret: "ffffffffffffffff" } }))).toContain("JOIN_REFUSED");
    expect(await codeOf(joinAs(dir, { roles: ["master"] }))).toContain("this token admits a node, not master");
    expect(await codeOf(joinAs(dir, { nodeName: "n9;reboot" }))).toContain("not a DNS label");
    // Certificates for another host's address: the join comes from 127.0.0.1.
    expect(await codeOf(joinAs(dir, { ip: "10.9.9.1" }))).toContain(
      "this host connects from 127.0.0.1, not its --public-ip 10.9.9.1",
    );
    expect(existsSync(dir)).toBe(false);
  });

  test("nobody answering is one line", async () => {
    const dir = join(work, "silent");
    expect(await codeOf(joinAs(dir, { master: "127.0.0.9" }))).toStartWith("MASTER_UNREACHABLE");
    expect(existsSync(dir)).toBe(false);
  });

  test("the master signs only a request signed by its own key, whatever name the request carries", async () => {
    const key = (await generateKey()).privateKey;
    const good = csrPem("system:node:m1", key);
    // A request carrying key's public half but signed by another key: no proof of possession.
    const csr = forge.pki.createCertificationRequest();
    csr.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
    csr.setSubject([{ shortName: "CN", value: "n8" }]);
    csr.sign((await generateKey()).privateKey, forge.md.sha256.create());
    const forged = forge.pki.certificationRequestToPem(csr);
    const csrs = Object.fromEntries(
      nodeRequests()
        .filter((r) => "cn" in r && !r.usage.includes("ca"))
        .map((r) => [r.name, good]),
    );
    const body: JoinRequest = { token: "x", nodeName: "n8", ip: "10.9.9.8", roles: ["node"], csrs };
    // The request claims CN system:node:m1; the certificate is for n8, as the join says.
    const answer = await answerJoin(master, nodeRequests(), body, "node", body.ip);
    expect(subjectText(parseCert(answer.files["kubelet.cert"] as string))).toBe("CN=system:node:n8,O=system:nodes");
    await expect(
      answerJoin(master, nodeRequests(), { ...body, csrs: { ...csrs, kubelet: forged } }, "node", body.ip),
    ).rejects.toThrow("no valid signing request for kubelet");
  });
});

describe("a host renews its certificates through a master, with no CA key", () => {
  const dir = join(work, "n9");
  const cert = (d: string, name: string) => parseCert(readFileSync(join(d, `${name}.cert`), "utf8"));

  test("every due certificate comes back for the same names and key, from the masters' signer, with its kubeconfig", async () => {
    const before = cert(dir, "kubelet");
    const beforeKubeconfig = readFileSync(join(dir, "kubelet.kubeconfig"), "utf8");
    // Everything issued for 365 days is due within 400.
    const renewed = await renewThroughMasters({ dir, masters: ["127.0.0.9", "127.0.0.1"], port, warnDays: 400, timeoutMs: 5000 });
    expect(renewed).toEqual(expect.arrayContaining(["kubelet", "kubelet-server", "kube-proxy", "coredns", "planet-rpc-client"]));
    const after = cert(dir, "kubelet");
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(subjectText(after)).toBe(subjectText(before));
    expect(sansOf(cert(dir, "kubelet-server"))).toEqual(expect.arrayContaining(["n9", "127.0.0.1"]));
    expect(after.validity.notAfter.getTime()).toBeGreaterThanOrEqual(before.validity.notAfter.getTime());
    expect(signedBy(after, parseCert(readFileSync(join(cluster, "csr-signer.cert"), "utf8")))).toBe(true);
    const key = parseKey(readFileSync(join(dir, "kubelet.key"), "utf8"));
    expect((after.publicKey as forge.pki.rsa.PublicKey).n.equals(key.n)).toBe(true);
    expect(readFileSync(join(dir, "kubelet.kubeconfig"), "utf8")).not.toBe(beforeKubeconfig);
    // Nothing is due now: a second run asks nothing.
    expect(await renewThroughMasters({ dir, masters: ["127.0.0.1"], port, warnDays: 30 })).toEqual([]);
  });

  test("another host's certificate, another cluster's, an expired one or a CA: refused, with the exact reason", async () => {
    const mine = parseKey(readFileSync(join(dir, "kubelet.key"), "utf8"));
    const n1 = join(work, "n1-renew");
    await issueHost(cluster, n1, nodeRequests(), {
      nodeName: "n1",
      ips: ["10.9.9.1"],
      hosts: [],
      roles: ["node"],
      validityDays: 30,
    });
    const body = (certPem: string, key = mine, name = "kubelet"): RenewRequest => ({
      certs: { [name]: certPem },
      csrs: { [name]: csrPem(name, key) },
    });
    const reason = (b: RenewRequest) => codeOf(Promise.resolve().then(() => answerRenew(master, nodeRequests(), b)));
    // n1's kubelet certificate with a request signed by this host's key: a certificate for another node's name.
    expect(await reason(body(readFileSync(join(n1, "kubelet.cert"), "utf8")))).toContain(
      "not signed with the certificate's own key",
    );
    expect(
      await reason(
        body(readFileSync(join(other, "kubelet.cert"), "utf8"), parseKey(readFileSync(join(other, "kubelet.key"), "utf8"))),
      ),
    ).toContain("was not issued by this cluster");
    const root = {
      cert: parseCert(readFileSync(join(cluster, "root.cert"), "utf8")),
      key: parseKey(readFileSync(join(cluster, "root.key"), "utf8")),
    };
    const old = await issue(
      { name: "kubelet", cn: "system:node:n9", org: ["system:nodes"], sans: [], usage: ["client"] },
      root,
      -1,
      mine,
    );
    const { certPem } = await import("./pki.ts");
    expect(await reason(body(certPem(old.cert)))).toContain("expired");
    expect(await reason(body(readFileSync(join(cluster, "root.cert"), "utf8"), mine, "root"))).toContain(
      "not a certificate a host renews",
    );
    // A kubelet certificate whose name is not a node's (the admin's, under the kubelet's name).
    const admin = readFileSync(join(cluster, "admin.cert"), "utf8");
    expect(await reason(body(admin, parseKey(readFileSync(join(cluster, "admin.key"), "utf8"))))).toContain("names admin");
    // A certificate named like the kubelet's but with another usage (a server certificate): not renewed as a client one.
    const server = await issue(
      { name: "kubelet", cn: "system:node:n9", org: ["system:nodes"], sans: [], usage: ["server"] },
      root,
      30,
      mine,
    );
    expect(await reason(body(certPem(server.cert)))).toContain("organisations or usages");
    // Two nodes' certificates in one renewal.
    const n1Key = parseKey(readFileSync(join(n1, "coredns.key"), "utf8"));
    const mixed: RenewRequest = {
      certs: {
        kubelet: readFileSync(join(dir, "kubelet.cert"), "utf8"),
        coredns: readFileSync(join(n1, "coredns.cert"), "utf8"),
      },
      csrs: { kubelet: csrPem("kubelet", mine), coredns: csrPem("coredns", n1Key) },
    };
    expect(await reason(mixed)).toContain("one renewal is one node's");
    // A master's or an operator's certificate is never renewed this way.
    expect(await reason(body(admin, parseKey(readFileSync(join(cluster, "admin.key"), "utf8")), "admin"))).toContain(
      "not a certificate a host renews",
    );
  });

  test("on the agent's port a renewal needs a host's certificate: without one it is forbidden", async () => {
    const post = (tls: Record<string, unknown>) =>
      fetch(`https://127.0.0.1:${port}/renew`, {
        method: "POST",
        body: "{}",
        tls: { ca: Bun.file(join(cluster, "root.cert")), ...tls },
      })
        .then((r) => r.json())
        .then((j) => (j as { error?: { code: string } }).error?.code);
    expect(await post({})).toBe("FORBIDDEN");
    // Nor is the trust handed out without one (public certificates, but only to the cluster's hosts).
    const trust = await fetch(`https://127.0.0.1:${port}/trust`, { tls: { ca: Bun.file(join(cluster, "root.cert")) } });
    expect([trust.status, ((await trust.json()) as { error?: { code: string } }).error?.code]).toEqual([403, "FORBIDDEN"]);
    // A node's certificate reaches the renewal itself (which finds nothing to renew in an empty body).
    expect(
      await post({ cert: Bun.file(join(dir, "planet-rpc-client.cert")), key: Bun.file(join(dir, "planet-rpc-client.key")) }),
    ).toBe("RENEW_REFUSED");
  });

  test("a cluster CA rotation reaches a host that joined with a token through the masters: both CAs, then the new alone", async () => {
    const every = plugins.flatMap((p) => p.certs ?? []);
    const issueMaster = () =>
      issueHost(cluster, master, certRequests("master", ["master"]).requests, {
        nodeName: "m1",
        ips: ["127.0.0.1"],
        hosts: [],
        roles: ["master"],
        validityDays: 30,
      });
    const cns = (file: string) =>
      pemsOf(readFileSync(join(dir, file), "utf8")).map((p) => parseCert(p).subject.getField("CN").value);
    const kubeconfigCas = () => {
      const data = /certificate-authority-data: (\S+)/.exec(readFileSync(join(dir, "kubelet.kubeconfig"), "utf8"))?.[1] ?? "";
      return pemsOf(Buffer.from(data, "base64").toString("utf8")).length;
    };
    const sync = () => renewThroughMasters({ dir, masters: ["127.0.0.1"], port, warnDays: 30 });
    await rotateCA(cluster, "root", "prepare", every);
    await issueMaster();
    expect(await sync()).toEqual(["root.cert", "client-ca.pem"]);
    expect(cns("root.cert")).toEqual(["planet-ca", "planet-ca-2"]);
    expect(cns("client-ca.pem")).toEqual(["planet-ca", "planet-ca-2", "planet-csr-signer"]);
    expect(kubeconfigCas()).toBe(2);
    // Its leaves are the signer's, which this rotation leaves as it is: none is due.
    await rotateCA(cluster, "root", "rotate", every);
    await issueMaster();
    expect(await sync()).toEqual(["root.cert", "client-ca.pem"]);
    expect(cns("root.cert")).toEqual(["planet-ca-2", "planet-ca"]);
    await rotateCA(cluster, "root", "finish", every);
    await issueMaster();
    expect(await sync()).toEqual(["root.cert", "client-ca.pem"]);
    expect(cns("root.cert")).toEqual(["planet-ca-2"]);
    expect(kubeconfigCas()).toBe(1);
    // This agent was not restarted since the rotate stage: it still presents the old CA's certificate,
    // which the host trusts no more (a real master's renew timer restarts its agent on the new one).
    await expect(sync()).rejects.toThrow("no master answered /trust");
  });
});
