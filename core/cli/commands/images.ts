import { existsSync } from "node:fs";
import { defineCommand } from "citty";
import { PlanetError } from "../../errors.ts";
import { pushLayouts } from "../../image/push.ts";
import { logger } from "../../log.ts";
import { debugArg } from "../_args.ts";

const log = logger("images");

const push = defineCommand({
  meta: {
    name: "push",
    description: "push OCI image layout folders into a registry (what the registry import runs at boot)",
  },
  args: {
    ...debugArg,
    registry: { type: "string", description: "unix:/path.sock or https://host:port", required: true },
    ca: { type: "string", description: "CA certificate for https" },
    cert: { type: "string", description: "client certificate for https" },
    key: { type: "string", description: "client key for https" },
  },
  async run({ args }) {
    const dirs = args._;
    if (!dirs.length)
      throw new PlanetError("USAGE", "planet images push --registry R <layout-folder>…: name at least one folder");
    for (const d of dirs) if (!existsSync(d)) throw new PlanetError("NOT_FOUND", `${d} does not exist`);
    const t0 = Date.now();
    const n = await pushLayouts({ url: args.registry, ca: args.ca, cert: args.cert, key: args.key }, dirs, (ref, state, bytes) =>
      log.info(`${ref}: ${state === "present" ? "already there" : `pushed (${(bytes / 1048576).toFixed(1)} MiB)`}`),
    );
    log.success(`${n} image(s) pushed in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  },
});

export default defineCommand({
  meta: { name: "images", description: "container images: push layout folders into the cluster's registry" },
  subCommands: { push },
});
