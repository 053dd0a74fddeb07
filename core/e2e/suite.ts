/**
 * `planet test`: an end-to-end suite against any live cluster. Each case (cases.ts) is a name and a function;
 * cases share one namespace, created first and deleted last.
 */
import { type Kube, KubeError } from "../kube/client.ts";
import { CASES, type Ctx, Skip, until } from "./cases.ts";

export interface CaseResult {
  name: string;
  ok: boolean;
  skipped?: boolean;
  ms: number;
  error?: string;
}

export interface SuiteOptions {
  kube: Kube;
  /** Run only cases whose name matches. */
  focus?: RegExp;
  /** Image every pod runs (present on the nodes: pulled never). */
  image: string;
  /** A name outside the cluster and the address its upstream DNS server gives it (`--dns-outside`). */
  outside?: { name: string; ip: string };
  onResult?: (r: CaseResult) => void;
}

/** Runs the cases in order; a failing case does not stop the others. The namespace is always deleted. */
export async function runSuite(opts: SuiteOptions): Promise<CaseResult[]> {
  const ctx: Ctx = {
    kube: opts.kube,
    ns: `planet-e2e-${Math.random().toString(36).slice(2, 8)}`,
    image: opts.image,
    outside: opts.outside,
    vars: {},
  };
  const results: CaseResult[] = [];
  const record = (r: CaseResult) => {
    results.push(r);
    opts.onResult?.(r);
  };
  for (const [name, run] of CASES) {
    // The namespace is a prerequisite of everything after it; focus never skips it.
    if (opts.focus && !opts.focus.test(name) && name !== "namespace" && name !== "pod-running") {
      record({ name, ok: true, skipped: true, ms: 0 });
      continue;
    }
    const t0 = performance.now();
    try {
      await run(ctx);
      record({ name, ok: true, ms: Math.round(performance.now() - t0) });
    } catch (e) {
      if (e instanceof Skip) {
        record({ name, ok: true, skipped: true, ms: 0, error: e.message });
        continue;
      }
      record({ name, ok: false, ms: Math.round(performance.now() - t0), error: (e as Error).message });
    }
  }
  const t0 = performance.now();
  try {
    await ctx.kube.delete(`/api/v1/namespaces/${ctx.ns}`).catch((e) => {
      if (!(e instanceof KubeError && e.status === 404)) throw e;
    });
    await until(
      `namespace ${ctx.ns} gone`,
      async () =>
        ctx.kube.get(`/api/v1/namespaces/${ctx.ns}`).then(
          () => false,
          (e) => e instanceof KubeError && e.status === 404,
        ),
      120_000,
    );
    record({ name: "cleanup", ok: true, ms: Math.round(performance.now() - t0) });
  } catch (e) {
    record({ name: "cleanup", ok: false, ms: Math.round(performance.now() - t0), error: (e as Error).message });
  }
  return results;
}

export function junit(results: CaseResult[]): string {
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;");
  const failures = results.filter((r) => !r.ok).length;
  const cases = results.map((r) => {
    const head = `  <testcase classname="planet.e2e" name="${esc(r.name)}" time="${(r.ms / 1000).toFixed(3)}"`;
    if (r.skipped) return `${head}><skipped/></testcase>`;
    return r.ok ? `${head}/>` : `${head}><failure message="${esc(r.error ?? "")}"/></testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="planet-e2e" tests="${results.length}" failures="${failures}">\n${cases.join("\n")}\n</testsuite>\n`;
}
