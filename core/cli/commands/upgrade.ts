import { defineCommand } from "citty";
import { bubbleId } from "../../bubble/prepare.ts";
import { ownerAlive, readState } from "../../bubble/state.ts";
import { PlanetError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { lastUpgrade } from "../../upgrade/journal.ts";
import { releaseClusterLock } from "../../upgrade/locks.ts";
import { roll } from "../../upgrade/roll.ts";
import { listSlots, pointer } from "../../upgrade/slots.ts";
import { install, upgrade } from "../../upgrade/upgrade.ts";
import { debugArg } from "../_args.ts";

const log = logger("upgrade");

const dataDirArg = {
  "data-dir": { type: "string", description: "host dir of the data volumes and slots (default /var/lib/planet/<cluster-id>)" },
} as const;

function seconds(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new PlanetError("BAD_FLAG", `${flag} ${value}: expected seconds`);
  return n;
}

export const installCmd = defineCommand({
  meta: {
    name: "install",
    description: "verify an image and keep it in a slot of this host (the first becomes current: planet start --data-dir)",
  },
  args: {
    ...debugArg,
    image: { type: "positional", description: "build folder, rootfs or planet.tar.gz", required: true },
    ...dataDirArg,
    "cluster-id": { type: "string", description: "cluster name, for the default --data-dir", default: "local" },
  },
  async run({ args }) {
    const dataDir = args["data-dir"] ?? `/var/lib/planet/${args["cluster-id"]}`;
    const { slot, current } = await install(dataDir, args.image);
    log.success(`${slot.info.name} installed in ${slot.dir}${current ? " (current)" : ""}`);
  },
});

export const upgradeCmd = defineCommand({
  meta: {
    name: "upgrade",
    description: "move this host's bubble to a newer image: drained, swapped, health-gated, rolled back by itself on failure",
  },
  args: {
    ...debugArg,
    image: { type: "positional", description: "build folder, rootfs or planet.tar.gz (not with --resume)", required: false },
    "cluster-id": { type: "string", description: "cluster name of the bubble [PLANET_CLUSTER_ID]" },
    netns: { type: "string", description: "network namespace the bubble runs in (a test host) [PLANET_NETNS]" },
    kubeconfig: { type: "string", description: "admin kubeconfig for the plugins' steps (drain) on hosts that hold none" },
    "gate-timeout": { type: "string", description: "seconds the new image has to pass every check", default: "300" },
    "ready-timeout": { type: "string", description: "seconds planet start waits for systemd", default: "300" },
    resume: { type: "boolean", description: "carry on an upgrade that was interrupted, from its journal" },
    status: { type: "boolean", description: "print the slots and the last upgrade's journal, change nothing" },
    plan: {
      type: "string",
      description: "a whole cluster from this plan (JSON: images, hosts): masters one at a time, then nodes",
    },
    concurrency: { type: "string", description: "with --plan: nodes upgraded at once (default the plan's, else 1)" },
    "lock-owner": {
      type: "string",
      description:
        "the cluster's upgrade lock is held by this owner (a roll passes its id); with --unlock: release only its lock",
    },
    unlock: {
      type: "boolean",
      description: "release the cluster's upgrade lock (whoever holds it, unless --lock-owner) when nothing runs under it",
    },
    ...dataDirArg,
  },
  async run({ args }) {
    const clusterId = args["cluster-id"] ?? process.env.PLANET_CLUSTER_ID ?? "local";
    const netns = args.netns ?? process.env.PLANET_NETNS;
    if (args.unlock) {
      const st = readState(bubbleId(clusterId, netns));
      if (!st || !ownerAlive(st))
        throw new PlanetError("NOT_RUNNING", `bubble ${bubbleId(clusterId, netns)} is not running: its agent releases the lock`);
      const released = await releaseClusterLock(st.rootfs, args["lock-owner"] ?? null);
      log.success(
        released
          ? `released the upgrade lock of ${released.owner} (${released.what})`
          : "the cluster's upgrade lock was not held",
      );
      return;
    }
    if (args.status) {
      const dataDir = args["data-dir"] ?? `/var/lib/planet/${netns ? `${clusterId}-${netns}` : clusterId}`;
      const cur = pointer(dataDir, "current")?.info.name;
      const prev = pointer(dataDir, "previous")?.info.name;
      const slots = listSlots(dataDir).map((s) => ({
        ...s.info,
        pointer: s.info.name === cur ? "current" : s.info.name === prev ? "previous" : null,
      }));
      process.stdout.write(`${JSON.stringify({ slots, upgrade: lastUpgrade(dataDir) }, null, 2)}\n`);
      return;
    }
    if (args.plan) {
      if (args.image) throw new PlanetError("BAD_FLAG", "--plan names the images per role: give no image");
      const width = args.concurrency === undefined ? undefined : Number(args.concurrency);
      if (width !== undefined && (!Number.isInteger(width) || width < 1))
        throw new PlanetError("BAD_FLAG", `--concurrency ${args.concurrency}: expected a whole number ≥ 1`);
      await roll(args.plan, { resume: args.resume, concurrency: width });
      return;
    }
    if (args.image && args.resume) throw new PlanetError("BAD_FLAG", "--resume carries on the journaled upgrade: give no image");
    const j = await upgrade({
      image: args.image,
      dataDir: args["data-dir"],
      clusterId,
      netns,
      kubeconfig: args.kubeconfig,
      gateTimeout: seconds(args["gate-timeout"], "--gate-timeout"),
      readyTimeout: seconds(args["ready-timeout"], "--ready-timeout"),
      resume: args.resume,
      lockOwner: args["lock-owner"],
    });
    log.success(`upgrade ${j.id}: ${j.phase}${j.changes.length ? ` (${j.changes.join(", ")})` : ""}`);
  },
});
