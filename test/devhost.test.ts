/**
 * Test hosts: two on one bridge reach each other; the bridge goes with its last host; a
 * /run/netns that something else made stays when the last test host goes.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { canBoot, planet, sh } from "./helpers.ts";

describe.if(canBoot && Bun.which("socat") !== null)("dev-host", () => {
  test("two test hosts on one bridge talk over TCP; the bridge goes with the last of them", async () => {
    for (const [n, ip] of [
      ["ptd-a", "10.208.0.1"],
      ["ptd-b", "10.208.0.2"],
    ] as const)
      expect(planet("dev-host", "up", n, "--ip", ip, "--bridge", "ptd-br").exitCode).toBe(0);
    try {
      const server = Bun.spawn(["ip", "netns", "exec", "ptd-b", "socat", "-u", "TCP-LISTEN:7001,reuseaddr", "STDOUT"], {
        stdout: "pipe",
      });
      await Bun.sleep(300);
      const sent = sh(["ip", "netns", "exec", "ptd-a", "socat", "-u", "STDIN", "TCP:10.208.0.2:7001,connect-timeout=3"], {
        stdin: "over the bridge\n",
      });
      expect(sent.exitCode).toBe(0);
      expect(await new Response(server.stdout).text()).toBe("over the bridge\n");
      // The host end (.254) is the bridge's, not a veth's.
      expect(sh(["ip", "-4", "-o", "addr", "show", "dev", "ptd-br"]).stdout).toContain("10.208.0.254/24");
      planet("dev-host", "down", "ptd-a");
      expect(existsSync("/sys/class/net/ptd-br")).toBe(true);
    } finally {
      planet("dev-host", "down", "ptd-a");
      planet("dev-host", "down", "ptd-b");
    }
    expect(existsSync("/sys/class/net/ptd-br")).toBe(false);
  });

  test("a /run/netns another tool made is left in place", () => {
    const had = existsSync("/run/netns");
    expect(sh(["ip", "netns", "add", "ptd-other"]).exitCode).toBe(0);
    try {
      expect(planet("dev-host", "up", "ptd-c", "--ip", "10.208.1.1").exitCode).toBe(0);
      expect(planet("dev-host", "down", "ptd-c").exitCode).toBe(0);
      expect(readdirSync("/run/netns")).toContain("ptd-other");
    } finally {
      sh(["ip", "netns", "del", "ptd-other"]);
    }
    expect(existsSync("/run/netns")).toBe(true); // still the other tool's, though empty now
    if (!had) {
      sh(["umount", "/run/netns"]);
      sh(["rmdir", "/run/netns"]);
    }
  });
});
