import { defineCommand } from "citty";
import { probeJoin } from "../../bubble/join.ts";
import { debugArg } from "../_args.ts";

/** What `planet start` runs before a node boots (in the test host's namespace when there is one). */
export default defineCommand({
  meta: {
    name: "join-check",
    description: "check that a master answers, trusts this host's secrets, and no live host has its name",
  },
  args: {
    ...debugArg,
    masters: { type: "string", description: "comma list of master addresses", required: true },
    port: { type: "string", default: "6443" },
    "secrets-dir": { type: "string", description: "this host's secrets", required: true },
    "node-name": { type: "string", required: true },
    "public-ip": { type: "string", required: true },
    wait: { type: "string", description: "seconds to keep trying", default: "20" },
  },
  async run({ args }) {
    const ip = await probeJoin({
      masters: args.masters.split(","),
      port: Number(args.port),
      secretsDir: args["secrets-dir"],
      nodeName: args["node-name"],
      publicIp: args["public-ip"],
      waitSeconds: Number(args.wait),
    });
    process.stdout.write(`${ip}\n`);
  },
});
