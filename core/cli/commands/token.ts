import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { createToken, listTokens, parseTtl, revokeToken } from "../../../secrets/token.ts";
import { PlanetError } from "../../errors.ts";
import { Kube, loadKubeconfig } from "../../kube/client.ts";
import { debugArg } from "../_args.ts";

/**
 * Join tokens, made on a master (inside its bubble `/var/state` holds the admin credential and the
 * CA; from the host, `--secrets-dir` names a master's or the cluster's secrets directory).
 */
const secretsArg = {
  "secrets-dir": {
    type: "string",
    description: "a master's secrets (admin.kubeconfig, root.cert); default /var/state inside a bubble",
    default: "/var/state",
  },
  server: { type: "string", description: "apiserver URL (default the kubeconfig's)" },
} as const;

function kubeOf(dir: string, server?: string): { kube: Kube; ca: string } {
  for (const f of ["admin.kubeconfig", "root.cert"])
    if (!existsSync(join(dir, f)))
      throw new PlanetError(
        "NO_SECRETS",
        `${join(dir, f)} is missing: run planet token on a master (planet exec planet token …) or pass --secrets-dir <a master's secrets>`,
      );
  return {
    kube: new Kube(loadKubeconfig(join(dir, "admin.kubeconfig"), server)),
    ca: readFileSync(join(dir, "root.cert"), "utf8"),
  };
}

const create = defineCommand({
  meta: { name: "create", description: "print a new join token (id, secret and the cluster CA's hash)" },
  args: {
    ...debugArg,
    ...secretsArg,
    role: { type: "string", description: "what a host joining with it becomes: node or master", default: "node" },
    ttl: { type: "string", description: "how long it admits hosts (30m, 24h, 7d)", default: "24h" },
    description: { type: "string", description: "a note kept with it" },
  },
  async run({ args }) {
    if (args.role !== "node" && args.role !== "master")
      throw new PlanetError("BAD_ROLE", `--role ${args.role}: a token admits a node or a master`);
    const ttl = parseTtl(args.ttl);
    const { kube, ca } = kubeOf(args["secrets-dir"], args.server);
    process.stdout.write(`${await createToken(kube, ca, args.role, ttl, args.description)}\n`);
  },
});

const list = defineCommand({
  meta: { name: "list", description: "the tokens that admit hosts, with their role and expiry" },
  args: { ...debugArg, ...secretsArg, json: { type: "boolean", description: "machine-readable output" } },
  async run({ args }) {
    const tokens = await listTokens(kubeOf(args["secrets-dir"], args.server).kube);
    if (args.json) return void process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
    const row = (cells: string[]) => [cells[0]?.padEnd(8), cells[1]?.padEnd(7), cells[2]?.padEnd(21), cells[3]].join(" ");
    const rows = [
      row(["ID", "ROLE", "EXPIRES", "DESCRIPTION"]),
      ...tokens.map((t) => row([t.id, t.role, t.expires, t.description])),
    ];
    process.stdout.write(`${rows.join("\n")}\n`);
  },
});

const revoke = defineCommand({
  meta: { name: "revoke", description: "delete a token: no host joins with it any more" },
  args: { ...debugArg, ...secretsArg, id: { type: "positional", description: "the token's id (6 characters)", required: true } },
  async run({ args }) {
    await revokeToken(kubeOf(args["secrets-dir"], args.server).kube, args.id);
    process.stdout.write(`revoked ${args.id}\n`);
  },
});

export default defineCommand({
  meta: { name: "token", description: "join tokens: a fresh host starts with --join <master> --token <t>" },
  subCommands: { create, list, revoke },
});
