import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { certRequests } from "../core/cli/commands/secrets.ts";
import { rotateEncryption } from "./encryption.ts";
import { issueHost } from "./host.ts";
import { initSecrets } from "./init.ts";
import { loadRecord } from "./record.ts";

const work = mkdtempSync(join(tmpdir(), "planet-encryption-"));
const dir = join(work, "cluster");
const m1 = join(work, "m1");
const key = (d: string, f: string) => (existsSync(join(d, f)) ? readFileSync(join(d, f), "utf8") : null);
const opts = {
  domain: "cluster.local",
  serviceSubnet: "10.100.0.0/16",
  ips: ["10.0.0.1"],
  hosts: [],
  nodeName: "m1",
  validityDays: 30,
};
const issueMaster = () =>
  issueHost(dir, m1, certRequests("master", ["master"]).requests, {
    nodeName: "m1",
    ips: ["10.0.0.1"],
    hosts: [],
    roles: ["master"],
    validityDays: 30,
  });

beforeAll(async () => {
  await initSecrets(dir, certRequests("dev").requests, opts);
  await issueMaster();
}, 60_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("rotating the encryption key, stage by stage", () => {
  test("prepare, rotate, finish: the new key comes in read-only, then writes; the old one reads until finished", async () => {
    const first = key(dir, "encryption.key");
    rotateEncryption(dir, "prepare");
    const next = key(dir, "encryption-next.key");
    expect(next).not.toBeNull();
    expect(next).not.toBe(first);
    // Re-running init keeps the prepared key (it is in the record), and a master gets it.
    await initSecrets(dir, certRequests("dev").requests, opts);
    await issueMaster();
    expect(key(m1, "encryption-next.key")).toBe(next);
    rotateEncryption(dir, "rotate");
    expect(key(dir, "encryption.key")).toBe(next);
    expect(key(dir, "encryption-old.key")).toBe(first);
    expect(key(dir, "encryption-next.key")).toBeNull();
    await issueMaster();
    expect(key(m1, "encryption.key")).toBe(next);
    expect(key(m1, "encryption-old.key")).toBe(first);
    expect(key(m1, "encryption-next.key")).toBeNull();
    rotateEncryption(dir, "finish");
    expect(key(dir, "encryption-old.key")).toBeNull();
    expect(Object.keys(loadRecord(dir)?.files ?? {})).not.toContain("encryption-old");
    await issueMaster();
    expect(key(m1, "encryption-old.key")).toBeNull();
    expect(key(m1, "encryption.key")).toBe(next);
  });

  test("out of order, one line and nothing changed; a host's directory is refused", () => {
    const before = key(dir, "encryption.key");
    expect(() => rotateEncryption(dir, "rotate")).toThrow("no key is prepared");
    expect(() => rotateEncryption(dir, "finish")).toThrow("nothing is being rotated");
    rotateEncryption(dir, "prepare");
    expect(() => rotateEncryption(dir, "prepare")).toThrow("already prepared");
    expect(() => rotateEncryption(dir, "finish")).toThrow("rotate first");
    expect(key(dir, "encryption.key")).toBe(before);
    expect(() => rotateEncryption(m1, "prepare")).toThrow("holds host m1's secrets");
  });

  test("every kill window of a stage is completed by running the stage again, never rotating twice", async () => {
    const record = () => Object.keys(loadRecord(dir)?.files ?? {});
    const put = (f: string, text: string) => writeFileSync(join(dir, f), text, { mode: 0o600 });
    const drop = (f: string) => rmSync(join(dir, f), { force: true });
    const setRecord = (edit: (files: Record<string, unknown>) => void) => {
      const r = JSON.parse(readFileSync(join(dir, "planet-secrets.json"), "utf8"));
      edit(r.files);
      writeFileSync(join(dir, "planet-secrets.json"), JSON.stringify(r));
    };
    // The previous test left a key prepared: a whole rotation first.
    rotateEncryption(dir, "rotate");
    rotateEncryption(dir, "finish");
    // prepare killed after the key, before the record.
    rotateEncryption(dir, "prepare");
    const next = key(dir, "encryption-next.key") as string;
    const current = key(dir, "encryption.key") as string;
    setRecord((f) => delete f["encryption-next"]);
    expect(rotateEncryption(dir, "prepare")).toContain("interrupted prepare, completed");
    expect(record()).toContain("encryption-next");
    expect(key(dir, "encryption-next.key")).toBe(next);
    // rotate killed after its first rename (the old key written), before the current one.
    put("encryption-old.key", current);
    rotateEncryption(dir, "rotate");
    expect([key(dir, "encryption.key"), key(dir, "encryption-old.key"), key(dir, "encryption-next.key")]).toEqual([
      next,
      current,
      null,
    ]);
    // rotate killed after both renames, before the record and the removal.
    put("encryption-next.key", next);
    setRecord((f) => {
      f["encryption-next"] = { kind: "random", hash: "x" };
      delete f["encryption-old"];
    });
    expect(rotateEncryption(dir, "rotate")).toContain("interrupted rotation, completed");
    expect(record()).toContain("encryption-old");
    expect(record()).not.toContain("encryption-next");
    expect([key(dir, "encryption.key"), key(dir, "encryption-old.key"), key(dir, "encryption-next.key")]).toEqual([
      next,
      current,
      null,
    ]);
    // finish killed after the record, before the removal.
    setRecord((f) => delete f["encryption-old"]);
    rotateEncryption(dir, "finish");
    expect(key(dir, "encryption-old.key")).toBeNull();
    // Masters given the directory now hold exactly the current key.
    await issueMaster();
    expect([key(m1, "encryption.key"), key(m1, "encryption-old.key"), key(m1, "encryption-next.key")]).toEqual([
      next,
      null,
      null,
    ]);
    drop("encryption-next.key");
  });
});
