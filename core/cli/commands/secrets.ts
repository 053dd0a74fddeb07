import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { defineCommand } from "citty";
import { targets } from "../../../build.assets/targets.ts";
import { plugins } from "../../../plugins/index.ts";
import { checkSecrets, initSecrets, renewSecrets } from "../../../secrets/store.ts";
import { PlanetError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { ownImageRootfs, readManifest } from "../../manifest.ts";
import type { CertRequest } from "../../plugin.ts";
import { debugArg, multi } from "../_args.ts";

const log = logger("secrets");

/** The cert requests of a plugin set: a target, a comma list of plugins, or the image we live in. */
export function certRequests(choice: string | undefined): { from: string; requests: CertRequest[] } {
  if (!choice) {
    const own = ownImageRootfs();
    const image = own ? readManifest(own) : null;
    if (image) return { from: `image ${image.manifest.target}`, requests: image.manifest.certs };
  }
  const names = choice ? (targets[choice]?.plugins ?? choice.split(",")) : (targets.dev?.plugins ?? []);
  const requests = names.flatMap((n) => {
    const p = plugins.find((x) => x.name === n);
    if (!p)
      throw new PlanetError(
        "UNKNOWN_PLUGIN",
        `--plugins: no target or plugin named ${n} (targets: ${Object.keys(targets).join(", ")})`,
      );
    return p.certs ?? [];
  });
  return { from: choice ? `--plugins ${choice}` : "target dev", requests };
}

const dirArg = { dir: { type: "positional", description: "secrets directory", required: true } } as const;

const init = defineCommand({
  meta: { name: "init", description: "issue the cluster PKI (CA + every certificate the plugins request) into <dir>" },
  args: {
    ...debugArg,
    ...dirArg,
    domain: { type: "string", description: "cluster DNS domain, in the apiserver certificate (required)" },
    "service-subnet": {
      type: "string",
      description: "service CIDR; its first IP goes into the apiserver cert",
      default: "10.100.0.0/16",
    },
    ip: { type: "string", description: "node/public IP for SANs (repeatable); the first is $PUBLIC_IP" },
    host: { type: "string", description: "extra DNS name for SANs (repeatable)" },
    "node-name": { type: "string", description: "Kubernetes node name for the kubelet certs (default hostname)" },
    plugins: { type: "string", description: "target name or comma list of plugins whose requests to issue" },
    validity: { type: "string", description: "leaf validity in days", default: "365" },
    force: { type: "boolean", description: "reissue every leaf certificate (never the CA)" },
  },
  async run({ args, rawArgs }) {
    if (!args.domain) throw new PlanetError("BAD_DOMAIN", "--domain is required (e.g. --domain cluster.local)");
    const { from, requests } = certRequests(args.plugins);
    const t0 = performance.now();
    const res = await initSecrets(args.dir, requests, {
      domain: args.domain,
      serviceSubnet: args["service-subnet"],
      ips: multi(rawArgs, "ip", { split: true }),
      hosts: multi(rawArgs, "host", { split: true }),
      nodeName: args["node-name"] ?? hostname(),
      validityDays: Number(args.validity),
      force: !!args.force,
    });
    const ms = Math.round(performance.now() - t0);
    log.success(
      `${args.dir}: issued ${res.issued.length} (${res.issued.join(", ") || "none"}), kept ${res.kept.length} — ${from}, ${ms} ms`,
    );
  },
});

const check = defineCommand({
  meta: { name: "check", description: "table of every certificate; exit 1 if any is expired, invalid or expiring soon" },
  args: {
    ...debugArg,
    ...dirArg,
    "warn-days": { type: "string", description: "flag certificates expiring within this many days", default: "30" },
    json: { type: "boolean", description: "machine-readable output" },
    quiet: { type: "boolean", description: "no output, exit code only" },
  },
  run({ args }) {
    const rows = checkSecrets(args.dir, Number(args["warn-days"]));
    const bad = rows.filter((r) => r.status !== "ok");
    if (args.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else if (!args.quiet) {
      const header = ["NAME", "STATUS", "DAYS", "NOT AFTER", "CHAIN", "SUBJECT", "SANS"];
      const body = rows.map((r) => [
        r.name,
        r.status,
        String(r.daysLeft),
        r.notAfter.slice(0, 10),
        r.chainValid ? "ok" : "BAD",
        r.subject,
        r.sans.join(","),
      ]);
      const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? "").length)));
      const fmt = (cols: string[]) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ");
      process.stdout.write(`${[fmt(header), ...body.map(fmt)].join("\n")}\n`);
    }
    if (bad.length) {
      if (!args.quiet)
        process.stderr.write(
          `CERTS_NOT_OK: ${bad.map((b) => `${b.name} ${b.status}`).join(", ")} (fix: planet secrets renew ${args.dir})\n`,
        );
      process.exitCode = 1;
    }
  },
});

const renew = defineCommand({
  meta: { name: "renew", description: "reissue, with the same keys, leaf certificates expiring within --warn-days" },
  args: {
    ...debugArg,
    ...dirArg,
    "warn-days": { type: "string", description: "renew what expires within this many days", default: "30" },
    validity: { type: "string", description: "new validity in days (default: as issued, at least a year)" },
  },
  async run({ args }) {
    if (!existsSync(join(args.dir))) throw new PlanetError("NO_SECRETS", `${args.dir} does not exist`);
    const renewed = await renewSecrets(args.dir, Number(args["warn-days"]), args.validity ? Number(args.validity) : undefined);
    log.success(renewed.length ? `renewed ${renewed.join(", ")}` : "nothing to renew");
  },
});

export default defineCommand({
  meta: { name: "secrets", description: "the cluster PKI: init, check, renew" },
  subCommands: { init, check, renew },
});
