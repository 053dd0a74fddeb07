import { describe, expect, test } from "bun:test";
import type { PlanetError } from "../errors.ts";
import type { Manifest } from "../manifest.ts";
import { checkSkew, compareVersions } from "./skew.ts";

const image = (version: string, assets: Record<string, string>, target = "master"): Manifest =>
  ({
    version,
    target,
    assets: Object.entries(assets).map(([name, v]) => ({ name, version: v, files: {} })),
    plugins: [
      { name: "kube-master", upgrade: { skew: [{ asset: "kubernetes", maxMinorStep: 1 }] } },
      { name: "etcd", upgrade: { skew: [{ asset: "etcd", maxMinorStep: 1, floors: { "3.7": "3.6.11" } }] } },
    ],
  }) as unknown as Manifest;

const refusal = (from: Manifest, to: Manifest) => {
  try {
    checkSkew(from, to);
    return null;
  } catch (e) {
    return `${(e as PlanetError).code}: ${(e as Error).message}`;
  }
};

describe("skew", () => {
  const running = image("0.1.0", { kubernetes: "1.36.4", etcd: "3.6.11" });

  test("versions compare numerically", () => {
    expect(compareVersions("1.10.0", "1.9.9")).toBeGreaterThan(0);
    expect(compareVersions("v1.37.2", "1.37.2")).toBe(0);
    expect(compareVersions("3.6.2", "3.6.11")).toBeLessThan(0);
  });

  test("a patch, a minor, a newer planet: allowed, and the changes are named", () => {
    expect(checkSkew(running, image("0.1.0", { kubernetes: "1.36.5", etcd: "3.6.11" }))).toEqual(["kubernetes 1.36.4 → 1.36.5"]);
    expect(checkSkew(running, image("0.2.0", { kubernetes: "1.37.2", etcd: "3.7.3" }))).toEqual([
      "planet 0.1.0 → 0.2.0",
      "kubernetes 1.36.4 → 1.37.2",
      "etcd 3.6.11 → 3.7.3",
    ]);
    expect(checkSkew(running, image("0.1.0", { kubernetes: "1.36.4", etcd: "3.6.11" }))).toEqual([]);
  });

  test("older, a skipped minor, below etcd's floor, another target: one line each", () => {
    expect(refusal(running, image("0.0.9", { kubernetes: "1.36.4", etcd: "3.6.11" }))).toBe(
      "UPGRADE_REFUSED: the image is planet 0.0.9, older than the running 0.1.0",
    );
    expect(refusal(running, image("0.1.0", { kubernetes: "1.35.9", etcd: "3.6.11" }))).toContain(
      "kubernetes 1.35.9 is older than the running 1.36.4",
    );
    expect(refusal(running, image("0.1.0", { kubernetes: "1.38.0", etcd: "3.6.11" }))).toBe(
      "UPGRADE_REFUSED: kubernetes 1.36.4 → 1.38.0 skips 1 minor version: upgrade to 1.37 first",
    );
    expect(
      refusal(image("0.1.0", { kubernetes: "1.36.4", etcd: "3.6.2" }), image("0.1.0", { kubernetes: "1.36.4", etcd: "3.7.3" })),
    ).toBe("UPGRADE_REFUSED: etcd 3.7.3 can only follow 3.6.11 or newer, and 3.6.2 runs: upgrade to 3.6.11 first");
    expect(refusal(running, image("0.1.0", { kubernetes: "1.36.4", etcd: "3.6.11" }, "node"))).toBe(
      "UPGRADE_REFUSED: the image is for target node, this host runs master",
    );
  });
});
