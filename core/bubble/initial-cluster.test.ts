import { describe, expect, test } from "bun:test";
import type { PlanetError } from "../errors.ts";
import { bubbleId, initialCluster } from "./bubble.ts";
import { devHost } from "./devhost.ts";

const code = (f: () => unknown) => {
  try {
    f();
    return null;
  } catch (e) {
    return (e as PlanetError).code;
  }
};

describe("--initial-cluster", () => {
  test("a master alone, a node following --master-ip or its own address", () => {
    expect(initialCluster(undefined, ["master"], "m1", "10.0.0.1")).toEqual([{ name: "m1", ip: "10.0.0.1" }]);
    expect(initialCluster("", ["node"], "n1", "10.0.0.5", "10.0.0.1")).toEqual([{ name: "master", ip: "10.0.0.1" }]);
    expect(initialCluster(undefined, ["node"], "n1", "10.0.0.5")).toEqual([{ name: "master", ip: "10.0.0.5" }]);
  });

  test("three masters: each must find itself; a node takes the list as its masters", () => {
    const list = "m1:10.0.0.1, m2:10.0.0.2,m3:10.0.0.3";
    expect(initialCluster(list, ["master"], "m2", "10.0.0.2").map((m) => m.name)).toEqual(["m1", "m2", "m3"]);
    expect(initialCluster(list, ["node"], "n1", "10.0.0.9")).toHaveLength(3);
    expect(code(() => initialCluster(list, ["master"], "m4", "10.0.0.4"))).toBe("BAD_FLAG");
    // The right name at another address is not this master either.
    expect(code(() => initialCluster(list, ["master"], "m2", "10.0.0.7"))).toBe("BAD_FLAG");
  });

  test("malformed entries and repeats are refused", () => {
    for (const bad of [
      "m1",
      "m1:",
      ":10.0.0.1",
      "m1:10.0.0",
      "m1:10.0.0.1:2380",
      "M1:10.0.0.1",
      "m1:10.0.0.1,m1:10.0.0.2",
      "m1:10.0.0.1,m2:10.0.0.1",
    ])
      expect(code(() => initialCluster(bad, ["node"], "n1", "10.0.0.9"))).toBe("BAD_FLAG");
  });

  test("bubbles in test hosts get their own names; the host network keeps the cluster's", () => {
    expect(bubbleId("prod")).toBe("planet-prod");
    expect(bubbleId("prod", "h1")).toBe("planet-prod-h1");
  });
});

describe("dev-host", () => {
  test("names and addresses are checked; the host end of a bridge is .254", () => {
    expect(devHost("h1", "10.1.2.3", "br0")).toMatchObject({ hostIp: "10.1.2.254", bridge: "br0", hostLink: "h1-h" });
    expect(code(() => devHost("Host!", "10.1.2.3"))).toBe("BAD_FLAG");
    expect(code(() => devHost("h1", "10.1.2.254"))).toBe("BAD_FLAG");
    expect(code(() => devHost("h1", "10.1.2.3", "a-bridge-name-too-long"))).toBe("BAD_FLAG");
    expect(code(() => devHost("h1", "10.1.2"))).toBe("BAD_IP");
  });
});
