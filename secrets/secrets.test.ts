import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { certRequests } from "../core/cli/commands/secrets.ts";
import { type ErrorCode, PlanetError } from "../core/errors.ts";
import { checkSecrets, renewSecrets } from "./check.ts";
import { issueHost } from "./host.ts";
import { initSecrets } from "./init.ts";
import { loadRecord, type SecretsOptions } from "./record.ts";

const root = mkdtempSync(join(tmpdir(), "planet-secrets-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const OPTS: SecretsOptions = {
  domain: "planet.example",
  serviceSubnet: "10.100.0.0/16",
  ips: ["10.211.0.1"],
  hosts: ["node-a.example"],
  nodeName: "node-a",
  validityDays: 365,
};
const { requests } = certRequests("dev");
const dir = join(root, "dev");

function openssl(...args: string[]): string {
  const res = Bun.spawnSync(["openssl", ...args]);
  if (res.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${res.stderr.toString()}`);
  return res.stdout.toString();
}

function snapshot(d: string): Record<string, string> {
  return Object.fromEntries(readdirSync(d).map((f) => [f, readFileSync(join(d, f), "utf8")]));
}

beforeAll(async () => {
  await initSecrets(dir, requests, OPTS);
});

// Expected subject, SANs and extended key usage of every certificate of the dev target.
const TABLE: { name: string; subject: string; eku: string[]; sans?: string[]; ca?: string }[] = [
  { name: "root", subject: "CN=planet-ca, O=planet", eku: [] },
  {
    name: "apiserver",
    subject: "CN=kube-apiserver",
    eku: ["TLS Web Server Authentication"],
    sans: [
      "DNS:kubernetes",
      "DNS:kubernetes.default",
      "DNS:kubernetes.default.svc",
      "DNS:kubernetes.default.svc.cluster.local",
      "DNS:planet-master",
      "DNS:localhost",
      "IP Address:127.0.0.1",
      "IP Address:10.100.0.1",
      "DNS:planet.example",
      "IP Address:10.211.0.1",
      "DNS:node-a.example",
    ],
  },
  {
    name: "apiserver-kubelet-client",
    subject: "CN=kube-apiserver-kubelet-client, O=system:masters",
    eku: ["TLS Web Client Authentication"],
  },
  {
    name: "apiserver-etcd-client",
    subject: "CN=kube-apiserver-etcd-client",
    eku: ["TLS Web Client Authentication"],
    ca: "etcd-ca",
  },
  { name: "etcd-ca", subject: "CN=planet-etcd-ca, O=planet", eku: [] },
  { name: "csr-signer", subject: "CN=planet-csr-signer", eku: [] },
  { name: "etcd-root", subject: "CN=root", eku: ["TLS Web Client Authentication"], ca: "etcd-ca" },
  { name: "agent-etcd-client", subject: "CN=planet-agent", eku: ["TLS Web Client Authentication"], ca: "etcd-ca" },
  {
    name: "etcd",
    ca: "etcd-ca",
    subject: "CN=etcd",
    eku: ["TLS Web Server Authentication", "TLS Web Client Authentication"],
    sans: ["DNS:localhost", "DNS:etcd", "IP Address:127.0.0.1", "IP Address:10.211.0.1", "DNS:node-a.example"],
  },
  { name: "kubelet", subject: "CN=system:node:node-a, O=system:nodes", eku: ["TLS Web Client Authentication"] },
  {
    name: "kubelet-server",
    ca: "csr-signer",
    subject: "CN=node-a",
    eku: ["TLS Web Server Authentication"],
    sans: ["DNS:node-a", "DNS:localhost"],
  },
  {
    name: "scheduler",
    subject: "CN=system:kube-scheduler",
    eku: ["TLS Web Server Authentication", "TLS Web Client Authentication"],
    sans: ["DNS:localhost", "IP Address:127.0.0.1"],
  },
  {
    name: "controller-manager",
    subject: "CN=system:kube-controller-manager",
    eku: ["TLS Web Server Authentication", "TLS Web Client Authentication"],
    sans: ["DNS:localhost", "IP Address:127.0.0.1"],
  },
  { name: "kube-proxy", subject: "CN=system:kube-proxy", eku: ["TLS Web Client Authentication"] },
  { name: "admin", subject: "CN=admin, O=system:masters", eku: ["TLS Web Client Authentication"] },
  { name: "front-proxy-ca", subject: "CN=front-proxy-ca", eku: [] },
  { name: "front-proxy-client", subject: "CN=front-proxy-client", eku: ["TLS Web Client Authentication"], ca: "front-proxy-ca" },
  {
    name: "planet-rpc-server",
    subject: "CN=planet-agent",
    eku: ["TLS Web Server Authentication"],
    sans: ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:10.211.0.1"],
  },
  { name: "planet-rpc-client", subject: "CN=planet-agent:node-a, O=planet:node", eku: ["TLS Web Client Authentication"] },
  { name: "planet-rpc-master", subject: "CN=planet-agent:node-a, O=planet:master", eku: ["TLS Web Client Authentication"] },
  { name: "planet-rpc-admin", subject: "CN=planet-admin, O=planet:admin", eku: ["TLS Web Client Authentication"] },
  { name: "coredns", subject: "CN=planet:coredns:node-a, O=planet:coredns", eku: ["TLS Web Client Authentication"] },
  { name: "dns-endpoints", subject: "CN=planet:dns-endpoints", eku: ["TLS Web Client Authentication"] },
  {
    name: "registry",
    subject: "CN=planet-registry",
    eku: ["TLS Web Server Authentication"],
    sans: ["DNS:localhost", "DNS:registry.local", "IP Address:127.0.0.1", "IP Address:10.211.0.1"],
  },
];

describe("secrets init", () => {
  test.each(TABLE)("$name: chains to its CA, subject, SANs and usages", (row) => {
    const cert = join(dir, `${row.name}.cert`);
    expect(openssl("verify", "-CAfile", join(dir, `${row.ca ?? (row.eku.length ? "root" : row.name)}.cert`), cert)).toContain(
      ": OK",
    );
    const text = openssl("x509", "-in", cert, "-noout", "-text", "-nameopt", "sep_comma_plus_space");
    expect(openssl("x509", "-in", cert, "-noout", "-subject", "-nameopt", "sep_comma_plus_space").trim()).toBe(
      `subject=${row.subject}`,
    );
    const eku = /Extended Key Usage: *\n\s*(.+)/.exec(text)?.[1]?.split(", ") ?? [];
    expect(eku).toEqual(row.eku);
    if (row.eku.length === 0) expect(text).toContain("CA:TRUE");
    else expect(text).toContain("CA:FALSE");
    const sans = /Subject Alternative Name: *\n\s*(.+)/.exec(text)?.[1]?.split(", ") ?? [];
    for (const s of row.sans ?? []) expect(sans).toContain(s);
    expect(text).toContain("sha256WithRSAEncryption");
    expect(text).toContain("Public-Key: (2048 bit)");
    const mod = (f: string, kind: "x509" | "rsa") => openssl(kind, "-in", join(dir, f), "-noout", "-modulus");
    expect(mod(`${row.name}.key`, "rsa")).toBe(mod(`${row.name}.cert`, "x509"));
  });

  test("files: dir 0700, keys 0600, service-account pair, kubeconfigs embed certs", () => {
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".key"))) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "sa.pub"), "utf8")).toContain("BEGIN PUBLIC KEY");
    const kc = readFileSync(join(dir, "admin.kubeconfig"), "utf8");
    expect(kc).toContain("server: https://10.211.0.1:6443");
    expect(kc).toContain(`client-certificate-data: ${Buffer.from(readFileSync(join(dir, "admin.cert"))).toString("base64")}`);
    expect(readFileSync(join(dir, "kubelet.kubeconfig"), "utf8")).toContain("server: https://planet-master:6443");
    // The serf gossip key: 32 random bytes, base64.
    expect(Buffer.from(readFileSync(join(dir, "serf.key"), "utf8").trim(), "base64")).toHaveLength(32);
  });

  test("a re-run keeps everything byte-identical; a deleted cert is restored alone", async () => {
    const before = snapshot(dir);
    const again = await initSecrets(dir, requests, OPTS);
    expect(again.issued).toEqual([]);
    expect(snapshot(dir)).toEqual(before);
    rmSync(join(dir, "scheduler.cert"));
    const third = await initSecrets(dir, requests, OPTS);
    expect(third.issued).toEqual(["scheduler"]);
    const after = snapshot(dir);
    for (const f of Object.keys(before).filter((f) => !f.startsWith("scheduler.") && f !== "planet-secrets.json"))
      expect(after[f]).toBe(before[f]);
    expect(after["scheduler.cert"]).not.toBe(before["scheduler.cert"]);
    expect(openssl("verify", "-CAfile", join(dir, "root.cert"), join(dir, "scheduler.cert"))).toContain("OK");
  });

  test("--force reissues leaves but never the CA", async () => {
    const d = join(root, "force");
    await initSecrets(d, requests, OPTS);
    const before = snapshot(d);
    const res = await initSecrets(d, requests, { ...OPTS, force: true });
    expect(res.issued).toContain("apiserver");
    expect(res.kept).toContain("root");
    const after = snapshot(d);
    expect(after["root.cert"]).toBe(before["root.cert"]);
    expect(after["root.key"]).toBe(before["root.key"]);
    expect(after["apiserver.cert"]).not.toBe(before["apiserver.cert"]);
  });
});

describe("secrets check and renew", () => {
  test("check flags a 1-day certificate with --warn-days 30; renew fixes it with the same key", async () => {
    const d = join(root, "short");
    await initSecrets(d, requests, { ...OPTS, validityDays: 1 });
    const rows = checkSecrets(d, 30);
    expect(rows.find((r) => r.name === "apiserver")?.status).toBe("expiring");
    expect(rows.find((r) => r.name === "root")?.status).toBe("ok");
    const key = readFileSync(join(d, "apiserver.key"), "utf8");
    const renewed = await renewSecrets(d, 30);
    expect(renewed).toContain("apiserver");
    expect(readFileSync(join(d, "apiserver.key"), "utf8")).toBe(key);
    expect(checkSecrets(d, 30).every((r) => r.status === "ok")).toBe(true);
    expect(checkSecrets(d, 30).find((r) => r.name === "apiserver")?.daysLeft).toBeGreaterThan(300);
  });

  test("check reports a certificate signed by another CA as invalid", async () => {
    const d = join(root, "foreign");
    const other = join(root, "other");
    await initSecrets(d, requests, OPTS);
    await initSecrets(other, requests, OPTS);
    writeFileSync(join(d, "admin.cert"), readFileSync(join(other, "admin.cert")));
    writeFileSync(join(d, "admin.key"), readFileSync(join(other, "admin.key")));
    expect(checkSecrets(d, 30).find((r) => r.name === "admin")).toMatchObject({ status: "invalid", chainValid: false });
  });
});

describe("secrets bad input: one clear error, nothing written", () => {
  const cases: [string, Partial<SecretsOptions>, ErrorCode][] = [
    ["missing domain", { domain: "" }, "BAD_DOMAIN"],
    ["invalid domain", { domain: "not a domain!" }, "BAD_DOMAIN"],
    ["bad CIDR", { serviceSubnet: "10.100.0.0/99" }, "BAD_CIDR"],
    ["IP that is not an IP", { ips: ["10.0.0.300"] }, "BAD_IP"],
  ];
  test.each(cases)("%s", async (_name, opts, code) => {
    const d = join(root, `bad-${code}-${Math.random()}`);
    const err = (await initSecrets(d, requests, { ...OPTS, ...opts }).catch((e) => e)) as PlanetError;
    expect(err).toBeInstanceOf(PlanetError);
    expect(err.code).toBe(code);
    expect(existsSync(d)).toBe(false);
  });

  test("a dir holding files that are not ours", async () => {
    const d = join(root, "foreign-files");
    mkdirSync(d);
    writeFileSync(join(d, "notes.txt"), "mine");
    await expect(initSecrets(d, requests, OPTS)).rejects.toMatchObject({ code: "NOT_OUR_DIR" });
    expect(readdirSync(d)).toEqual(["notes.txt"]);
  });

  test("a CA key that does not match its cert is refused and nothing is overwritten", async () => {
    const d = join(root, "mismatch");
    const other = join(root, "mismatch-other");
    await initSecrets(d, requests, OPTS);
    await initSecrets(other, requests, OPTS);
    writeFileSync(join(d, "root.key"), readFileSync(join(other, "root.key")), { mode: 0o600 });
    rmSync(join(d, "apiserver.cert"));
    const before = snapshot(d);
    await expect(initSecrets(d, requests, OPTS)).rejects.toMatchObject({ code: "CA_MISMATCH" });
    expect(snapshot(d)).toEqual(before);
  });

  test("a corrupt CA and a half CA", async () => {
    const d = join(root, "corrupt");
    await initSecrets(d, requests, OPTS);
    writeFileSync(join(d, "root.cert"), "garbage");
    await expect(initSecrets(d, requests, OPTS)).rejects.toMatchObject({ code: "CA_CORRUPT" });
    rmSync(join(d, "root.cert"));
    await expect(initSecrets(d, requests, OPTS)).rejects.toMatchObject({ code: "CA_INCOMPLETE" });
  });

  test("a record that is not JSON, or not ours, is CORRUPT_RECORD and nothing is written", async () => {
    for (const text of ["{ torn", '{"schema": 1, "files": []}']) {
      const d = join(root, `corrupt-${text.length}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "planet-secrets.json"), text);
      const err = (await initSecrets(d, requests, OPTS).catch((e) => e)) as PlanetError;
      expect(err.code).toBe("CORRUPT_RECORD");
      expect(readdirSync(d)).toEqual(["planet-secrets.json"]);
    }
  });

  test("an unwritable dir", async () => {
    await expect(initSecrets("/proc/planet-secrets", requests, OPTS)).rejects.toMatchObject({ code: "UNWRITABLE" });
  });
});

describe("TLS with the issued certificates", () => {
  test("a Bun TLS server with apiserver.cert accepts admin and rejects a client of another CA", async () => {
    const other = join(root, "tls-other");
    await initSecrets(other, requests, OPTS);
    const read = (d: string, f: string) => readFileSync(join(d, f), "utf8");
    using server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      tls: {
        cert: read(dir, "apiserver.cert"),
        key: read(dir, "apiserver.key"),
        ca: read(dir, "root.cert"),
        requestCert: true,
        rejectUnauthorized: true,
      },
      fetch: () => new Response("ok"),
    });
    const url = `https://127.0.0.1:${server.port}/`;
    const ok = await fetch(url, {
      tls: { ca: read(dir, "root.cert"), cert: read(dir, "admin.cert"), key: read(dir, "admin.key") },
    });
    expect(await ok.text()).toBe("ok");
    const bad = fetch(url, {
      tls: { ca: read(dir, "root.cert"), cert: read(other, "admin.cert"), key: read(other, "admin.key") },
    });
    await expect(bad).rejects.toThrow();
    // And the client refuses a server whose cert is from another CA.
    await expect(
      fetch(url, { tls: { ca: read(other, "root.cert"), cert: read(dir, "admin.cert"), key: read(dir, "admin.key") } }),
    ).rejects.toThrow();
  });
});

describe("secrets host: one host's own secrets, no CA key it does not need", () => {
  const HOST = { nodeName: "n1", ips: ["10.212.0.2"], hosts: [], roles: ["node" as const], validityDays: 30 };
  const nodeDir = join(root, "host-n1");
  const masterDir = join(root, "host-m1");
  beforeAll(async () => {
    await issueHost(dir, nodeDir, certRequests("node", ["node"]).requests, HOST);
    await issueHost(dir, masterDir, certRequests("master", ["master"]).requests, {
      ...HOST,
      nodeName: "m1",
      ips: ["10.212.0.1"],
      roles: ["master"],
    });
  });
  const subject = (f: string) => openssl("x509", "-in", f, "-noout", "-subject", "-nameopt", "sep_comma_plus_space").trim();

  test("a node: its kubelet certificate for its name and address, every CA's cert, no CA or etcd member key", () => {
    const files = readdirSync(nodeDir);
    for (const f of ["root.key", "etcd-ca.key", "csr-signer.key", "front-proxy-ca.key", "etcd.key", "etcd-root.key", "sa.key"])
      expect(files).not.toContain(f);
    for (const f of ["root.cert", "etcd-ca.cert", "kubelet.kubeconfig", "serf.key"]) expect(files).toContain(f);
    // No etcd credential of any kind on a node.
    for (const f of ["flannel.key", "agent-etcd-client.key", "etcd-root.key", "apiserver-etcd-client.key"])
      expect(files).not.toContain(f);
    expect(subject(join(nodeDir, "kubelet.cert"))).toBe("subject=CN=system:node:n1, O=system:nodes");
    const server = openssl("x509", "-in", join(nodeDir, "kubelet-server.cert"), "-noout", "-ext", "subjectAltName");
    expect(server).toContain("IP Address:10.212.0.2");
    expect(server).not.toContain("10.211.0.1");
    expect(openssl("verify", "-CAfile", join(nodeDir, "root.cert"), join(nodeDir, "kubelet.cert"))).toContain(": OK");
    // The etcd CA is not the cluster CA: a cluster certificate opens nothing in etcd.
    expect(() => openssl("verify", "-CAfile", join(nodeDir, "etcd-ca.cert"), join(nodeDir, "kubelet.cert"))).toThrow();
    // Shared secrets are the cluster's: the gossip key and the CA certificates.
    expect(readFileSync(join(nodeDir, "serf.key"), "utf8")).toBe(readFileSync(join(dir, "serf.key"), "utf8"));
    expect(readFileSync(join(nodeDir, "root.cert"), "utf8")).toBe(readFileSync(join(dir, "root.cert"), "utf8"));
    expect(loadRecord(nodeDir)?.host).toEqual({ roles: ["node"], cluster: expect.stringMatching(/^[0-9a-f]{64}$/) });
    // check treats a host's directory like any other.
    expect(checkSecrets(nodeDir, 7).every((r) => r.status === "ok")).toBe(true);
  });

  test("a master: etcd member and apiserver certificates for its address, and every CA's key (it renews itself)", async () => {
    const files = readdirSync(masterDir);
    for (const f of ["csr-signer.key", "root.key", "etcd-ca.key", "front-proxy-ca.key", "sa.key"]) expect(files).toContain(f);
    // A node holds none.
    for (const f of ["csr-signer.key", "root.key", "etcd-ca.key", "front-proxy-ca.key", "sa.key"])
      expect(readdirSync(nodeDir)).not.toContain(f);
    const etcd = openssl("x509", "-in", join(masterDir, "etcd.cert"), "-noout", "-ext", "subjectAltName");
    expect(etcd).toContain("IP Address:10.212.0.1");
    expect(readFileSync(join(masterDir, "admin.kubeconfig"), "utf8")).toContain("server: https://10.212.0.1:6443");
    const bundle = readFileSync(join(masterDir, "client-ca.pem"), "utf8");
    expect(bundle.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(bundle).toContain(readFileSync(join(dir, "csr-signer.cert"), "utf8"));
    expect(readFileSync(join(masterDir, "sa.key"), "utf8")).toBe(readFileSync(join(dir, "sa.key"), "utf8"));
  });

  test("a master's own directory renews its leaves from its CA keys; a node's refuses (it renews through the masters)", async () => {
    const copy = join(root, "master-renew");
    cpSync(masterDir, copy, { recursive: true });
    // Everything due (a 400-day window): each leaf anew, from the same CA, for its same names.
    const before = openssl("x509", "-in", join(copy, "etcd.cert"), "-noout", "-serial", "-ext", "subjectAltName");
    const renewed = await renewSecrets(copy, 400);
    for (const n of ["apiserver", "etcd", "apiserver-etcd-client", "front-proxy-client", "kubelet"]) expect(renewed).toContain(n);
    const after = openssl("x509", "-in", join(copy, "etcd.cert"), "-noout", "-serial", "-ext", "subjectAltName");
    expect(after).not.toBe(before);
    expect(after.split("\n").slice(1)).toEqual(before.split("\n").slice(1));
    expect(openssl("verify", "-CAfile", join(copy, "etcd-ca.cert"), join(copy, "etcd.cert"))).toContain(": OK");
    expect(openssl("verify", "-CAfile", join(copy, "front-proxy-ca.cert"), join(copy, "front-proxy-client.cert"))).toContain(
      ": OK",
    );
    await expect(renewSecrets(nodeDir, 400)).rejects.toThrow(/without the CA keys: it renews through the masters/);
  });

  test("a re-run keeps the host's files byte-identical", async () => {
    const before = snapshot(nodeDir);
    const again = await issueHost(dir, nodeDir, certRequests("node", ["node"]).requests, HOST);
    expect(again.issued).toEqual([]);
    expect(snapshot(nodeDir)).toEqual(before);
  });

  test("a host reissued with fewer requests loses the files of the others (a node's former etcd credential)", async () => {
    const host = join(root, "shrinks");
    // As issued before nodes lost their etcd client certificate: one more request, issued by etcd's CA.
    const old = [
      ...certRequests("node", ["node"]).requests,
      { name: "flannel", cn: "flannel", usage: ["client" as const], issuer: "etcd-ca" },
    ];
    await issueHost(dir, host, old, HOST);
    expect(existsSync(join(host, "flannel.key"))).toBe(true);
    await issueHost(dir, host, certRequests("node", ["node"]).requests, HOST);
    for (const f of ["flannel.cert", "flannel.key"]) expect(existsSync(join(host, f))).toBe(false);
    expect(existsSync(join(host, "kubelet.key"))).toBe(true);
  });

  test("bad input: one clear error each, nothing written", async () => {
    const reqs = certRequests("node", ["node"]).requests;
    const code = async (p: Promise<unknown>) => ((await p.then(() => null).catch((e) => e)) as PlanetError | null)?.code;
    expect(await code(issueHost(dir, dir, reqs, HOST))).toBe("BAD_FLAG");
    expect(await code(issueHost(dir, nodeDir, reqs, { ...HOST, nodeName: "n2" }))).toBe("NOT_OUR_DIR");
    expect(await code(issueHost(nodeDir, join(root, "x1"), reqs, HOST))).toBe("NO_RECORD");
    expect(await code(issueHost(dir, join(root, "x2"), reqs, { ...HOST, roles: [] }))).toBe("BAD_FLAG");
    expect(await code(issueHost(dir, join(root, "x3"), reqs, { ...HOST, ips: [] }))).toBe("BAD_FLAG");
    expect(await code(initSecrets(nodeDir, requests, OPTS))).toBe("NOT_OUR_DIR");
    for (const x of ["x1", "x2", "x3"]) expect(existsSync(join(root, x))).toBe(false);
  });
});
