import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { certRequests } from "../core/cli/commands/secrets.ts";
import { plugins } from "../plugins/index.ts";
import { REPO } from "../test/helpers.ts";
import { checkSecrets } from "./check.ts";
import { issueHost } from "./host.ts";
import { initSecrets } from "./init.ts";
import { keyMatches, parseCert, parseKey, pemsOf, signedBy } from "./pki.ts";
import { loadRecord } from "./record.ts";
import { rotateCA } from "./rotate-ca.ts";

const every = plugins.flatMap((p) => p.certs ?? []);
const opts = {
  domain: "cluster.local",
  serviceSubnet: "10.100.0.0/16",
  ips: ["10.0.0.1"],
  hosts: [],
  nodeName: "m1",
  validityDays: 30,
};
const text = (d: string, f: string) => (existsSync(join(d, f)) ? readFileSync(join(d, f), "utf8") : null);
const cn = (pem: string) => String(parseCert(pem).subject.getField("CN")?.value);
const cnsOf = (d: string, f: string) => pemsOf(text(d, f) ?? "").map(cn);
/** The CA certificates a kubeconfig trusts. */
const kubeconfigCas = (d: string, f: string) => {
  const m = /certificate-authority-data: (\S+)/.exec(text(d, f) ?? "");
  return pemsOf(Buffer.from(m?.[1] ?? "", "base64").toString("utf8")).map(cn);
};
/** Every check row ok: chains, keys, validity. */
const allGood = (d: string) => expect(checkSecrets(d, 0).filter((r) => r.status !== "ok")).toEqual([]);

function setup(work: string) {
  const dir = join(work, "cluster");
  const node = join(work, "n1");
  const issueNode = () =>
    issueHost(dir, node, certRequests("node", ["node"]).requests, {
      nodeName: "n1",
      ips: ["10.0.0.2"],
      hosts: [],
      roles: ["node"],
      validityDays: 30,
    });
  return { dir, node, issueNode };
}

describe("rotating a CA: prepare, rotate, finish", () => {
  const work = mkdtempSync(join(tmpdir(), "planet-rotate-ca-"));
  const { dir, node, issueNode } = setup(work);
  beforeAll(async () => {
    await initSecrets(dir, certRequests("dev").requests, opts);
    await issueNode();
  }, 60_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("out of order, another CA or a host's directory: one line, nothing written", async () => {
    const before = readdirSync(dir).map((f) => [f, text(dir, f)]);
    await expect(rotateCA(dir, "root", "rotate", every)).rejects.toThrow("--stage prepare first");
    await expect(rotateCA(dir, "nope", "prepare", every)).rejects.toThrow("this directory's CAs are root, etcd-ca");
    await expect(rotateCA(node, "root", "prepare", every)).rejects.toThrow("rotate the CA where planet secrets init ran");
    expect(readdirSync(dir).map((f) => [f, text(dir, f)])).toEqual(before);
  });

  test("prepare: old and new trusted everywhere the CA's file goes; no leaf changes", async () => {
    const leaf = text(dir, "apiserver.cert");
    const admin = text(dir, "admin.cert");
    await rotateCA(dir, "root", "prepare", every);
    expect(cnsOf(dir, "root.cert")).toEqual(["planet-ca", "planet-ca-2"]);
    expect(cnsOf(dir, "root-next.cert")).toEqual(["planet-ca-2"]);
    expect(cnsOf(dir, "client-ca.pem")).toEqual(["planet-ca", "planet-ca-2", "planet-csr-signer"]);
    expect(kubeconfigCas(dir, "admin.kubeconfig")).toEqual(["planet-ca", "planet-ca-2"]);
    expect(text(dir, "apiserver.cert")).toBe(leaf);
    // A leaf with a kubeconfig keeps its certificate; only its kubeconfig's trust changes.
    expect(text(dir, "admin.cert")).toBe(admin);
    // Run again (as after a kill): the same new CA, not a third.
    const next = text(dir, "root-next.cert");
    await rotateCA(dir, "root", "prepare", every);
    expect(text(dir, "root-next.cert")).toBe(next);
    allGood(dir);
    await issueNode();
    expect(cnsOf(node, "root.cert")).toEqual(["planet-ca", "planet-ca-2"]);
    expect(kubeconfigCas(node, "kubelet.kubeconfig")).toEqual(["planet-ca", "planet-ca-2"]);
    allGood(node);
    await expect(rotateCA(dir, "root", "finish", every)).rejects.toThrow("--stage rotate first");
  }, 60_000);

  test("rotate: the new CA signs and every leaf it signed is new; the old one still trusted", async () => {
    const old = text(dir, "root-next.cert") as string;
    await rotateCA(dir, "root", "rotate", every);
    expect(cnsOf(dir, "root.cert")).toEqual(["planet-ca-2", "planet-ca"]);
    expect(cnsOf(dir, "root-old.cert")).toEqual(["planet-ca"]);
    expect(existsSync(join(dir, "root-next.cert"))).toBe(false);
    const ca = parseCert(old);
    expect(keyMatches(ca, parseKey(text(dir, "root.key") as string))).toBe(true);
    const record = loadRecord(dir);
    for (const [name, f] of Object.entries(record?.files ?? {}))
      if (f.kind === "cert" && (f.issuer ?? "root") === "root")
        expect([name, signedBy(parseCert(text(dir, `${name}.cert`) as string), ca)]).toEqual([name, true]);
    allGood(dir);
    await expect(rotateCA(dir, "root", "prepare", every)).rejects.toThrow("last rotation is not finished");
    await issueNode();
    expect(signedBy(parseCert(text(node, "kubelet.cert") as string), ca)).toBe(true);
    allGood(node);
  }, 60_000);

  test("finish: only the new CA is trusted; the old one's companions are gone", async () => {
    await rotateCA(dir, "root", "finish", every);
    expect(cnsOf(dir, "root.cert")).toEqual(["planet-ca-2"]);
    expect(cnsOf(dir, "client-ca.pem")).toEqual(["planet-ca-2", "planet-csr-signer"]);
    expect(kubeconfigCas(dir, "admin.kubeconfig")).toEqual(["planet-ca-2"]);
    expect(existsSync(join(dir, "root-old.cert"))).toBe(false);
    expect(Object.keys(loadRecord(dir)?.files ?? {}).filter((n) => n.startsWith("root-"))).toEqual([]);
    allGood(dir);
    await issueNode();
    expect(cnsOf(node, "root.cert")).toEqual(["planet-ca-2"]);
    allGood(node);
    // And the next rotation may begin.
    await rotateCA(dir, "root", "prepare", every);
    expect(cnsOf(dir, "root.cert")).toEqual(["planet-ca-2", "planet-ca-3"]);
  }, 60_000);
});

describe("a rotation killed at any moment is completed by running its stage again", () => {
  const work = mkdtempSync(join(tmpdir(), "planet-rotate-ca-kill-"));
  const { dir } = setup(work);
  beforeAll(() => initSecrets(dir, certRequests("dev").requests, opts), 60_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const stage = (s: string) =>
    Bun.spawn(["bun", join(REPO, "core/cli/main.ts"), "secrets", "rotate-ca", dir, "--ca", "etcd-ca", "--stage", s], {
      stdout: "ignore",
      stderr: "pipe",
    });

  test("kill -9 at several points of each stage, then the stage again: every certificate checks out", async () => {
    for (const s of ["prepare", "rotate", "finish"]) {
      for (const ms of [150, 350, 700]) {
        const p = stage(s);
        await Bun.sleep(ms);
        p.kill(9);
        await p.exited;
      }
      const again = stage(s);
      const code = await again.exited;
      expect([s, code, code ? await new Response(again.stderr).text() : ""]).toEqual([s, 0, ""]);
      allGood(dir);
    }
    expect(cnsOf(dir, "etcd-ca.cert")).toEqual(["planet-etcd-ca-2"]);
    const ca = parseCert(text(dir, "etcd-ca.cert") as string);
    for (const leaf of ["etcd", "apiserver-etcd-client"])
      expect(signedBy(parseCert(text(dir, `${leaf}.cert`) as string), ca)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-") || f.startsWith("etcd-ca-"))).toEqual([]);
  }, 120_000);
});
