import { dirname, resolve } from "node:path";
import { defineCommand } from "citty";
import type { LeaderView, MemberHealth } from "../../agent/api.ts";
import type { CheckStatus } from "../../agent/checks.ts";
import { agentSocket, ask } from "../../agent/client.ts";
import type { UpgradeLock } from "../../agent/upgrade-lock.ts";
import { slotOfRootfs } from "../../bubble/slot-root.ts";
import { type Journal, lastUpgrade } from "../../upgrade/journal.ts";
import { pointer } from "../../upgrade/slots.ts";
import { debugArg } from "../_args.ts";

const color = (on: boolean, code: number, s: string) => (on ? `\u001b[${code}m${s}\u001b[0m` : s);

/** node → plugin → check, with state and last error. */
export function renderStatus(members: (MemberHealth & { checks?: CheckStatus[] })[], leader: LeaderView, tty: boolean): string {
  const out: string[] = [];
  for (const m of members) {
    const img = m.health?.image;
    const versions = Object.entries(img?.versions ?? {}).map(([name, v]) => `${name} ${v}`);
    const image = img ? `  ${img.target} ${img.version}${versions.length ? ` (${versions.join(", ")})` : ""}` : "";
    const head = `${m.name} (${m.ip})${leader.leader === m.ip ? " leader" : ""}${image}`;
    const st = m.status === "healthy" ? color(tty, 32, "healthy") : color(tty, 31, m.status);
    out.push(`${head}  ${st}${m.error ? `  ${m.error}` : ""}`);
    const byPlugin = new Map<string, CheckStatus[]>();
    for (const c of m.checks ?? []) byPlugin.set(c.plugin, [...(byPlugin.get(c.plugin) ?? []), c]);
    for (const [plugin, checks] of [...byPlugin].sort(([a], [b]) => a.localeCompare(b))) {
      out.push(`  ${plugin}`);
      for (const c of checks) {
        const mark =
          c.state === "ok"
            ? color(tty, 32, "ok     ")
            : c.state === "pending"
              ? color(tty, 33, "pending")
              : color(tty, 31, "failed ");
        const err = c.state !== "ok" && c.results[0]?.error ? `  ${c.results[0].error}` : "";
        out.push(`    ${mark} ${c.name}${c.severity === "warning" ? " (warning)" : ""}${err}`);
      }
    }
  }
  const self = leader.follower ? ", this node follows" : leader.paused ? ", this node paused" : "";
  out.push(`leader: ${leader.leader ?? "none"} (etcd ${leader.etcd}${self})`);
  return out.join("\n");
}

/** The host's last upgrade, when asked from the host about a bubble that runs from a slot. */
function upgradeOf(rootfs: string | undefined): Journal | null {
  const slot = rootfs ? slotOfRootfs(resolve(rootfs)) : null;
  return slot ? lastUpgrade(dirname(dirname(slot.dir))) : null;
}

export const statusCmd = defineCommand({
  meta: {
    name: "status",
    description: "health of the cluster (or --local: this node); exit 0 healthy, 1 degraded, 2 agent unreachable",
  },
  args: {
    ...debugArg,
    rootfs: { type: "string", description: "image rootfs, when asking from the host" },
    "data-dir": { type: "string", description: "or the host's data dir: the bubble of its current slot" },
    local: { type: "boolean", description: "only this node" },
    json: {
      type: "boolean",
      description: "stable JSON: {status, leader, members: [{name, ip, status, error?, health?, checks?}]}",
    },
    watch: { type: "boolean", description: "refresh every 2 s until interrupted" },
  },
  async run({ args }) {
    const rootfs = args.rootfs ?? (args["data-dir"] ? pointer(args["data-dir"], "current")?.rootfs : undefined);
    const socket = agentSocket(rootfs);
    const once = async (): Promise<number> => {
      const leader = await ask<LeaderView>(socket, "/leader");
      const checks = await ask<CheckStatus[]>(socket, "/checks");
      let members: (MemberHealth & { checks?: CheckStatus[] })[];
      if (args.local) {
        const h = await ask<MemberHealth["health"] & object>(socket, "/health");
        members = [{ name: h.node, ip: h.ip, status: h.status, health: h, checks }];
      } else {
        const st = await ask<{ members: MemberHealth[] }>(socket, "/status");
        members = st.members.map((m) => (m.health?.ip === leader.self || m.ip === leader.self ? { ...m, checks } : m));
      }
      const status = members.every((m) => m.status === "healthy") ? "healthy" : "degraded";
      const upgrade = upgradeOf(rootfs);
      // Who holds the cluster's upgrade lock, when the agent can tell (its etcd answers).
      const lock = await ask<{ lock: UpgradeLock | null }>(socket, "/upgrade/lock")
        .then((r) => r.lock)
        .catch(() => undefined);
      if (args.json) process.stdout.write(`${JSON.stringify({ status, leader, members, upgrade, lock }, null, 2)}\n`);
      else {
        process.stdout.write(`${renderStatus(members, leader, process.stdout.isTTY === true)}\n`);
        if (lock) process.stdout.write(`cluster upgrade lock: ${lock.what} (owner ${lock.owner}, since ${lock.since})\n`);
        if (upgrade)
          process.stdout.write(
            `upgrade ${upgrade.id}: ${upgrade.phase} (${upgrade.from} → ${upgrade.to ?? upgrade.image})${upgrade.reason ? `: ${upgrade.reason}` : ""}\n`,
          );
      }
      return status === "healthy" ? 0 : 1;
    };
    if (!args.watch) {
      process.exitCode = await once();
      return;
    }
    for (;;) {
      if (process.stdout.isTTY) process.stdout.write("\u001b[2J\u001b[H");
      process.exitCode = await once();
      await Bun.sleep(2000);
    }
  },
});

const leaderAction = (action: "view" | "pause" | "resume") =>
  defineCommand({
    meta: {
      name: action,
      description: { view: "who leads", pause: "stop campaigning on this node", resume: "campaign again" }[action],
    },
    args: { ...debugArg, rootfs: { type: "string", description: "image rootfs, when asking from the host" } },
    async run({ args }) {
      const socket = agentSocket(args.rootfs);
      const v = await ask<LeaderView>(
        socket,
        action === "view" ? "/leader" : `/leader/${action}`,
        action === "view" ? "GET" : "POST",
      );
      process.stdout.write(`${JSON.stringify(v)}\n`);
    },
  });

export const leaderCmd = defineCommand({
  meta: { name: "leader", description: "leader election: view, pause, resume" },
  subCommands: { view: leaderAction("view"), pause: leaderAction("pause"), resume: leaderAction("resume") },
});
