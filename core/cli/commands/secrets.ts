import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { defineCommand } from "citty";
import { targets } from "../../../build.assets/targets.ts";
import { plugins } from "../../../plugins/index.ts";
import { checkSecrets } from "../../../secrets/check.ts";
import { reencryptSecrets, rotateEncryption, STAGES, type Stage } from "../../../secrets/encryption.ts";
import { issueHost } from "../../../secrets/host.ts";
import { initSecrets } from "../../../secrets/init.ts";
import { joinCluster } from "../../../secrets/join.ts";
import { CA_STAGES, type CaStage, rotateCA } from "../../../secrets/rotate-ca.ts";
import { parseToken } from "../../../secrets/token.ts";
import { PlanetError } from "../../errors.ts";
import { Kube, loadKubeconfig } from "../../kube/client.ts";
import { logger } from "../../log.ts";
import { certsFor, ownImageRootfs, readManifest } from "../../manifest.ts";
import { requireIp } from "../../net.ts";
import { type CertRequest, issuedTo, ROLES, type Role } from "../../plugin.ts";
import { debugArg, multi, parseValidity } from "../_args.ts";
import { renewCmd } from "./secrets-renew.ts";

const log = logger("secrets");

/**
 * The cert requests of a plugin set: a target, a comma list of plugins, or the image we live in
 * (default `fallback`). With `roles`, only the requests of plugins that run on those roles.
 */
export function certRequests(
  choice: string | undefined,
  roles?: Role[],
  fallback = "dev",
): { from: string; requests: CertRequest[] } {
  const active = (pluginRoles: readonly Role[]) => !roles || pluginRoles.some((r) => roles.includes(r));
  // A certificate with its own roles goes only to hosts with one of them.
  const mine = (c: CertRequest) => !roles || issuedTo(c, roles);
  if (!choice) {
    const own = ownImageRootfs();
    const image = own ? readManifest(own) : null;
    if (image) {
      const on = new Set(image.manifest.plugins.filter((p) => active(p.roles)).map((p) => p.name));
      return {
        from: `image ${image.manifest.target}`,
        requests: image.manifest.certs.filter((c) => on.has(c.plugin) && mine(c)),
      };
    }
  }
  const names = choice ? (targets[choice]?.plugins ?? choice.split(",")) : (targets[fallback]?.plugins ?? []);
  const requests = names.flatMap((n) => {
    const p = plugins.find((x) => x.name === n);
    if (!p)
      throw new PlanetError(
        "UNKNOWN_PLUGIN",
        `--plugins: no target or plugin named ${n} (targets: ${Object.keys(targets).join(", ")})`,
      );
    return active(p.roles) ? (p.certs ?? []).filter(mine) : [];
  });
  return { from: choice ? `--plugins ${choice}` : `target ${fallback}`, requests };
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
    validity: { type: "string", description: "leaf validity: days, or with a unit (30d, 12h, 10m for tests)", default: "365" },
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
      validityDays: parseValidity(args.validity),
      force: !!args.force,
    });
    const ms = Math.round(performance.now() - t0);
    log.success(
      `${args.dir}: issued ${res.issued.length} (${res.issued.join(", ") || "none"}), kept ${res.kept.length} — ${from}, ${ms} ms`,
    );
  },
});

const host = defineCommand({
  meta: {
    name: "host",
    description: "issue one host's secrets from the cluster's: its own certificates, no CA key (unless its role needs one)",
  },
  args: {
    ...debugArg,
    "cluster-dir": { type: "positional", description: "the directory planet secrets init wrote", required: true },
    dir: {
      type: "positional",
      description: "the host's secrets directory (passed to planet start --secrets-dir)",
      required: true,
    },
    "node-name": { type: "string", description: "the host's Kubernetes node name (required)" },
    ip: { type: "string", description: "the host's address (repeatable; the first is its public IP; required)" },
    role: { type: "string", description: "master and/or node (repeatable; required)" },
    host: { type: "string", description: "extra DNS name for the host's SANs (repeatable)" },
    plugins: { type: "string", description: "target or comma list of plugins (default: the target named by the role)" },
    validity: { type: "string", description: "leaf validity: days, or with a unit (30d, 12h, 10m for tests)", default: "365" },
    force: { type: "boolean", description: "reissue every leaf certificate" },
  },
  async run({ args, rawArgs }) {
    if (!args["node-name"]) throw new PlanetError("BAD_FLAG", "--node-name is required: the name the host joins as");
    const roles = multi(rawArgs, "role", { split: true }) as Role[];
    for (const r of roles) if (!ROLES.includes(r)) throw new PlanetError("BAD_FLAG", `--role ${r}: expected master or node`);
    const fallback = roles.length === 1 ? (roles[0] as string) : "dev";
    const { from, requests } = certRequests(args.plugins, roles, fallback);
    const res = await issueHost(args["cluster-dir"], args.dir, requests, {
      nodeName: args["node-name"],
      ips: multi(rawArgs, "ip", { split: true }),
      hosts: multi(rawArgs, "host", { split: true }),
      roles,
      validityDays: parseValidity(args.validity),
      force: !!args.force,
    });
    log.success(
      `${args.dir}: host ${args["node-name"]} (${roles.join("+")}) — issued ${res.issued.length}, kept ${res.kept.length} — ${from}`,
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

const joinCmd = defineCommand({
  meta: {
    name: "join",
    description:
      "a host's secrets from a master, with a token (PLANET_TOKEN or --token): keys made here, certificates issued there (what planet start --join runs)",
  },
  args: {
    ...debugArg,
    dir: { type: "positional", description: "the host's secrets directory (new or empty)", required: true },
    master: { type: "string", description: "a master's address (required)" },
    token: { type: "string", description: "join token (default PLANET_TOKEN: a command line is visible to every process)" },
    "node-name": { type: "string", description: "the host's Kubernetes node name (required)" },
    ip: { type: "string", description: "the host's address, the one it joins from (required)" },
    role: { type: "string", description: "the host's role (node)", default: "node" },
    rootfs: {
      type: "string",
      description: "the image whose plugins' certificates to ask for (default: the image planet runs from)",
    },
    port: { type: "string", description: "the masters' agent port", default: "7575" },
  },
  async run({ args, rawArgs }) {
    const text = args.token ?? process.env.PLANET_TOKEN;
    if (!text)
      throw new PlanetError(
        "BAD_FLAG",
        "a join token is required: PLANET_TOKEN or --token (print one on a master: planet token create)",
      );
    const token = parseToken(text);
    for (const [flag, v] of [
      ["--master", args.master],
      ["--node-name", args["node-name"]],
      ["--ip", args.ip],
    ] as const)
      if (!v) throw new PlanetError("BAD_FLAG", `${flag} is required`);
    requireIp(args.master as string, "--master");
    requireIp(args.ip as string, "--ip");
    const roles = multi(rawArgs, "role", { split: true }) as Role[];
    const image = readManifest(args.rootfs ?? ownImageRootfs() ?? "/");
    const requests = image
      ? certsFor(image.manifest, roles.length ? roles : ["node"])
      : certRequests(undefined, roles, "node").requests;
    const { issued } = await joinCluster({
      master: args.master as string,
      port: Number(args.port),
      token,
      dir: args.dir,
      nodeName: args["node-name"] as string,
      ip: args.ip as string,
      roles: roles.length ? roles : ["node"],
      requests,
    });
    log.success(`joined: ${issued.length} certificates issued by the masters for ${args["node-name"]}, keys made here`);
  },
});

const rotateEncryptionCmd = defineCommand({
  meta: {
    name: "rotate-encryption",
    description: "rotate the key Secrets are encrypted with: --stage prepare, rotate, then (after reencrypt) finish",
  },
  args: {
    ...debugArg,
    ...dirArg,
    stage: { type: "string", description: `${STAGES.join(" | ")}`, required: true },
  },
  run({ args }) {
    if (!STAGES.includes(args.stage as Stage))
      throw new PlanetError("BAD_FLAG", `--stage ${args.stage}: one of ${STAGES.join(", ")}, in that order`);
    log.success(rotateEncryption(args.dir, args.stage as Stage));
  },
});

const reencrypt = defineCommand({
  meta: { name: "reencrypt", description: "on a master: rewrite every Secret, so each is stored under the current key" },
  args: {
    ...debugArg,
    "secrets-dir": { type: "string", description: "a master's secrets (admin.kubeconfig)", default: "/var/state" },
    server: { type: "string", description: "apiserver URL (default the kubeconfig's)" },
  },
  async run({ args }) {
    const kubeconfigFile = join(args["secrets-dir"], "admin.kubeconfig");
    if (!existsSync(kubeconfigFile))
      throw new PlanetError(
        "NO_SECRETS",
        `${kubeconfigFile} is missing: run it on a master (planet exec planet secrets reencrypt)`,
      );
    const n = await reencryptSecrets(new Kube(loadKubeconfig(kubeconfigFile, args.server)));
    log.success(`rewrote ${n} Secrets under the current key`);
  },
});

const rotateCaCmd = defineCommand({
  meta: {
    name: "rotate-ca",
    description: "replace a CA with an overlap: --stage prepare (both trusted), rotate (the new one signs), finish (old dropped)",
  },
  args: {
    ...debugArg,
    ...dirArg,
    ca: { type: "string", description: "which CA: root, etcd-ca, front-proxy-ca, csr-signer", default: "root" },
    stage: { type: "string", description: `${CA_STAGES.join(" | ")}`, required: true },
  },
  async run({ args }) {
    if (!CA_STAGES.includes(args.stage as CaStage))
      throw new PlanetError("BAD_FLAG", `--stage ${args.stage}: one of ${CA_STAGES.join(", ")}, in that order`);
    const every = plugins.flatMap((p) => p.certs ?? []);
    log.success(await rotateCA(args.dir, args.ca, args.stage as CaStage, every));
  },
});

export default defineCommand({
  meta: {
    name: "secrets",
    description: "the cluster PKI: init, host, join, check, renew, rotate-ca, rotate-encryption, reencrypt",
  },
  subCommands: {
    init,
    host,
    join: joinCmd,
    check,
    renew: renewCmd,
    "rotate-ca": rotateCaCmd,
    "rotate-encryption": rotateEncryptionCmd,
    reencrypt,
  },
});
