/**
 * The core's house: each file on a floor, and no import pointing up — a library never imports a CLI
 * command, the bubble never the upgrade, the contract nothing of ours. A new file gets a floor here.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const REPO = join(import.meta.dir, "..");
const FLOORS: [RegExp, number][] = [
  [/^core\/(util|errors|log|proc|net|version|environment|image-ref)\.ts$/, 0],
  [/^core\/(plugin|units)\.ts$/, 1],
  [/^core\/kube\//, 2],
  [/^core\/(manifest|resolve|charts)\.ts$/, 3],
  [/^core\/image\//, 4],
  [/^core\/bubble\//, 5],
  [/^core\/agent\//, 6],
  [/^core\/upgrade\//, 7],
  [/^core\/e2e\//, 8],
  [/^core\/cli\//, 9],
];
const floorOf = (file: string) => FLOORS.find(([re]) => re.test(file))?.[1];
const files = Bun.spawnSync(["git", "ls-files", "core"], { cwd: REPO })
  .stdout.toString()
  .trim()
  .split("\n")
  .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
const importsOf = (file: string) =>
  [...readFileSync(join(REPO, file), "utf8").matchAll(/^(?:import|export)[^"]*from "(\.[^"]+)";$/gm)].map((m) =>
    relative(REPO, join(REPO, dirname(file), m[1] as string)),
  );

describe("the core's imports never point up", () => {
  test("every file of the core has a floor", () => {
    expect(files.filter((f) => floorOf(f) === undefined)).toEqual([]);
  });

  test("each import inside the core goes to the same floor or a lower one", () => {
    const up = files.flatMap((f) =>
      importsOf(f)
        .filter((t) => t.startsWith("core/") && (floorOf(t) ?? 99) > (floorOf(f) ?? -1))
        .map((t) => `${f} → ${t}`),
    );
    expect(up).toEqual([]);
  });

  test("the plugin contract imports nothing of ours", () => {
    expect(importsOf("core/plugin.ts")).toEqual([]);
  });
});
