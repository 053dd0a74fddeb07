import { describe, expect, test } from "bun:test";
import { fill } from "./_readme.ts";

const run = (title: string, date: string, value: string) => ({
  title,
  date,
  commit: "0123456789abcdef",
  machine: { cpus: 2, memGiB: 24, kernel: "6.18.44" },
  rows: [
    ["measure", "value"],
    ["ready", value],
  ],
});

describe("the README's bench figures come from the history", () => {
  test("a marked section takes the bench's last run, every table of it; others are left alone", () => {
    const readme = "# x\n<!-- bench:kube -->\nold\n<!-- /bench:kube -->\n<!-- bench:none -->\nkept\n<!-- /bench:none -->\n";
    const out = fill(readme, (b) =>
      b === "kube"
        ? [
            run("kube", "2026-12-01T10:00:00Z", "5.0 s"),
            run("kube", "2026-12-07T22:00:00Z", "4.2 s"),
            run("second table", "2026-12-07T22:05:00Z", "1 s"),
          ]
        : null,
    );
    expect(out).toContain("kube — 2026-12-07, commit 0123456789, 2 cores, 24 GiB, kernel 6.18.44");
    expect(out).toContain("| ready | 4.2 s |");
    expect(out).toContain("second table — 2026-12-07");
    expect(out).not.toContain("5.0 s");
    expect(out).not.toContain("old");
    expect(out).toContain("<!-- bench:none -->\nkept\n<!-- /bench:none -->");
    // Filling again changes nothing.
    expect(fill(out, (b) => (b === "kube" ? [run("kube", "2026-12-07T22:00:00Z", "4.2 s")] : null))).toContain(
      "| ready | 4.2 s |",
    );
  });
});

describe("make bench on a machine that cannot boot bubbles", () => {
  test("one line naming what is missing, exit 1 (here: not root)", () => {
    const bun = process.execPath;
    const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bun, "bench/_check.ts"], {
      cwd: `${import.meta.dir}/..`,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString().trim()).toBe(
      "BENCH_CANNOT_BOOT: the benches boot bubbles; this machine lacks root (run make bench as root)",
    );
  });
});
