/**
 * The bubble itself: a small real image (secrets + agent + the example plugin) booted under runc
 * with systemd as PID 1, in a test host, then stopped — and the host compared before and after.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readState } from "../core/bubble/state.ts";
import { certRequests } from "../core/cli/commands/secrets.ts";
import { initSecrets } from "../secrets/init.ts";
import {
  buildTest,
  CLI,
  canBoot,
  hostSnapshot,
  planet,
  planetAsync,
  REPO,
  SMALL_IMAGE,
  sh,
  testHost,
  waitFor,
} from "./helpers.ts";

const HOST = "pt-bubble";
const IP = "10.212.0.1";
const CLUSTER = "bubbletest";

describe.if(canBoot)("bubble: planet start | exec | stop", () => {
  let rootfs = "";
  let before: Record<string, unknown> = {};
  let host: ReturnType<typeof testHost> | undefined;
  const inBubble = (...cmd: string[]) => planet("exec", "--rootfs", rootfs, ...cmd);
  const startArgs = () => [
    "start",
    "--rootfs",
    rootfs,
    "--netns",
    HOST,
    "--cluster-id",
    CLUSTER,
    "--node-name",
    "bubble-node",
    "--env",
    "GREETING=hello world",
    "--data-dir",
    join(REPO, "build", "test-bubble-data"),
    "--secrets-dir",
    join(REPO, "build", "test-bubble-secrets"),
  ];

  beforeAll(async () => {
    rootfs = join(buildTest("bubble", SMALL_IMAGE), "rootfs");
    await initSecrets(join(REPO, "build", "test-bubble-secrets"), certRequests("node").requests, {
      domain: "bubble.local",
      serviceSubnet: "10.100.0.0/16",
      ips: [IP],
      hosts: [],
      nodeName: "bubble-node",
      validityDays: 30,
    });
    before = hostSnapshot();
    host = testHost(HOST, IP);
  }, 900_000);
  afterAll(() => {
    if (readState(`planet-${CLUSTER}-${HOST}`)) planet("stop", "--rootfs", rootfs, "--timeout", "20");
    host?.[Symbol.dispose]();
  });

  test("start reports ready; systemd is running; the plugin unit is active; the environment has the flags", () => {
    const res = planet(...startArgs(), "--detach");
    expect(res.exitCode).toBe(0);
    expect(res.stderr).toContain("ready in");
    const state = inBubble("systemctl", "is-system-running").stdout.trim();
    // On failure the diff names the failed units.
    const failed = state === "running" ? "" : inBubble("systemctl", "--failed", "--no-legend").stdout;
    expect({ state, failed }).toEqual({ state: "running", failed: "" });
    expect(inBubble("systemctl", "is-active", "hello.service").stdout.trim()).toBe("active");
    const env = readFileSync(join(rootfs, "etc/container-environment"), "utf8");
    for (const line of [
      `PLANET_PUBLIC_IP="${IP}"`,
      `KUBE_CLUSTER_ID="${CLUSTER}"`,
      'KUBE_NODE_NAME="bubble-node"',
      'KUBE_SERVICE_SUBNET="10.100.0.0/16"',
      'KUBE_POD_SUBNET="10.244.0.0/16"',
      'GREETING="hello world"',
      'HELLO_PORT="8088"',
      `PLANET_LEADER_KEY="/planet/cluster/${CLUSTER}/master"`,
      // This image's plugins declare no data volume: the core mounts only its own state volume.
      'PLANET_VOLUMES="/ext/state"',
    ])
      expect(env).toContain(line);
    expect(inBubble("findmnt", "-n", "/ext/state").exitCode).toBe(0);
    expect(inBubble("findmnt", "-n", "/ext/etcd").exitCode).not.toBe(0);
    // systemd's CONTAINER_INTERFACE: it knows it is in a container named planet, with a stable machine id.
    expect(inBubble("systemd-detect-virt", "--container").stdout.trim()).toBe("container-other");
    expect(inBubble("cat", "/etc/machine-id").stdout.trim()).toMatch(/^[0-9a-f]{32}$/);
    // The service answers inside the test host's network namespace.
    expect(inBubble("curl", "-sf", "http://127.0.0.1:8088/").stdout).toContain("hello from planet");
  });

  test("exec propagates exit codes, works without a tty, and sets the environment", () => {
    expect(inBubble("false").exitCode).toBe(1);
    expect(inBubble("sh", "-c", "exit 7").exitCode).toBe(7);
    const env = inBubble("sh", "-c", 'echo "$GREETING|$KUBE_NODE_NAME|$PATH"');
    expect(env.exitCode).toBe(0);
    expect(env.stdout.trim()).toBe("hello world|bubble-node|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect(inBubble("ls", "-d", "/ext/state", "/var/state/root.cert").exitCode).toBe(0);
    expect(inBubble("touch", "/var/state/x").exitCode).not.toBe(0); // secrets are read-only inside
    // Named by the flags that started it, as an installed image is (no rootfs path to give).
    expect(planet("exec", "--cluster-id", CLUSTER, "--netns", HOST, "--", "hostname").exitCode).toBe(0);
    expect(planet("exec", "--data-dir", join(REPO, "build", "test-bubble-data"), "--", "sh", "-c", "exit 3").exitCode).toBe(3);
    const none = planet("stop", "--cluster-id", "nope");
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(
      new RegExp(`NOT_RUNNING: no bubble runs with --cluster-id nope \\(running: .*planet-${CLUSTER}-${HOST}`),
    );
  });

  test("planet status shows every check of every plugin; a stopped unit turns red, then green again", async () => {
    const status = (...extra: string[]) => planet("status", "--rootfs", rootfs, "--local", ...extra);
    const checksOf = () => {
      const res = status("--json");
      const json = JSON.parse(res.stdout) as { members: { checks: { name: string; plugin: string; state: string }[] }[] };
      return { exitCode: res.exitCode, checks: Object.fromEntries((json.members[0]?.checks ?? []).map((c) => [c.name, c])) };
    };
    // Every check the image declares is there, with its plugin (the agent itself is not etcd-backed here).
    const manifest = JSON.parse(readFileSync(join(rootfs, "etc/planet/manifest.json"), "utf8")) as {
      checks: { name: string; plugin: string }[];
    };
    await waitFor("all checks ran", () => Object.values(checksOf().checks).every((c) => c.state !== "pending"), 30_000, 500);
    const first = checksOf();
    for (const c of manifest.checks) expect(first.checks[c.name]?.plugin).toBe(c.plugin);
    await waitFor("hello healthy", () => checksOf().checks["hello-http"]?.state === "ok", 20_000, 500);
    const human = status();
    expect(human.stdout).toContain("hello");
    expect(human.stdout).toMatch(/ok +hello-http/);

    expect(inBubble("systemctl", "stop", "hello.service").exitCode).toBe(0);
    await waitFor("hello red", () => checksOf().checks["hello-running"]?.state === "failed", 15_000, 250);
    expect(status().exitCode).toBe(1);
    expect(status().stdout).toMatch(/failed +hello-running {2}hello.service is (inactive|failed)/);

    expect(inBubble("systemctl", "start", "hello.service").exitCode).toBe(0);
    await waitFor(
      "hello green",
      () => {
        const s = checksOf();
        return s.checks["hello-running"]?.state === "ok" && s.checks["hello-http"]?.state === "ok";
      },
      15_000,
      250,
    );
    // The image's own compiled binary answers from the host, through the rootfs path.
    const compiled = sh([join(rootfs, "usr/bin/planet"), "status", "--local", "--json"]);
    expect(compiled.stderr).not.toContain("INTERNAL");
    expect(JSON.parse(compiled.stdout).members[0].checks.length).toBeGreaterThan(0);
  }, 90_000);

  test("the secrets plugin's renew unit renews expiring certificates from inside the bubble", () => {
    const dir = join(REPO, "build", "test-bubble-secrets");
    expect(planet("secrets", "check", "--quiet", dir).exitCode).toBe(1); // issued for 30 days, inside the 30-day window
    expect(inBubble("systemctl", "start", "planet-secrets-renew.service").exitCode).toBe(0);
    expect(planet("secrets", "check", dir).exitCode).toBe(0);
    expect(inBubble("touch", "/var/state/x").exitCode).not.toBe(0);
  });

  test("planet status without an agent answering exits 2 and names the unit", () => {
    expect(inBubble("systemctl", "stop", "planet-agent.service").exitCode).toBe(0);
    const res = planet("status", "--rootfs", rootfs);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.trim()).toMatch(/^AGENT_UNREACHABLE: .*planet-agent/);
    expect(inBubble("systemctl", "start", "planet-agent.service").exitCode).toBe(0);
  });

  test("a second start on the same rootfs is refused with one clear line", () => {
    const res = planet(...startArgs());
    expect(res.exitCode).toBe(1);
    expect(res.stderr.trim()).toMatch(/^ALREADY_RUNNING: bubble planet-bubbletest-pt-bubble is already running/);
    expect(res.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("a corrupt start.json is refused, never taken for a dead owner: the bubble lives on", () => {
    const file = `/run/planet/planet-${CLUSTER}-${HOST}/start.json`;
    const saved = readFileSync(file, "utf8");
    writeFileSync(file, "{ not json");
    try {
      const res = planet(...startArgs());
      expect(res.exitCode).toBe(1);
      expect(res.stderr.trim()).toStartWith(`CORRUPT_STATE: ${file} is not a bubble state`);
      // The bubble runs on (exec cannot find it by a state it cannot read: runc can).
      expect(sh(["runc", "--root", "/run/planet/runc", "state", `planet-${CLUSTER}-${HOST}`]).stdout).toContain(
        '"status": "running"',
      );
    } finally {
      writeFileSync(file, saved);
    }
  });

  test("two starts at once on one rootfs: one boots, the other is refused", async () => {
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    const [a, b] = await Promise.all([planetAsync([...startArgs(), "--detach"]), planetAsync([...startArgs(), "--detach"])]);
    expect([a.exitCode, b.exitCode].sort()).toEqual([0, 1]);
    expect((a.exitCode ? a : b).stderr).toContain("ALREADY_RUNNING");
    expect(inBubble("systemctl", "is-system-running", "--wait").stdout.trim()).toBe("running");
  });

  test("kill -9 of planet start: the next start cleans up and boots", async () => {
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    const proc = Bun.spawn([...CLI, ...startArgs()], { cwd: REPO, stdout: "ignore", stderr: "ignore" });
    await waitFor("foreground start ready", () => readState(`planet-${CLUSTER}-${HOST}`)?.phase === "ready", 60_000);
    proc.kill("SIGKILL");
    await proc.exited;
    expect(inBubble("true").exitCode).toBe(0); // the bubble outlives its owner...
    const again = planet(...startArgs(), "--detach"); // ...until the next start takes over
    expect(again.exitCode).toBe(0);
    expect(again.stderr).toContain("cleaning up after a planet start that died");
    // Nothing of the dead start lingers: one READY=1 listener, the new start's.
    const listeners = sh(["pgrep", "-f", `UNIX-RECV:/run/planet/planet-${CLUSTER}-${HOST}/notify/notify.sock`])
      .stdout.trim()
      .split("\n")
      .filter((p) => p && !readFileSync(`/proc/${p}/stat`, "utf8").includes(") Z "));
    expect(listeners).toEqual([String(readState(`planet-${CLUSTER}-${HOST}`)?.notifyPid)]);
    expect(inBubble("systemctl", "is-system-running").stdout.trim()).toBe("running");
  });

  test("after a crash: two starts racing, one cleans up and boots, the other steps back; a PID reused since is never signalled", async () => {
    const id = `planet-${CLUSTER}-${HOST}`;
    const crash = async () => {
      const owner = readState(id)?.pid as number;
      process.kill(owner, "SIGKILL");
      await waitFor("the owner gone", () => !existsSync(`/proc/${owner}`), 10_000, 50);
    };
    await crash();
    // Which of the two cleans up is not visible from outside (both detached starts show the bubble's one
    // log); that never both do is the cleanup lock's (core/bubble/state.test.ts). Here: one boots, the other
    // steps back, and the lock is gone.
    const [a, b] = await Promise.all([planetAsync([...startArgs(), "--detach"]), planetAsync([...startArgs(), "--detach"])]);
    expect([a.exitCode, b.exitCode].sort()).toEqual([0, 1]);
    expect((a.exitCode ? a : b).stderr).toContain("ALREADY_RUNNING");
    expect(`${a.stderr}${b.stderr}`).toContain("cleaning up after a planet start that died");
    expect(existsSync(join("/run/planet", `${id}.lock`))).toBe(false);
    expect(inBubble("systemctl", "is-system-running", "--wait").stdout.trim()).toBe("running");
    // The owner crashes again and its PID now names another process (here: one of ours, a sleep).
    await crash();
    const other = Bun.spawn(["sleep", "300"]);
    try {
      const file = join("/run/planet", id, "start.json");
      writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), pid: other.pid }));
      const stopped = planet("stop", "--rootfs", rootfs);
      expect(stopped.exitCode).toBe(0);
      expect(existsSync(`/proc/${other.pid}`)).toBe(true);
      expect(other.exitCode).toBeNull();
      expect(readState(id)).toBeNull();
    } finally {
      other.kill();
    }
    expect(planet(...startArgs(), "--detach").exitCode).toBe(0);
  }, 180_000);

  test("SIGTERM to a foreground start halts the bubble cleanly", async () => {
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    const proc = Bun.spawn([...CLI, ...startArgs()], { cwd: REPO, stdout: "ignore", stderr: "pipe" });
    await waitFor("foreground start ready", () => readState(`planet-${CLUSTER}-${HOST}`)?.phase === "ready", 60_000);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(readState(`planet-${CLUSTER}-${HOST}`)).toBeNull();
  });

  test("a data volume that fills up: a critical check names it and the host turns degraded; space freed, healthy again", async () => {
    if (readState(`planet-${CLUSTER}-${HOST}`)) expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    // The data dir on a small filesystem of its own (a loop-mounted file), as a host's data disk.
    const img = join(REPO, "build", "test-bubble-small.img");
    const mnt = join(REPO, "build", "test-bubble-small");
    rmSync(img, { force: true });
    mkdirSync(mnt, { recursive: true });
    expect(sh(["truncate", "-s", "64M", img]).exitCode).toBe(0);
    expect(sh(["mkfs.ext4", "-q", "-F", img]).exitCode).toBe(0);
    expect(sh(["mount", "-o", "loop", img, mnt]).exitCode).toBe(0);
    try {
      const args = startArgs();
      args[args.indexOf("--data-dir") + 1] = join(mnt, "data");
      expect(planet(...args, "--detach").exitCode).toBe(0);
      const check = (name: string) =>
        (
          JSON.parse(planet("status", "--rootfs", rootfs, "--local", "--json").stdout) as {
            members: { checks: { name: string; state: string; error?: string; results?: { error?: string }[] }[] }[];
          }
        ).members[0]?.checks.find((c) => c.name === name);
      const critical = "host-disk-ext-state-critical";
      await waitFor(`${critical} ok`, () => check(critical)?.state === "ok", 30_000, 500);
      // Filled to the last block from the host, as a runaway log would.
      sh(["fallocate", "-l", "60M", join(mnt, "data", "state", "fill")]);
      sh(["dd", "if=/dev/zero", `of=${join(mnt, "data", "state", "fill2")}`, "bs=1M", "status=none"]);
      const red = await waitFor(
        `${critical} red`,
        () => {
          const c = check(critical);
          return c?.state === "failed" ? c : null;
        },
        60_000,
        1000,
      );
      expect(JSON.stringify(red)).toContain("/ext/state is 100 % full");
      expect(planet("status", "--rootfs", rootfs, "--local").exitCode).toBe(1);
      // The bubble still answers; once space is freed it is healthy again.
      expect(inBubble("true").exitCode).toBe(0);
      rmSync(join(mnt, "data", "state", "fill"), { force: true });
      rmSync(join(mnt, "data", "state", "fill2"), { force: true });
      await waitFor(`${critical} ok again`, () => check(critical)?.state === "ok", 60_000, 1000);
      expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    } finally {
      if (readState(`planet-${CLUSTER}-${HOST}`)) planet("stop", "--rootfs", rootfs, "--timeout", "20");
      sh(["umount", mnt]);
      rmSync(img, { force: true });
      rmSync(mnt, { recursive: true, force: true });
    }
  }, 180_000);

  test("stop leaves the host as it was: mounts, cgroups, sysctls, runc, processes, links", async () => {
    planet(...startArgs(), "--detach");
    const res = planet("stop", "--rootfs", rootfs);
    expect(res.exitCode).toBe(0);
    host?.[Symbol.dispose]();
    host = undefined;
    expect(existsSync("/run/planet")).toBe(false);
    // The kernel finishes tearing down cgroups and reaping a moment after runc returns.
    const same = () => Bun.deepEquals(hostSnapshot(), before);
    await waitFor("host as before", same, 5000).catch(() => false);
    expect(hostSnapshot()).toEqual(before);
  });

  test("bad input: stop with nothing running, exec into nothing, rootfs that is not an image", () => {
    expect(planet("stop", "--rootfs", rootfs).stderr).toMatch(/^NOT_RUNNING: /);
    expect(planet("exec", "--rootfs", rootfs, "true").exitCode).toBe(1);
    const notImage = planet("start", "--rootfs", "/tmp", "--public-ip", "10.0.0.1");
    expect(notImage.exitCode).toBe(1);
    expect(notImage.stderr.trim()).toMatch(/^NOT_AN_IMAGE: /);
    const badNetns = planet("start", "--rootfs", rootfs, "--netns", "no-such-ns");
    expect(badNetns.stderr.trim()).toMatch(/^NO_NETNS: /);
  });
});
