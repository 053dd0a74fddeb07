import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadBundle, ProgressParser, prepareReportDir } from "./conformance.ts";

/** ginkgo v2.32's verbose output, in the shapes its default reporter writes (reporters/default_reporter.go). */
const OUTPUT = `Running Suite: Kubernetes e2e suite - /work
Random Seed: 1764630000 - will randomize all specs

Will run 4 of 7311 specs
Running in parallel across 2 processes
------------------------------
• [12.508 seconds]
[sig-network] DNS should provide DNS for the cluster [Conformance]
k8s.io/kubernetes/test/e2e/network/dns.go:50
------------------------------
• [FAILED] [31.002 seconds]
[sig-apps] Deployment [It] deployment should support rollover [Conformance]
k8s.io/kubernetes/test/e2e/apps/deployment.go:132
------------------------------
↺ [FLAKEY TEST - TOOK 2 ATTEMPTS TO PASS] [3.100 seconds]
------------------------------
S [SKIPPED] [0.001 seconds]
[sig-node] Pods should be skipped at run time
------------------------------

Summarizing 1 Failure:
  [FAIL] [sig-apps] Deployment [It] deployment should support rollover [Conformance]
  k8s.io/kubernetes/test/e2e/apps/deployment.go:132

Ran 3 of 7311 Specs in 47.101 seconds
FAIL! -- 2 Passed | 1 Failed | 0 Pending | 7308 Skipped
`;

describe("conformance progress from ginkgo's output", () => {
  test("counts each finished spec, names the failures, and ends with one line", () => {
    const parser = new ProgressParser();
    const seen: number[] = [];
    for (const l of OUTPUT.split("\n")) if (parser.line(l)) seen.push(parser.p.passed + parser.p.failed);
    expect(parser.p).toMatchObject({ willRun: 4, total: 7311, passed: 2, failed: 1, skipped: 1, ran: 3 });
    expect(seen).toEqual([0, 1, 2, 3, 3, 3]);
    expect(parser.p.failures).toEqual(["[sig-apps] Deployment [It] deployment should support rollover [Conformance]"]);
    expect(parser.summary()).toBe("Ran 3 of 4 specs: 2 passed, 1 failed, 1 skipped");
  });
});

test("a failed suite setup is said in the last line", () => {
  const parser = new ProgressParser();
  for (const l of [
    "Will run 3 of 7311 specs",
    "[SynchronizedBeforeSuite] [FAILED] [0.001 seconds]",
    "Ran 0 of 7311 Specs in 0.4 seconds",
  ])
    parser.line(l);
  expect(parser.summary()).toBe("Ran 0 of 3 specs: 0 passed, 0 failed, 3 skipped (SynchronizedBeforeSuite failed: see e2e.log)");
});

describe("conformance preflight", () => {
  const dir = mkdtempSync(join(tmpdir(), "planet-conf-"));
  test("a missing or half bundle says how to build one", () => {
    expect(() => loadBundle(join(dir, "none"))).toThrow(/no conformance bundle at .*none: build it with `make conformance`/);
    mkdirSync(join(dir, "half"));
    writeFileSync(join(dir, "half/bundle.json"), "{}");
    expect(() => loadBundle(join(dir, "half"))).toThrow(/half\/bin\/e2e.test is missing: build it with/);
  });
  test("a report dir that cannot be written is named", () => {
    writeFileSync(join(dir, "file"), "");
    expect(() => prepareReportDir(join(dir, "file/sub"))).toThrow(/report dir .*file\/sub is not writable \(ENOTDIR\)/);
    expect(prepareReportDir(join(dir, "ok/sub"))).toBe(join(dir, "ok/sub"));
    rmSync(dir, { recursive: true, force: true });
  });
});
