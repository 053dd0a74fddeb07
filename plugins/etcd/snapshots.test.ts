import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listSnapshots, pruneSnapshots, stamp } from "./snapshots.ts";

const dir = mkdtempSync(join(tmpdir(), "planet-snapshots-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("etcd snapshots in a folder", () => {
  test("names carry the kind and the UTC time; others are not ours", () => {
    expect(stamp(new Date("2026-12-07T18:12:05.123Z"))).toBe("20261207T181205Z");
    for (const f of [
      "scheduled-20261201T000000Z.db",
      "scheduled-20261201T120000Z.db",
      "scheduled-20261202T000000Z.db",
      "manual-20261201T130000Z.db",
      "pre-upgrade-20261130T100000Z.db",
      "scheduled-20261203T000000Z.db.tmp-42",
      "notes.txt",
    ])
      writeFileSync(join(dir, f), "x");
    const list = listSnapshots(dir);
    expect(list.map((s) => s.name)).toEqual([
      "scheduled-20261202T000000Z.db",
      "manual-20261201T130000Z.db",
      "scheduled-20261201T120000Z.db",
      "scheduled-20261201T000000Z.db",
      "pre-upgrade-20261130T100000Z.db",
    ]);
    expect(list[1]).toMatchObject({ kind: "manual", taken: "2026-12-01T13:00:00Z", bytes: 1 });
    expect(listSnapshots(join(dir, "missing"))).toEqual([]);
  });

  test("prune keeps the newest N of one kind and touches nothing else", () => {
    expect(pruneSnapshots("scheduled", 2, dir)).toEqual(["scheduled-20261201T000000Z.db"]);
    expect(readdirSync(dir).sort()).toEqual([
      "manual-20261201T130000Z.db",
      "notes.txt",
      "pre-upgrade-20261130T100000Z.db",
      "scheduled-20261201T120000Z.db",
      "scheduled-20261202T000000Z.db",
      "scheduled-20261203T000000Z.db.tmp-42",
    ]);
    expect(() => pruneSnapshots("scheduled", 0, dir)).toThrow("--keep 0: expected a whole number ≥ 1");
  });
});
