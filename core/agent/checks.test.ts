import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { poll } from "../util.ts";
import { CheckRunner, type RunnableCheck } from "./checks.ts";

/** Waits until `cond` holds (10 s at most), failing the test with `what` otherwise. */
async function until(what: string, cond: () => boolean): Promise<void> {
  if ((await poll(cond, 10_000, 20)).value !== true) throw new Error(`never: ${what}`);
}

/** Processes whose command line holds `marker` (the probe and anything it started). */
function alive(marker: string): string[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(marker);
      } catch {
        return false;
      }
    });
}

describe("probes never leak or stall", () => {
  test("a command that hangs is killed with everything it started, reports timeout, and its schedule goes on", async () => {
    // A sleep whose length is unique to this run: its command line is the marker.
    const marker = `1000.${process.pid}`;
    // sh starts a child in the background that would outlive sh if only sh were killed.
    const hang: RunnableCheck = {
      name: "hangs",
      plugin: "t",
      command: ["sh", "-c", `sleep ${marker} & sleep ${marker}; echo never`],
      timeoutMs: 300,
    };
    const ok: RunnableCheck = { name: "fine", plugin: "t", command: ["true"] };
    const runner = new CheckRunner([hang, ok], { secretsDir: "/nonexistent" }, { readyEveryMs: 100, healthEveryMs: 100 });
    runner.start();
    // Three attempts kept: the schedule did not stop at the first timeout.
    await until("three timed-out attempts", () => runner.status.get("hangs")?.results.length === 3);
    runner.stop();
    const st = runner.status.get("hangs");
    for (const r of st?.results ?? []) expect(r.error).toMatch(/^timeout: sh -c .*killed after 300 ms$/);
    expect(runner.status.get("fine")?.state).toBe("ok");
    await until("nothing of the probes left", () => alive(marker).length === 0);
  });

  test("a host probe that never settles reports timeout; the next attempt still runs", async () => {
    let calls = 0;
    const stuck: RunnableCheck = {
      name: "stuck",
      plugin: "host",
      timeoutMs: 200,
      probe: () => {
        calls++;
        return new Promise<void>(() => {});
      },
    };
    const runner = new CheckRunner([stuck], { secretsDir: "/nonexistent" }, { readyEveryMs: 50, healthEveryMs: 50 });
    runner.start();
    await until("a third attempt after two timeouts", () => calls >= 3);
    runner.stop();
    expect(runner.status.get("stuck")?.results[0]?.error).toBe("timeout: stuck: no answer within 200 ms");
  });

  test("a unit check has a deadline too: a systemctl that never answers is cut off and reported", async () => {
    // A systemctl that hangs, first on PATH.
    const bin = mkdtempSync(join(tmpdir(), "planet-systemctl-"));
    writeFileSync(join(bin, "systemctl"), "#!/bin/sh\nexec sleep 30\n");
    chmodSync(join(bin, "systemctl"), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const runner = new CheckRunner([], { secretsDir: "/nonexistent" }, { readyEveryMs: 10_000, healthEveryMs: 10_000 });
      const r = await runner.runOnce({ name: "u", plugin: "t", unit: "x.service", timeoutMs: 300 });
      expect(r.ok).toBe(false);
      expect(r.error).toBe("timeout: systemctl is-active x.service: no answer within 300 ms");
    } finally {
      process.env.PATH = path;
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
