/**
 * `planet test --conformance`: the upstream `[Conformance]` specs of the e2e.test built from the
 * cluster's own Kubernetes module, run against a live cluster. On a Planet cluster the bundle's
 * images are imported into the masters' registry first, so the specs run offline under their
 * upstream names. Progress is read from ginkgo's verbose output; JUnit and the e2e log go to the
 * report dir.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PlanetError } from "../errors.ts";
import { BUNDLE_FILE, type Bundle } from "../image/bundle.ts";
import { type Kube, KubeError } from "../kube/client.ts";

export const CONFORMANCE_FOCUS = "\\[Conformance\\]";

/** The bundle `planet build --target conformance` wrote, or a one-line error saying how to build it. */
export function loadBundle(dir: string): Bundle {
  const file = join(dir, BUNDLE_FILE);
  const how = "build it with `make conformance` (planet build --target conformance) or pass --bundle";
  if (!existsSync(file)) throw new PlanetError("NO_BUNDLE", `no conformance bundle at ${resolve(dir)}: ${how}`);
  let b: Bundle;
  try {
    b = JSON.parse(readFileSync(file, "utf8")) as Bundle;
  } catch {
    throw new PlanetError("NO_BUNDLE", `${file} is not a bundle record: ${how}`);
  }
  for (const bin of ["bin/e2e.test", "bin/ginkgo"])
    if (!existsSync(join(dir, bin))) throw new PlanetError("NO_BUNDLE", `${join(dir, bin)} is missing: ${how}`);
  return b;
}

/** Creates the report dir and proves it writable, or one line naming it. */
export function prepareReportDir(dir: string): string {
  const abs = resolve(dir);
  try {
    mkdirSync(abs, { recursive: true });
    accessSync(abs, constants.W_OK);
    const probe = join(abs, `.planet-write-${process.pid}`);
    writeFileSync(probe, "");
    rmSync(probe);
  } catch (e) {
    throw new PlanetError(
      "UNWRITABLE",
      `report dir ${abs} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): pass another --report-dir`,
    );
  }
  return abs;
}

interface NodeList {
  items: {
    metadata: { name: string };
    status?: { conditions?: { type: string; status: string }[] };
  }[];
}

/** The cluster answers and every Node is Ready, or one line saying which is not. */
export async function checkCluster(kube: Kube, server: string): Promise<{ nodes: number }> {
  let list: NodeList;
  try {
    list = await kube.get<NodeList>("/api/v1/nodes");
  } catch (e) {
    const why = e instanceof KubeError ? `HTTP ${e.status}: ${e.message}` : (e as Error).message;
    throw new PlanetError(
      "APISERVER_UNREACHABLE",
      `the cluster at ${server} is not reachable (${why}): start it, or pass --kubeconfig`,
    );
  }
  if (!list.items.length)
    throw new PlanetError("NOT_READY", `the cluster at ${server} has no Nodes yet: wait until they register`);
  const notReady = list.items.filter((n) => !n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
  if (notReady.length)
    throw new PlanetError(
      "NOT_READY",
      `the cluster at ${server} is not Ready: Node ${notReady.map((n) => n.metadata.name).join(", ")} not Ready (kubectl describe node)`,
    );
  return { nodes: list.items.length };
}

export interface Progress {
  willRun: number;
  total: number;
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
  ran?: number;
  /** A suite-level node (BeforeSuite, AfterSuite…) failed. */
  suiteFailed?: string;
}

/**
 * Reads ginkgo v2's verbose output line by line: "Will run X of Y specs", one `•` line per finished
 * spec (`• [FAILED]`, `• [PANICKED]`, `• [TIMEDOUT]` …), `S [SKIPPED]`, and the summary "Ran N of M Specs".
 */
export class ProgressParser {
  readonly p: Progress = { willRun: 0, total: 0, passed: 0, failed: 0, skipped: 0, failures: [] };
  private summarizing = false;

  line(raw: string): boolean {
    // In case --no-color was not honoured.
    const line = raw.replace(/\x1b\[[0-9;]*m/g, "").trimEnd();
    let m = /Will run (\d+) of (\d+) specs/.exec(line);
    if (m) {
      this.p.willRun = Number(m[1]);
      this.p.total = Number(m[2]);
      return true;
    }
    m = /^Ran (\d+) of (\d+) Specs/.exec(line);
    if (m) {
      this.p.ran = Number(m[1]);
      return true;
    }
    if (/^Summarizing \d+ Failures?:/.test(line)) this.summarizing = true;
    // The end's summary names each failed spec: "  [FAIL] [sig-x] Container [It] spec text".
    m = /^\s+\[(FAIL|PANICKED|TIMEDOUT|INTERRUPTED|ABORTED)\] (.+)$/.exec(line);
    if (this.summarizing && m) {
      this.p.failures.push(`${m[2]}`);
      return false;
    }
    m = /^\[((?:Synchronized)?(?:Before|After)Suite|ReportAfterSuite)\] \[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\]/.exec(line);
    if (m) {
      this.p.suiteFailed ??= m[1];
      return true;
    }
    if (/^\s*• \[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED|ABORTED)\]/.test(line)) {
      this.p.failed++;
      return true;
    }
    if (/^\s*(•|↺ \[FLAKEY TEST[^\]]*\]) \[[\d.]+ seconds\]/.test(line)) {
      this.p.passed++;
      return true;
    }
    if (/^\s*S \[SKIPPED\]/.test(line)) {
      this.p.skipped++;
      return true;
    }
    return false;
  }

  summary(): string {
    const ran = this.p.ran ?? this.p.passed + this.p.failed;
    const skipped = Math.max(this.p.skipped, this.p.willRun - ran);
    const suite = this.p.suiteFailed ? ` (${this.p.suiteFailed} failed: see e2e.log)` : "";
    return `Ran ${ran} of ${this.p.willRun} specs: ${this.p.passed} passed, ${this.p.failed} failed, ${skipped} skipped${suite}`;
  }
}

/**
 * Imports the bundle's images into a running Planet bubble's registry: a tar of the layout folders
 * piped into the command the image's registry plugin names (PLANET_IMAGES_IMPORT), through `planet exec`.
 */
export async function importImages(
  bundleDir: string,
  rootfs: string,
  env: Record<string, string>,
  self: string[],
): Promise<void> {
  const cmd = env.PLANET_IMAGES_IMPORT;
  if (!cmd)
    throw new PlanetError(
      "NO_IMPORT",
      `the bubble of ${rootfs} has no image import (PLANET_IMAGES_IMPORT): run on a master, whose image has the registry plugin`,
    );
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const pipeline = `tar -C ${q(join(bundleDir, "images"))} -cf - . | ${self.map(q).join(" ")} exec -i --rootfs ${q(rootfs)} ${q(cmd)}`;
  const child = spawn("bash", ["-o", "pipefail", "-c", pipeline], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const code = await new Promise<number>((res) => child.on("close", (c) => res(c ?? 1)));
  if (code !== 0)
    throw new PlanetError(
      "IMPORT_FAILED",
      `importing the bundle's images into ${rootfs} failed (exit ${code}): ${out.trim().split("\n").at(-1) ?? ""} (the bubble's journal says more: planet exec journalctl -n 50)`,
    );
}

export interface ConformanceOptions {
  bundleDir: string;
  kubeconfig: string;
  kubectl: string;
  reportDir: string;
  focus: string;
  skip?: string;
  /** ginkgo's label query; `Conformance` for the conformance run. */
  labelFilter: string;
  parallel: number;
  /** ginkgo's suite timeout (e.g. `24h`, `90m`): specs finished by then are reported. */
  timeout: string;
  /** Called with the progress after each finished spec and once a second. */
  onProgress: (p: Progress, elapsedSec: number) => void;
}

/**
 * Runs e2e.test (under the ginkgo CLI when parallel: `[Serial]` specs then run alone at the end);
 * returns the parsed progress and ginkgo's exit code. The whole output goes to <report-dir>/e2e.log.
 */
export async function runConformance(o: ConformanceOptions): Promise<{ progress: Progress; exitCode: number; summary: string }> {
  const e2e = join(resolve(o.bundleDir), "bin/e2e.test");
  const e2eArgs = [
    `--kubeconfig=${resolve(o.kubeconfig)}`,
    "--provider=skeleton",
    `--kubectl-path=${resolve(o.kubectl)}`,
    `--report-dir=${o.reportDir}`,
    "--disable-log-dump",
    "--dns-domain=cluster.local",
  ];
  const ginkgoArgs = [
    // Only the labelled specs ([Conformance] ones by default), whatever --focus picks among them.
    `--label-filter=${o.labelFilter}`,
    `--focus=${o.focus}`,
    ...(o.skip ? [`--skip=${o.skip}`] : []),
    `--timeout=${o.timeout}`,
    "--no-color",
    "-v",
  ];
  const cmd =
    o.parallel > 1
      ? [join(resolve(o.bundleDir), "bin/ginkgo"), `--procs=${o.parallel}`, ...ginkgoArgs, e2e, "--", ...e2eArgs]
      : [e2e, ...ginkgoArgs.map((a) => a.replace(/^--?/, "--ginkgo.")), ...e2eArgs];
  const log = createWriteStream(join(o.reportDir, "e2e.log"));
  log.write(`$ ${cmd.join(" ")}\n`);
  const parser = new ProgressParser();
  const t0 = Date.now();
  const elapsed = () => Math.round((Date.now() - t0) / 1000);
  const child = spawn(cmd[0] as string, cmd.slice(1), {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, KUBECONFIG: resolve(o.kubeconfig) },
  });
  let rest = "";
  const feed = (chunk: Buffer) => {
    log.write(chunk);
    const lines = (rest + chunk.toString("utf8")).split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) if (parser.line(l)) o.onProgress(parser.p, elapsed());
  };
  child.stdout.on("data", feed);
  child.stderr.on("data", feed);
  const tick = setInterval(() => o.onProgress(parser.p, elapsed()), 1000);
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const exitCode = await new Promise<number>((res) => child.on("close", (code) => res(code ?? 1)));
  clearInterval(tick);
  process.off("SIGINT", forward);
  process.off("SIGTERM", forward);
  if (rest) parser.line(rest);
  await new Promise<void>((res) => log.end(res));
  return { progress: parser.p, exitCode, summary: parser.summary() };
}
