import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { CheckRunner, type RunnableCheck } from "./checks.ts";

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
    await Bun.sleep(2000);
    runner.stop();
    const st = runner.status.get("hangs");
    // Several attempts in 2 s (each ≈ 300 ms + 100 ms): the schedule did not stop at the first.
    expect(st?.results).toHaveLength(3);
    for (const r of st?.results ?? []) expect(r.error).toMatch(/^timeout: sh -c .*killed after 300 ms$/);
    expect(runner.status.get("fine")?.state).toBe("ok");
    await Bun.sleep(200);
    expect(alive(marker)).toEqual([]);
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
    await Bun.sleep(1000);
    runner.stop();
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(runner.status.get("stuck")?.results[0]?.error).toBe("timeout: stuck: no answer within 200 ms");
  });

  test("a unit check has a deadline too", async () => {
    const runner = new CheckRunner(
      [{ name: "u", plugin: "t", unit: "x.service", timeoutMs: 300 }],
      { secretsDir: "/nonexistent" },
      { readyEveryMs: 10_000, healthEveryMs: 10_000 },
    );
    // No systemd here: systemctl answers at once (or is missing); either way within the deadline.
    const r = await runner.runOnce({ name: "u", plugin: "t", unit: "x.service", timeoutMs: 300 });
    expect(r.ok).toBe(false);
    expect(r.ms).toBeLessThan(2300);
  });
});
