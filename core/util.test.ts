import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PlanetError } from "./errors.ts";
import { MANIFEST_PATH, readManifest } from "./manifest.ts";
import { poll, readJsonOrNull, readSysctl, shapeProblem, walkTree } from "./util.ts";

const root = mkdtempSync(join(tmpdir(), "planet-util-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("poll, walkTree, readSysctl", () => {
  test("poll returns the first truthy value, counts a throw as not yet, and gives up with the last error", async () => {
    let n = 0;
    expect(await poll(() => (++n === 3 ? "ready" : ""), 1000, 5)).toEqual({ value: "ready" });
    let m = 0;
    const r = await poll(
      () => {
        if (++m < 3) throw new Error(`try ${m}`);
        return 0;
      },
      100,
      5,
    );
    expect(r).toEqual({ error: new Error("try 2") });
  });

  test("walkTree: files, and directories deepest first", () => {
    mkdirSync(join(root, "a", "b"), { recursive: true });
    writeFileSync(join(root, "a", "b", "f"), "x");
    writeFileSync(join(root, "g"), "y");
    const t = walkTree(root);
    expect(t.files.sort()).toEqual([join(root, "a", "b", "f"), join(root, "g")]);
    expect(t.dirs).toEqual([join(root, "a", "b"), join(root, "a"), root]);
    expect(walkTree(join(root, "none"))).toEqual({ files: [], dirs: [] });
  });

  test("readSysctl reads /proc/sys by dotted name; a missing one is null", () => {
    expect(readSysctl("kernel.ostype")).toBe("Linux");
    expect(readSysctl("no.such.setting")).toBeNull();
  });
});

describe("JSON read back from disk", () => {
  test("shapeProblem names the first field that is missing or of another kind", () => {
    const shape = { schema: "number", files: "object", host: "object?" } as const;
    expect(shapeProblem({ schema: 1, files: {} }, shape)).toBeNull();
    expect(shapeProblem({ schema: 1, files: [] }, shape)).toBe("files is array, not object");
    expect(shapeProblem({ files: {} }, shape)).toBe("schema is missing");
    expect(shapeProblem({ schema: 1, files: {}, host: null }, shape)).toBe("host is null, not object");
    expect(shapeProblem([1], shape)).toBe("not a JSON object");
  });

  test("readJsonOrNull: null only when the file is missing; one that does not parse, or holds null, throws", () => {
    const file = join(root, "read.json");
    expect(readJsonOrNull(file)).toBeNull();
    writeFileSync(file, '{"a": 1}');
    expect(readJsonOrNull<{ a: number }>(file)).toEqual({ a: 1 });
    writeFileSync(file, "{ torn");
    expect(() => readJsonOrNull(file)).toThrow(SyntaxError);
    writeFileSync(file, "null");
    expect(() => readJsonOrNull(file)).toThrow(SyntaxError);
  });

  test("an image manifest that is not ours is CORRUPT_MANIFEST, with the fix", () => {
    const rootfs = join(root, "rootfs");
    mkdirSync(join(rootfs, "etc/planet"), { recursive: true });
    writeFileSync(join(rootfs, MANIFEST_PATH), '{"schema": 1, "target": "dev"}');
    expect(() => readManifest(rootfs)).toThrow(/is not an image manifest planet wrote \(roles is missing\); rebuild the image/);
    writeFileSync(join(rootfs, MANIFEST_PATH), "{ torn");
    expect(() => readManifest(rootfs)).toThrow(PlanetError);
  });
});
