/**
 * Hosts leaving a running cluster. `planet leave`, in the leaving host's bubble: a master takes
 * itself out (its etcd member, its Node, its gossip membership); a node asks a master, proving who
 * it is with its kubelet certificate's key, to drain it and delete its Node, then leaves the gossip.
 * `planet remove <name>`, in a master's bubble, takes another host out, e.g. one whose disk died. Each checks first what would break — the upgrade lock held,
 * the last etcd member, another member down (quorum) — and changes nothing when it refuses.
 */
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, join } from "node:path";
import { defineCommand } from "citty";
import type { Etcd3 } from "etcd3";
import { type EtcdMember, evenWarning, listMembers, removeMember, rootClient } from "../../../plugins/etcd/members.ts";
import { csrPem, parseKey } from "../../../secrets/pki.ts";
import { tlsFiles } from "../../agent/checks.ts";
import { ClusterLock } from "../../agent/upgrade-lock.ts";
import { PlanetError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { readManifest } from "../../manifest.ts";
import { run } from "../../proc.ts";
import { debugArg } from "../_args.ts";

const log = logger("leave");
const ADMIN = "/var/state/admin.kubeconfig";
/** This master's own apiserver. */
const LOCAL = "https://127.0.0.1:6443";
const phase = "leave";

interface Here {
  node: string;
  ip: string;
  client: Etcd3;
  members: EtcdMember[];
}

/** This master's view: its name and address, etcd as root through its own member, the members. */
async function here(what: string): Promise<Here> {
  const image = readManifest("/");
  if (!image?.manifest.roles.includes("master") || !(process.env.PLANET_ROLE ?? "").split(",").includes("master"))
    throw new PlanetError(
      "NOT_AN_IMAGE",
      `planet ${what} runs in a master's bubble: planet exec --rootfs <a master's rootfs> -- planet ${what}`,
    );
  const ip = process.env.PLANET_PUBLIC_IP ?? "127.0.0.1";
  const client = rootClient({ endpoints: ["https://127.0.0.1:2379"] });
  const members = await listMembers(client).catch((e: PlanetError) => {
    client.close();
    throw e;
  });
  return { node: process.env.KUBE_NODE_NAME ?? "", ip, client, members };
}

/** Refuses while an upgrade holds the cluster's lock: a host leaving mid-upgrade strands the roll. */
async function refuseWhileUpgrading(client: Etcd3, what: string): Promise<void> {
  const key = `${dirname(process.env.PLANET_LEADER_KEY ?? "/planet/cluster/x/master")}/upgrade`;
  const held = await new ClusterLock(client, key, "").get();
  if (held)
    throw new PlanetError(
      "UPGRADE_LOCKED",
      `${held.what} holds the upgrade lock (since ${held.since}, on ${held.node}): ${what} after it ends`,
      { phase },
    );
}

/** kubectl as the admin (a master's credential) at `server`. */
async function kubectl(server: string, ...args: string[]): Promise<{ ok: boolean; out: string }> {
  const res = await run(["kubectl", `--kubeconfig=${ADMIN}`, `--server=${server}`, "--request-timeout=20s", ...args], {
    timeoutMs: 240_000,
  });
  return { ok: res.exitCode === 0, out: (res.stdout + res.stderr).trim() };
}

/** The Node's Ready status ("True", "False", "Unknown"), or null when there is no such Node. */
async function nodeReady(server: string, name: string): Promise<string | null> {
  const jsonpath = `jsonpath={.status.conditions[?(@.type=="Ready")].status}`;
  const ready = await kubectl(server, "get", "node", name, "-o", jsonpath);
  if (ready.ok) return ready.out;
  if (/NotFound/.test(ready.out)) return null;
  throw new PlanetError("KUBE_ERROR", `cannot read Node ${name}: ${ready.out.split("\n").at(-1)}`, { phase });
}

/** The Node goes: drained first when it is Ready (its pods move on), then deleted. */
export async function removeNode(server: string, name: string): Promise<void> {
  const ready = await nodeReady(server, name);
  if (ready === null) return void log.info(`Node ${name}: none`);
  if (ready === "True") {
    const flags = ["--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=120s"];
    const drained = await kubectl(server, "drain", name, ...flags);
    if (!drained.ok) log.warn(`drain ${name}: ${drained.out.split("\n").at(-1)} (deleting the Node anyway)`);
  }
  const gone = await kubectl(server, "delete", "node", name, "--ignore-not-found");
  if (!gone.ok) throw new PlanetError("KUBE_ERROR", `cannot delete Node ${name}: ${gone.out.split("\n").at(-1)}`, { phase });
  log.info(`Node ${name} deleted`);
}

/**
 * A node leaves through a master (a node's own credential may not delete its Node): it proves who it
 * is as a renewal does — its kubelet certificate and a request signed with that key — over the
 * agents' mTLS API; the master drains it and deletes its Node. Then it leaves the gossip itself.
 */
async function leaveAsNode(node: string): Promise<void> {
  const dir = "/var/state";
  const cert = readFileSync(join(dir, "kubelet.cert"), "utf8");
  const key = parseKey(readFileSync(join(dir, "kubelet.key"), "utf8"));
  const body = JSON.stringify({ certs: { kubelet: cert }, csrs: { kubelet: csrPem("kubelet", key) } });
  const masters = mastersKnown();
  const port = process.env.PLANET_AGENT_PORT ?? "7575";
  const errors: string[] = [];
  let done = false;
  for (const ip of masters) {
    try {
      const res = await fetch(`https://${ip}:${port}/leave`, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
        tls: tlsFiles(dir, "planet-rpc-client"),
        signal: AbortSignal.timeout(240_000),
      });
      const json = (await res.json()) as { node?: string; error?: { code: string; message: string } };
      if (!res.ok) {
        // A refusal is the cluster's answer, not a master down: no use asking another.
        if (res.status < 500)
          throw new PlanetError("LEAVE_REFUSED", `master ${ip} refused: ${json.error?.message ?? res.status}`, { phase });
        errors.push(`${ip}: ${json.error?.message ?? `HTTP ${res.status}`}`);
        continue;
      }
      done = true;
      break;
    } catch (e) {
      if (e instanceof PlanetError) throw e;
      errors.push(`${ip}: ${(e as Error).message}`);
    }
  }
  if (!done)
    throw new PlanetError(
      "MASTER_UNREACHABLE",
      `no master took ${node} out (${errors.join("; ") || "no masters known"}); nothing changed`,
      { phase },
    );
  log.info(`Node ${node} drained and deleted by the masters`);
  await memberCommand("PLANET_MEMBER_LEAVE_COMMAND");
  log.success(`${node} left the cluster: stop it (planet stop); it joins again with a new token and an empty --secrets-dir`);
}

/** The masters this host knows: the agent's list from the masters, else the ones it started with. */
function mastersKnown(): string[] {
  const file = "/run/planet/masters";
  const listed = existsSync(file) ? readFileSync(file, "utf8") : (process.env.PLANET_INITIAL_CLUSTER ?? "").replaceAll(",", "\n");
  const ips = listed
    .split("\n")
    .map((l) => l.split(":")[1] ?? "")
    .filter((ip) => isIP(ip) === 4);
  return [...new Set([process.env.KUBE_MASTER_IP ?? "", ...ips].filter((ip) => isIP(ip) === 4 && ip !== "127.0.0.1"))];
}

/** The membership plugin's command (serf's force-leave, …), when the image has one. */
async function memberCommand(variable: string, ...args: string[]): Promise<void> {
  const cmd = process.env[variable]?.split(" ").filter(Boolean);
  if (!cmd?.length) return;
  const res = await run([...cmd, ...args], { timeoutMs: 30_000 });
  if (res.exitCode !== 0) log.warn(`${cmd.join(" ")} ${args.join(" ")}: ${res.stderr.trim().split("\n").at(-1)}`);
}

function summary(members: EtcdMember[]): void {
  log.info(`etcd members now: ${members.map((m) => `${m.name || m.ip}${m.learner ? " (learner)" : ""}`).join(", ")}`);
  const even = evenWarning(members);
  if (even) log.warn(even);
}

export const removeCmd = defineCommand({
  meta: {
    name: "remove",
    description: "on a master: take another host out of the cluster (its etcd member, its Node, its membership)",
  },
  args: {
    ...debugArg,
    name: {
      type: "positional",
      description: "the host's node name (or, for an etcd member never started, its address)",
      required: true,
    },
  },
  async run({ args }) {
    const h = await here("remove");
    try {
      if (args.name === h.node)
        throw new PlanetError("BAD_FLAG", `${args.name} is this host: run planet leave on it instead`, { phase });
      await refuseWhileUpgrading(h.client, `remove ${args.name}`);
      const member = h.members.find((m) => m.name === args.name || m.ip === args.name);
      if (!member && (await nodeReady(LOCAL, args.name)) === null)
        throw new PlanetError(
          "NO_MEMBER",
          `no host ${args.name} in this cluster: neither an etcd member (${h.members.map((m) => m.name || m.ip).join(", ")}) nor a Node`,
          { phase },
        );
      // etcd first: the check for quorum refuses before anything else changed.
      const left = member ? await removeMember(h.client, args.name) : h.members;
      if (member) log.info(`etcd member ${member.name || member.id} (${member.ip}) removed`);
      await removeNode(LOCAL, member?.name || args.name);
      await memberCommand("PLANET_MEMBER_REMOVE_COMMAND", member?.name || args.name);
      summary(left);
      log.success(`${args.name} removed from the cluster: it joins again only with a new token`);
    } finally {
      h.client.close();
    }
  },
});

export const leaveCmd = defineCommand({
  meta: {
    name: "leave",
    description:
      "in the bubble of the host that leaves: drained, its Node deleted, the gossip left (a master: its etcd member too)",
  },
  args: { ...debugArg },
  async run() {
    if (!(process.env.PLANET_ROLE ?? "").split(",").includes("master")) {
      if (!readManifest("/"))
        throw new PlanetError(
          "NOT_AN_IMAGE",
          "planet leave runs in the leaving host's bubble: planet exec --rootfs <rootfs> -- planet leave",
        );
      return leaveAsNode(process.env.KUBE_NODE_NAME ?? "");
    }
    const h = await here("leave");
    try {
      await refuseWhileUpgrading(h.client, "leave");
      const me = h.members.find((m) => m.name === h.node);
      if (!me) throw new PlanetError("NO_MEMBER", `${h.node} is no etcd member (left already?)`, { phase });
      const others = h.members.filter((m) => m.id !== me.id && !m.learner && m.name);
      if (!others.length)
        throw new PlanetError(
          "LAST_MEMBER",
          `${h.node} is the cluster's last master: leaving would end the cluster (stop it instead, or add a master first)`,
          { phase },
        );
      // Through another master from here on: this member's etcd stops serving once removed.
      const other = others[0] as EtcdMember;
      const client = rootClient({ endpoints: others.map((m) => `https://${m.ip}:2379`) });
      try {
        const left = await removeMember(client, h.node);
        log.info(`etcd member ${h.node} removed`);
        await removeNode(`https://${other.ip}:6443`, h.node);
        await memberCommand("PLANET_MEMBER_LEAVE_COMMAND");
        summary(left);
      } finally {
        client.close();
      }
      log.success(`${h.node} left the cluster: stop it (planet stop) and clear its --data-dir before it joins again`);
    } finally {
      h.client.close();
    }
  },
});
