import { describe, expect, test } from "bun:test";
import { expandEnv, formatEnvFile, parseEnvFile, parseEnvPair } from "../environment.ts";
import { PlanetError } from "../errors.ts";
import { ownImageRootfs } from "../manifest.ts";
import { firstIp, overlaps, parseCidr } from "../net.ts";
import { hostCapabilities, hostNofile } from "./spec.ts";

describe("container environment", () => {
  test("plugin defaults refer to flag values with ${VAR}; unknown names expand to empty", () => {
    const env = expandEnv({
      ETCD_INITIAL_CLUSTER: "${PLANET_ETCD_MEMBER_NAME}=https://${PLANET_PUBLIC_IP}:2380",
      PLANET_ETCD_MEMBER_NAME: "${KUBE_NODE_NAME}",
      KUBE_NODE_NAME: "n1",
      PLANET_PUBLIC_IP: "10.0.0.1",
      X: "a${NOPE}b",
    });
    expect(env.ETCD_INITIAL_CLUSTER).toBe("n1=https://10.0.0.1:2380");
    expect(env.X).toBe("ab");
  });

  test("a reference cycle is an error", () => {
    expect(() => expandEnv({ A: "${B}", B: "${A}" })).toThrow(PlanetError);
  });

  test('NAME="value" lines survive quotes, backslashes and dollars', () => {
    const vars = { B: 'say "hi" \\ $HOME `x`', A: "plain" };
    const text = formatEnvFile(vars);
    expect(text).toBe('A="plain"\nB="say \\"hi\\" \\\\ \\$HOME \\`x\\`"\n');
    expect(parseEnvFile(text)).toEqual(vars);
  });

  test("--env needs NAME=value", () => {
    expect(parseEnvPair("A=b=c")).toEqual(["A", "b=c"]);
    expect(() => parseEnvPair("novalue")).toThrow(/expected NAME=value/);
    expect(() => parseEnvPair("1X=y")).toThrow(PlanetError);
  });
});

describe("host facts and flags", () => {
  test("capabilities come from the bounding set (this VM lacks CAP_SYS_RESOURCE)", () => {
    const caps = hostCapabilities("CapBnd:\t000001fffeffffff\n");
    expect(caps).toContain("CAP_SYS_ADMIN");
    expect(caps).toContain("CAP_CHECKPOINT_RESTORE");
    expect(caps).not.toContain("CAP_SYS_RESOURCE");
    expect(caps).toHaveLength(40);
  });

  test("RLIMIT_NOFILE follows the host's hard limit", () => {
    expect(hostNofile("Max open files            1024                 20000                files\n")).toBe(20000);
  });

  test("CIDRs: the first IP of the service subnet, overlap, bad input", () => {
    expect(firstIp(parseCidr("10.100.0.0/16", "--service-subnet"))).toBe("10.100.0.1");
    expect(parseCidr("10.244.7.9/16", "--pod-subnet").text).toBe("10.244.0.0/16");
    expect(overlaps(parseCidr("10.0.0.0/8", "a"), parseCidr("10.244.0.0/16", "b"))).toBe(true);
    expect(overlaps(parseCidr("10.100.0.0/16", "a"), parseCidr("10.244.0.0/16", "b"))).toBe(false);
    expect(() => parseCidr("10.100.0.0", "--service-subnet")).toThrow(/--service-subnet 10.100.0.0: expected an IPv4 CIDR/);
  });

  test("the rootfs a binary lives in", () => {
    expect(ownImageRootfs("/opt/planet/rootfs/usr/bin/planet")).toBe("/opt/planet/rootfs");
    expect(ownImageRootfs("/usr/bin/bun")).toBeUndefined();
  });
});
