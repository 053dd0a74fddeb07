import { defineCommand } from "citty";
import { devHost, devHostDown, devHostUp } from "../../bubble/devhost.ts";
import { logger } from "../../log.ts";
import { debugArg } from "../_args.ts";

const log = logger("dev-host");
const args = {
  ...debugArg,
  name: { type: "positional", description: "namespace name", default: "planet-dev", required: false },
  ip: { type: "string", description: "address inside (the host end gets .254)", default: "10.211.0.1" },
  bridge: { type: "string", description: "put the host end on this bridge: test hosts on one bridge see each other" },
} as const;

export default defineCommand({
  meta: { name: "dev-host", description: "a test host: network namespace + veth, for bubbles started with --netns" },
  subCommands: {
    up: defineCommand({
      meta: { name: "up", description: "create the test host (no-op when it exists)" },
      args,
      async run({ args }) {
        const h = devHost(args.name ?? "planet-dev", args.ip, args.bridge);
        await devHostUp(h);
        log.success(`test host ${h.name}: ${h.ip}/24 (host end ${h.bridge ?? h.hostLink} ${h.hostIp})`);
      },
    }),
    down: defineCommand({
      meta: { name: "down", description: "remove the test host and everything in it" },
      args,
      async run({ args }) {
        await devHostDown(devHost(args.name ?? "planet-dev", args.ip, args.bridge));
        log.success(`test host ${args.name} removed`);
      },
    }),
  },
});
