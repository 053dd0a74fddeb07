import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { walkTree } from "./util.ts";

const REPO = join(import.meta.dir, "..");

describe("error codes", () => {
  test("every code of the ErrorCode union is raised somewhere, and none is raised that the union lacks", () => {
    const errors = readFileSync(join(import.meta.dir, "errors.ts"), "utf8");
    const union = /export type ErrorCode =([^;]+);/.exec(errors)?.[1] ?? "";
    const codes = [...union.matchAll(/"([A-Z_]+)"/g)].map((m) => m[1] as string);
    expect(codes.length).toBeGreaterThan(50);
    const sources = ["core", "secrets", "plugins", "build.assets"]
      .flatMap((d) => walkTree(join(REPO, d)).files)
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.endsWith("errors.ts"))
      .map((f) => readFileSync(f, "utf8"))
      .concat(errors.slice(errors.indexOf("export class PlanetError")))
      .join("\n");
    const unused = codes.filter((c) => !sources.includes(`"${c}"`));
    expect(unused).toEqual([]);
  });
});
