import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { pidAlive, procStart, withBubbleLock as withLock } from "./state.ts";

const root = mkdtempSync(join(tmpdir(), "planet-state-"));
/** The lock in a temp state root (never the host's /run/planet). */
const withBubbleLock = <T>(id: string, work: () => Promise<T>, busy: (pid: number) => never) => withLock(id, work, busy, root);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A PID no process has (a child that exited). */
function deadPid(): number {
  const p = Bun.spawnSync(["true"]);
  return p.pid;
}

describe("a bubble's owner: its PID and when that process started", () => {
  test("the same process is alive; another start time (a reused PID) or a gone PID is not", () => {
    const start = procStart(process.pid);
    expect(start).toMatch(/^\d+$/);
    expect(pidAlive(process.pid)).toBe(true);
    expect(pidAlive(process.pid, start as string)).toBe(true);
    expect(pidAlive(process.pid, "1")).toBe(false);
    expect(pidAlive(deadPid())).toBe(false);
    expect(procStart(deadPid())).toBeNull();
  });
});

describe("the cleanup lock after a crash", () => {
  const busy = (pid: number): never => {
    throw new Error(`busy ${pid}`);
  };
  test("one holder at a time; the lock goes when the work ends, even when it throws", async () => {
    const lock = join(root, "b1.lock");
    const inner = await withBubbleLock(
      "b1",
      async () => {
        expect(existsSync(lock)).toBe(true);
        // A second taker while this one holds it (a live holder) steps back.
        return withBubbleLock("b1", async () => "no", busy).catch((e: Error) => e.message);
      },
      busy,
    );
    expect(inner).toBe(`busy ${process.pid}`);
    expect(existsSync(lock)).toBe(false);
    await expect(withBubbleLock("b1", async () => Promise.reject(new Error("boom")), busy)).rejects.toThrow("boom");
    expect(existsSync(lock)).toBe(false);
  });

  test("a lock whose holder died, or whose PID is another process's now, is taken over", async () => {
    const lock = join(root, "b2.lock");
    writeFileSync(lock, `${deadPid()} 123\n`);
    expect(await withBubbleLock("b2", async () => "took over a dead holder's", busy)).toBe("took over a dead holder's");
    writeFileSync(lock, `${process.pid} 1\n`);
    expect(await withBubbleLock("b2", async () => "took over a reused PID's", busy)).toBe("took over a reused PID's");
    expect(existsSync(lock)).toBe(false);
  });
});
