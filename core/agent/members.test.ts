import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAgent, pointHost } from "./agent.ts";

const dir = mkdtempSync(join(tmpdir(), "planet-members-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What `serf members -format=json` prints (shape of serf 0.10). */
const serf = {
  members: [
    { name: "n2", addr: "10.0.0.2:7946", port: 7946, tags: { role: "node", cluster: "c" }, status: "left" },
    { name: "m1", addr: "10.0.0.1:7946", port: 7946, tags: { role: "master", cluster: "c" }, status: "alive" },
    { name: "n3", addr: "10.0.0.3:7946", port: 7946, tags: { role: "node", cluster: "c" }, status: "failed" },
    { name: "n4", addr: "10.0.0.4:7946", port: 7946, tags: { role: "node", cluster: "c" }, status: "leaving" },
  ],
};

describe("membership from the plugin's command", () => {
  test("members sorted by name; left, leaving and failed ones marked, not asked; this host answers for itself", async () => {
    const out = join(dir, "members.json");
    writeFileSync(out, JSON.stringify(serf));
    await using agent = await createAgent({
      node: "m1",
      ip: "10.0.0.1",
      roles: ["master"],
      checks: [],
      secretsDir: dir,
      leaderKey: "/planet/x",
      termSeconds: 5,
      rpcAddrs: [],
      rpcPort: 7575,
      members: [{ name: "from-flags", ip: "10.9.9.9" }],
      membersCommand: ["cat", out],
    });
    const members = await agent.view.members();
    expect(members.map((m) => [m.name, m.ip, m.status, m.roles])).toEqual([
      ["m1", "10.0.0.1", "healthy", ["master"]],
      ["n2", "10.0.0.2", "left", ["node"]],
      ["n3", "10.0.0.3", "failed", ["node"]],
      ["n4", "10.0.0.4", "leaving", ["node"]],
    ]);
  });

  test("a member whose name is not a host name or whose address is not an IP is left out", async () => {
    const out = join(dir, "members-bad.json");
    const bad = [
      { name: "n1; rm -rf /", addr: "10.0.0.4:7946", status: "alive" },
      { name: "n2", addr: "$(reboot):7946", status: "alive" },
      { name: "n3\n10.6.6.6 planet-master", addr: "10.0.0.6:7946", status: "alive" },
    ];
    writeFileSync(out, JSON.stringify({ members: [...serf.members, ...bad] }));
    await using agent = await createAgent({
      node: "m1",
      ip: "10.0.0.1",
      roles: ["master"],
      checks: [],
      secretsDir: dir,
      leaderKey: "/planet/x",
      termSeconds: 5,
      rpcAddrs: [],
      rpcPort: 7575,
      members: [],
      membersCommand: ["cat", out],
    });
    expect((await agent.view.members()).map((m) => m.name)).toEqual(["m1", "n2", "n3", "n4"]);
  });

  test("a command that fails falls back to the members the flags name", async () => {
    await using agent = await createAgent({
      node: "m1",
      ip: "10.0.0.1",
      roles: ["master"],
      checks: [],
      secretsDir: dir,
      leaderKey: "/planet/x",
      termSeconds: 5,
      rpcAddrs: [],
      rpcPort: 7575,
      members: [{ name: "m1", ip: "10.0.0.1" }],
      membersCommand: ["false"],
    });
    expect((await agent.view.members()).map((m) => m.name)).toEqual(["m1"]);
  });
});

describe("planet-master follows the leader", () => {
  test("the line is rewritten in place, others kept; an absent one is added", () => {
    const hosts = join(dir, "hosts");
    writeFileSync(hosts, "127.0.0.1\tlocalhost\n10.0.0.5\tn1\n10.0.0.1\tplanet-master\n");
    pointHost(hosts, "planet-master", "10.0.0.2");
    expect(readFileSync(hosts, "utf8")).toBe("127.0.0.1\tlocalhost\n10.0.0.5\tn1\n10.0.0.2\tplanet-master\n");
    writeFileSync(hosts, "127.0.0.1\tlocalhost\n");
    pointHost(hosts, "planet-master", "10.0.0.3");
    expect(readFileSync(hosts, "utf8")).toBe("127.0.0.1\tlocalhost\n10.0.0.3\tplanet-master\n");
  });

  test("a leader value that is not one IP address never reaches the file", () => {
    const hosts = join(dir, "hosts-bad");
    const before = "127.0.0.1\tlocalhost\n10.0.0.1\tplanet-master\n";
    writeFileSync(hosts, before);
    for (const bad of ["10.0.0.9\n10.6.6.6\tkubernetes", "evil.example.com", "10.0.0.1 10.0.0.2", "", "10.0.0.256"])
      expect(pointHost(hosts, "planet-master", bad)).toBe(false);
    expect(readFileSync(hosts, "utf8")).toBe(before);
    expect(pointHost(hosts, "planet-master", "fd00::1")).toBe(true);
  });
});
