import { existsSync, renameSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { defineCommand } from "citty";
import { Kube, loadKubeconfig } from "../../e2e/kube.ts";
import { type CaseResult, junit, runSuite } from "../../e2e/suite.ts";
import { PlanetError } from "../../errors.ts";
import { debugArg } from "../_args.ts";

export default defineCommand({
  meta: { name: "test", description: "end-to-end suite against a live cluster (ours or any other)" },
  args: {
    ...debugArg,
    "kube-addr": { type: "string", description: "apiserver HOST:PORT", required: true },
    kubeconfig: { type: "string", description: "credentials (default $KUBECONFIG)" },
    focus: { type: "string", description: "run only cases matching this regex" },
    image: { type: "string", description: "image present on every node", default: "docker.io/library/busybox:local" },
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
    if (!/^[^:/]+:\d+$/.test(args["kube-addr"]))
      throw new PlanetError("BAD_FLAG", `--kube-addr ${args["kube-addr"]}: expected HOST:PORT`);
    let focus: RegExp | undefined;
    try {
      focus = args.focus ? new RegExp(args.focus) : undefined;
    } catch (e) {
      throw new PlanetError("BAD_FLAG", `--focus: ${(e as Error).message}`);
    }
    const kube = new Kube(loadKubeconfig(kubeconfig, `https://${args["kube-addr"]}`));
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
