import { describe, expect, test } from "bun:test";
import { compared, figure } from "./_table.ts";

describe("bench figures beside the last recorded ones", () => {
  test("a figure is a number with a unit; times and memory are better lower, throughput higher", () => {
    expect(figure("3.1 s")).toEqual({ n: 3.1, lowerBetter: true });
    expect(figure("153 MiB")).toEqual({ n: 153, lowerBetter: true });
    expect(figure("940 Mbit/s")).toEqual({ n: 940, lowerBetter: false });
    expect(figure("0.4 / 0.9 ms")).toEqual({ n: 0.4, lowerBetter: true });
    expect(figure("2000 / 0")).toBeNull();
    expect(figure("≤ 4 s")).toBeNull();
  });

  test("worse by more than 10 % is flagged, in the direction the unit says; new measures have no last", () => {
    const previous = {
      title: "t",
      date: "2026-12-01T00:00:00Z",
      commit: "abc",
      machine: { host: "h", cpus: 2, memGiB: 24, kernel: "6" },
      rows: [
        ["measure", "value", "target"],
        ["ready", "4.0 s", ""],
        ["memory", "300 MiB", ""],
        ["throughput", "1000 Mbit/s", ""],
      ],
    };
    const rows = compared(
      [
        ["measure", "value", "target"],
        ["ready", "4.3 s", ""],
        ["memory", "340 MiB", ""],
        ["throughput", "850 Mbit/s", ""],
        ["new one", "1 s", ""],
      ],
      previous,
    );
    expect(rows[0]).toEqual(["measure", "value", "target", "last", ""]);
    expect(rows[1]).toEqual(["ready", "4.3 s", "", "4.0 s", ""]);
    expect(rows[2]).toEqual(["memory", "340 MiB", "", "300 MiB", "worse by 13 %"]);
    expect(rows[3]).toEqual(["throughput", "850 Mbit/s", "", "1000 Mbit/s", "worse by 15 %"]);
    expect(rows[4]).toEqual(["new one", "1 s", "", "", ""]);
  });
});
