import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slotOfRootfs } from "../bubble/slot-root.ts";
import type { PlanetError } from "../errors.ts";
import { type Journal, journalFile, readJournal, writeJournal } from "./journal.ts";
import { installSlot, listSlots, pointer, pruneSlots, setPointer } from "./slots.ts";

const root = mkdtempSync(join(tmpdir(), "planet-slots-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A minimal image: a manifest naming one asset file with its sha256, and /sbin/init. */
function fakeImage(name: string, version: string, binary = `kubelet ${version}`): string {
  const rootfs = join(root, name, "rootfs");
  mkdirSync(join(rootfs, "etc/planet"), { recursive: true });
  mkdirSync(join(rootfs, "sbin"), { recursive: true });
  mkdirSync(join(rootfs, "usr/bin"), { recursive: true });
  writeFileSync(join(rootfs, "sbin/init"), "");
  writeFileSync(join(rootfs, "usr/bin/kubelet"), binary);
  const sha = createHash("sha256").update(`kubelet ${version}`).digest("hex");
  const manifest = {
    schema: 1,
    version,
    commit: "abc",
    target: "dev",
    roles: ["master", "node"],
    plugins: [],
    assets: [
      { name: "kubernetes", version: "1.37.2", kind: "gomod", source: "", sha256: null, files: { "/usr/bin/kubelet": sha } },
    ],
    units: { master: [], node: [] },
    unitOwners: {},
    checks: [],
    certs: [],
    env: {},
    images: [],
    ports: [],
    packages: [],
  };
  writeFileSync(join(rootfs, "etc/planet/manifest.json"), JSON.stringify(manifest));
  return join(root, name);
}

const code = async (p: Promise<unknown>) => ((await p.catch((e) => e)) as PlanetError).code;

describe("slots", () => {
  const data = join(root, "data");

  test("an image is verified and kept in a slot named by target, version and digest; the same image twice is one slot", async () => {
    const { slot, fresh } = await installSlot(data, fakeImage("a", "0.1.0"));
    expect(fresh).toBe(true);
    expect(slot.info.name).toMatch(/^dev-0\.1\.0-[0-9a-f]{12}$/);
    expect(slot.info.assets).toEqual({ kubernetes: "1.37.2" });
    expect(readFileSync(join(slot.rootfs, "usr/bin/kubelet"), "utf8")).toBe("kubelet 0.1.0");
    expect(slotOfRootfs(slot.rootfs)?.info.name).toBe(slot.info.name);
    expect(slotOfRootfs(join(root, "a", "rootfs"))).toBeNull();
    const again = await installSlot(data, join(root, "a", "rootfs"));
    expect(again.fresh).toBe(false);
    expect(listSlots(data)).toHaveLength(1);
  });

  test("a binary that does not match the manifest, or no image at all: refused, and no slot or staging left", async () => {
    expect(await code(installSlot(data, fakeImage("bad", "0.2.0", "tampered")))).toBe("IMAGE_CORRUPT");
    expect(await code(installSlot(data, join(root, "nowhere")))).toBe("NOT_AN_IMAGE");
    mkdirSync(join(root, "empty"));
    expect(await code(installSlot(data, join(root, "empty")))).toBe("NOT_AN_IMAGE");
    expect(listSlots(data)).toHaveLength(1);
    expect(existsSync(join(data, "slots", `.staging-${process.pid}`))).toBe(false);
  });

  test("pointers switch atomically; pruning keeps what they name", async () => {
    const a = listSlots(data)[0];
    const { slot: b } = await installSlot(data, fakeImage("b", "0.2.0"));
    const { slot: c } = await installSlot(data, fakeImage("c", "0.3.0"));
    setPointer(data, "current", a ?? null);
    setPointer(data, "current", b);
    setPointer(data, "previous", a ?? null);
    expect(pointer(data, "current")?.info.name).toBe(b.info.name);
    expect(pointer(data, "previous")?.info.name).toBe(a?.info.name);
    expect(pruneSlots(data)).toEqual([c.info.name]);
    expect(
      listSlots(data)
        .map((s) => s.info.version)
        .sort(),
    ).toEqual(["0.1.0", "0.2.0"]);
  });
});

describe("journal", () => {
  const data = join(root, "jdata");
  const j = (): Journal => ({
    id: "t1",
    pid: process.pid,
    dataDir: data,
    box: "planet-x",
    args: [],
    image: "/img",
    from: "a",
    restore: { volumes: [], safe: true },
    changes: [],
    phase: "preflight",
    history: [],
    startedAt: new Date().toISOString(),
  });

  test("each phase is recorded with its time and read back whole", () => {
    const journal = writeJournal(j(), "preflight");
    writeJournal(journal, "staged", "slot b");
    const back = readJournal(data);
    expect(back?.phase).toBe("staged");
    expect(back?.history.map((h) => h.phase)).toEqual(["preflight", "staged"]);
    expect(back?.history[1]?.note).toBe("slot b");
  });

  test("a journal that is not one is an error naming the file, never 'no upgrade'", () => {
    writeFileSync(journalFile(data), "{ half");
    expect(() => readJournal(data)).toThrow(/is not an upgrade journal/);
  });
});
