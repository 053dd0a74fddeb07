import { existsSync, renameSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { execEnv } from "../../bubble/exec.ts";
import { findByRootfs, pidAlive } from "../../bubble/state.ts";
import {
  CONFORMANCE_FOCUS,
  checkCluster,
  importImages,
  loadBundle,
  prepareReportDir,
  runConformance,
} from "../../e2e/conformance.ts";
import { type CaseResult, junit, runSuite } from "../../e2e/suite.ts";
import { PlanetError } from "../../errors.ts";
import { Kube, loadKubeconfig } from "../../kube/client.ts";
import { ownImageRootfs } from "../../manifest.ts";
import { selfCommand } from "../../proc.ts";
import { debugArg } from "../_args.ts";

export default defineCommand({
  meta: { name: "test", description: "end-to-end suite against a live cluster (ours or any other)" },
  args: {
    ...debugArg,
    "kube-addr": { type: "string", description: "apiserver HOST:PORT (default: the kubeconfig's server)" },
    kubeconfig: { type: "string", description: "credentials (default $KUBECONFIG)" },
    focus: { type: "string", description: "run only cases (specs, with --conformance) matching this regex" },
    conformance: { type: "boolean", description: "run the upstream [Conformance] specs with the conformance bundle's e2e.test" },
    parallel: { type: "string", description: "--conformance: ginkgo processes ([Serial] specs still run alone)", default: "1" },
    skip: { type: "string", description: "--conformance: skip specs matching this regex" },
    "label-filter": {
      type: "string",
      description: "--conformance: ginkgo's label query picking the specs, e.g. 'Feature: containsAny NetworkPolicy'",
      default: "Conformance",
    },
    timeout: {
      type: "string",
      description: "--conformance: end the run after this long (e.g. 90m); finished specs are reported",
      default: "24h",
    },
    "report-dir": {
      type: "string",
      description: "--conformance: JUnit and e2e.log go here",
      default: "build/conformance-report",
    },
    bundle: { type: "string", description: "--conformance: the bundle folder (default build/conformance)" },
    rootfs: { type: "string", description: "--conformance: the Planet master bubble to import the bundle's images into" },
    kubectl: { type: "string", description: "--conformance: kubectl for the kubectl specs (default: the image's, or PATH)" },
    image: { type: "string", description: "image every node can pull", default: "docker.io/library/busybox:latest" },
    "dns-outside": {
      type: "string",
      description: "name=ip: a name outside the cluster its upstream DNS answers with ip (dns-outside case)",
    },
    json: { type: "boolean", description: "print results as JSON" },
    junit: { type: "string", description: "also write JUnit XML to this file" },
  },
  async run({ args }) {
    const kubeconfig = args.kubeconfig ?? process.env.KUBECONFIG;
    if (!kubeconfig || !existsSync(kubeconfig))
      throw new PlanetError(
        "NO_KUBECONFIG",
        `kubeconfig ${kubeconfig ?? "(none)"} not found: pass --kubeconfig or set KUBECONFIG`,
      );
    if (args["kube-addr"] !== undefined && !/^[^:/]+:\d+$/.test(args["kube-addr"]))
      throw new PlanetError("BAD_FLAG", `--kube-addr ${args["kube-addr"]}: expected HOST:PORT`);
    let focus: RegExp | undefined;
    try {
      focus = args.focus ? new RegExp(args.focus) : undefined;
    } catch (e) {
      throw new PlanetError("BAD_FLAG", `--focus: ${(e as Error).message}`);
    }
    const auth = loadKubeconfig(kubeconfig, args["kube-addr"] ? `https://${args["kube-addr"]}` : undefined);
    const kube = new Kube(auth);
    if (args.conformance) return conformance(args, kubeconfig, kube, auth.server);
    const print = (r: CaseResult) => {
      if (args.json) return;
      const mark = r.skipped ? "-" : r.ok ? "✓" : "✗";
      process.stdout.write(`${mark} ${r.name}${r.skipped ? " (skipped)" : ` (${r.ms} ms)`}${r.error ? `: ${r.error}` : ""}\n`);
    };
    let outside: { name: string; ip: string } | undefined;
    if (args["dns-outside"]) {
      const [name, ip] = args["dns-outside"].split("=");
      if (!name || !ip || isIP(ip) === 0)
        throw new PlanetError(
          "BAD_FLAG",
          `--dns-outside ${args["dns-outside"]}: expected name=ip, e.g. www.example.test=10.0.0.80`,
        );
      outside = { name, ip };
    }
    if (!args["kube-addr"]) throw new PlanetError("BAD_FLAG", "--kube-addr HOST:PORT is required (or --conformance)");
    const results = await runSuite({ kube, focus, image: args.image, outside, onResult: print });
    const failed = results.filter((r) => !r.ok);
    if (args.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    else process.stdout.write(`${results.filter((r) => r.ok && !r.skipped).length} passed, ${failed.length} failed\n`);
    if (args.junit) {
      writeFileSync(`${args.junit}.tmp`, junit(results));
      renameSync(`${args.junit}.tmp`, args.junit);
    }
    if (failed.length) process.exitCode = 1;
  },
});

interface ConformanceArgs {
  focus?: string;
  skip?: string;
  "label-filter": string;
  parallel: string;
  timeout: string;
  "report-dir": string;
  bundle?: string;
  rootfs?: string;
  kubectl?: string;
}

/** The checks that fail fast (bundle, report dir, cluster), the image import, then the run. */
async function conformance(args: ConformanceArgs, kubeconfig: string, kube: Kube, server: string): Promise<void> {
  const parallel = Number(args.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64)
    throw new PlanetError("BAD_FLAG", `--parallel ${args.parallel}: expected a whole number of processes, 1 to 64`);
  if (!/^\d+(s|m|h)$/.test(args.timeout))
    throw new PlanetError("BAD_FLAG", `--timeout ${args.timeout}: expected a duration like 90m or 24h`);
  for (const [flag, re] of [
    ["focus", args.focus],
    ["skip", args.skip],
  ] as const)
    try {
      if (re) new RegExp(re);
    } catch (e) {
      throw new PlanetError("BAD_FLAG", `--${flag}: ${(e as Error).message}`);
    }
  const rootfs = args.rootfs ? resolve(args.rootfs) : ownImageRootfs();
  const bundleDir = resolve(args.bundle ?? "build/conformance");
  const bundle = loadBundle(bundleDir);
  const reportDir = prepareReportDir(args["report-dir"]);
  const { nodes } = await checkCluster(kube, server);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const bubble = rootfs ? findByRootfs(rootfs) : undefined;
  if (rootfs && bubble && pidAlive(bubble.pid)) {
    const t0 = Date.now();
    await importImages(bundleDir, rootfs, execEnv(rootfs), selfCommand());
    say(`imported ${bundle.images.length} images into the registry of ${bubble.id} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  } else if (args.rootfs) throw new PlanetError("NOT_RUNNING", `no bubble runs from ${rootfs}: start it, or leave out --rootfs`);
  else say("no Planet bubble given (--rootfs): the cluster pulls the test images from their registries itself");
  const kubectl =
    args.kubectl ??
    [rootfs && join(rootfs, "usr/bin/kubectl"), Bun.which("kubectl")].find((p): p is string => !!p && existsSync(p));
  if (!kubectl) throw new PlanetError("COMMAND_MISSING", "no kubectl found: pass --kubectl, or --rootfs of a Planet image");
  say(
    `conformance: ${nodes} nodes, e2e.test ${bundle.assets.find((a) => a.name === "e2e")?.version ?? "?"}, ${parallel} process(es), report in ${reportDir}`,
  );
  const tty = process.stdout.isTTY;
  let last = "";
  const { exitCode, summary, progress } = await runConformance({
    bundleDir,
    kubeconfig,
    kubectl,
    reportDir,
    focus: args.focus ?? CONFORMANCE_FOCUS,
    skip: args.skip,
    labelFilter: args["label-filter"],
    parallel,
    timeout: args.timeout,
    onProgress: (p, sec) => {
      const line = `[${Math.floor(sec / 60)}m${String(sec % 60).padStart(2, "0")}s] ${p.passed + p.failed}/${p.willRun || "?"} specs done, ${p.failed} failed`;
      if (tty) process.stdout.write(`\r${line}`);
      else if (line.replace(/^\S+ /, "") !== last) say(line);
      last = line.replace(/^\S+ /, "");
    },
  });
  if (tty) process.stdout.write("\n");
  for (const f of progress.failures) say(`✗ ${f}`);
  say(summary);
  if (exitCode !== 0 || progress.failed > 0 || progress.suiteFailed) process.exitCode = 1;
}
