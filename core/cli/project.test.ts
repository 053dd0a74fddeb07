import { describe, expect, test } from "bun:test";
import { pickRecipes, type recipes } from "./_project.ts";

describe("pickRecipes: one recipe per asset, the default unless --asset picks another version", () => {
  const version = (picked: typeof recipes, name: string) => picked.filter((r) => r.def.name === name).map((r) => r.def.version);
  test("by default the first recipe of each name", () => {
    const picked = pickRecipes([]);
    expect(version(picked, "kubernetes")).toEqual(["1.37.2"]);
    expect(new Set(picked.map((r) => r.def.name)).size).toBe(picked.length);
  });
  test("kubernetes@1.36.3 (or v1.36.3) swaps that asset only, from its own folder", () => {
    for (const pick of ["kubernetes@1.36.3", "kubernetes@v1.36.3"]) {
      const picked = pickRecipes([pick]);
      expect(version(picked, "kubernetes")).toEqual(["1.36.3"]);
      expect(picked.find((r) => r.def.name === "kubernetes")?.dir).toEndWith("build.assets/kubernetes-1.36");
      expect(version(picked, "etcd")).toEqual(version(pickRecipes([]), "etcd"));
    }
  });
  test("unknown names and versions are one line naming what exists", () => {
    expect(() => pickRecipes(["kubelet@1.36.3"])).toThrow(/no asset named kubelet \(known: kubernetes, etcd/);
    expect(() => pickRecipes(["etcd@9.9.9"])).toThrow(/etcd has recipes for .* only/);
    expect(() => pickRecipes(["kubernetes=1.36.3"])).toThrow(/write it as name@version/);
  });
});
