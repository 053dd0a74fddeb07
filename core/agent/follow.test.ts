import { describe, expect, test } from "bun:test";
import type { LeaderView } from "./api.ts";
import { LeaderFollower } from "./follow.ts";

const view = (leader: string | null, masters?: unknown): LeaderView =>
  ({ leader, self: "", isLeader: false, paused: false, etcd: "up", ...(masters ? { masters } : {}) }) as LeaderView;

describe("a follower learns the leader and the masters from the masters' agents", () => {
  test("the masters a master names are asked from then on and handed over; malformed entries never are", async () => {
    const asked: string[] = [];
    const handed: string[][] = [];
    const answers: Record<string, LeaderView> = {
      "10.0.0.1": view("10.0.0.2", ["m1:10.0.0.1", "m2:10.0.0.2", "m3:10.0.0.3", "x;reboot:10.0.0.9", "m4:not-an-ip", 7]),
      "10.0.0.3": view("10.0.0.3", ["m2:10.0.0.2", "m3:10.0.0.3"]),
    };
    const f = new LeaderFollower(
      ["10.0.0.1"],
      async (m) => {
        asked.push(m);
        const a = answers[m];
        if (!a) throw new Error("connection refused");
        return a;
      },
      undefined,
      2000,
      (masters) => handed.push(masters),
    );
    expect(await f.currentLeader()).toBe("10.0.0.2");
    expect(handed).toEqual([["m1:10.0.0.1", "m2:10.0.0.2", "m3:10.0.0.3"]]);
    // m1 is gone: the follower asks the masters it learned, not only the one it started with.
    delete answers["10.0.0.1"];
    asked.length = 0;
    expect(await f.currentLeader()).toBe("10.0.0.3");
    expect(asked).toEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    expect(handed.at(-1)).toEqual(["m2:10.0.0.2", "m3:10.0.0.3"]);
    // The same list again is no change.
    expect(await f.currentLeader()).toBe("10.0.0.3");
    expect(handed).toHaveLength(2);
    await f.close();
  });
});
