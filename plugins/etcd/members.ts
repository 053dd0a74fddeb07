/**
 * etcd's membership on a running cluster, as etcd's root user (masters hold its certificate): a
 * master that joins is added as a learner (a non-voting member that catches up first), promoted once
 * in sync, and removed when it leaves or dies. Quorum is checked before a removal: a member goes only
 * while every other voting member answers.
 */
import type { Etcd3, IMember } from "etcd3";
import { etcdClient } from "../../core/agent/agent.ts";
import { withTimeout } from "../../core/agent/checks.ts";
import { PlanetError } from "../../core/errors.ts";

const phase = "etcd";

export interface EtcdMember {
  /** Hex, as etcdctl prints it. */
  id: string;
  /** Empty until the member has started once. */
  name: string;
  /** The address of its peer URL. */
  ip: string;
  peerURL: string;
  learner: boolean;
}

/** Where a master's etcd credentials live in the bubble. */
export interface EtcdAccess {
  endpoints: string[];
  dir?: string;
}

/** A client of etcd's root user (masters only) over `endpoints`. */
export function rootClient(a: EtcdAccess): Etcd3 {
  const dir = a.dir ?? "/var/state";
  return etcdClient({
    endpoints: a.endpoints,
    ca: `${dir}/etcd-ca.cert`,
    cert: `${dir}/etcd-root.cert`,
    key: `${dir}/etcd-root.key`,
    serverName: "etcd",
  });
}

export const peerURL = (ip: string) => `https://${ip}:2380`;
const ipOf = (url: string) => /^https?:\/\/([^:/]+)/.exec(url)?.[1] ?? "";
const hex = (id: string) => BigInt(id).toString(16);
const toMember = (m: IMember): EtcdMember => ({
  id: hex(m.ID),
  name: m.name,
  ip: ipOf(m.peerURLs[0] ?? ""),
  peerURL: m.peerURLs[0] ?? "",
  learner: m.isLearner,
});

function etcdError(what: string, e: unknown): PlanetError {
  if (e instanceof PlanetError) return e;
  return new PlanetError("ETCD_UNREACHABLE", `${what}: ${(e as Error).message}`, { phase });
}

export async function listMembers(client: Etcd3): Promise<EtcdMember[]> {
  const res = await withTimeout(client.cluster.memberList({ linearizable: true }), 10_000, "etcd member list").catch((e) => {
    throw etcdError("cannot list etcd's members", e);
  });
  return res.members.map(toMember);
}

/** `name=https://ip:2380,…` for a member's first start (`--initial-cluster`), the new one named `name`. */
export function initialCluster(members: EtcdMember[], name: string, ip: string): string {
  return members.map((m) => `${m.peerURL === peerURL(ip) ? name : m.name}=${m.peerURL}`).join(",");
}

/**
 * Adds the master `name` at `ip` as a learner and returns every member after it. A learner already
 * added for that address that never started (a join that failed on its way back) is kept, so a join
 * can be tried again. Refused: a started member of that name or address (remove it first), another
 * member added but never started (it would stall the joins after it).
 */
export async function addLearner(client: Etcd3, name: string, ip: string): Promise<EtcdMember[]> {
  const members = await listMembers(client);
  const same = members.find((m) => m.peerURL === peerURL(ip) || (m.name && m.name === name));
  if (same && (same.name || same.peerURL !== peerURL(ip)))
    throw new PlanetError(
      "MEMBER_EXISTS",
      `etcd already has a member ${same.name || same.id} at ${same.ip}: remove it first (planet remove ${same.name || same.ip})`,
      { phase },
    );
  if (same) return members;
  const stalled = members.find((m) => !m.name);
  if (stalled)
    throw new PlanetError(
      "MEMBER_PENDING",
      `etcd member ${stalled.id} at ${stalled.ip} was added but never started: finish that master's join or remove it (planet remove ${stalled.ip})`,
      { phase },
    );
  const res = await withTimeout(
    client.cluster.memberAdd({ peerURLs: [peerURL(ip)], isLearner: true }),
    10_000,
    "etcd member add",
  ).catch((e) => {
    throw etcdError(`cannot add ${name} (${ip}) to etcd as a learner`, e);
  });
  return res.members.map(toMember);
}

/**
 * Promotes the learner at `ip` once it has caught up with the leader (etcd refuses before), trying
 * every second until `timeoutMs`. A voting member already is left alone.
 */
export async function promoteWhenSynced(client: Etcd3, ip: string, timeoutMs: number): Promise<"promoted" | "voting"> {
  const end = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const me = (await listMembers(client).catch(() => [])).find((m) => m.peerURL === peerURL(ip));
    if (me && !me.learner) return last ? "promoted" : "voting";
    if (me)
      try {
        await withTimeout(client.cluster.memberPromote({ ID: BigInt(`0x${me.id}`).toString() }), 10_000, "etcd member promote");
        return "promoted";
      } catch (e) {
        last = (e as Error).message;
      }
    else last = `no etcd member at ${peerURL(ip)}`;
    if (Date.now() > end)
      throw new PlanetError(
        "ETCD_PROMOTE",
        `the etcd learner at ${ip} was not promoted within ${Math.round(timeoutMs / 1000)} s (${last})`,
        { phase },
      );
    await Bun.sleep(1000);
  }
}

/** Whether the member answers on its client port (etcd's status call), within 3 s. */
async function answers(m: EtcdMember, dir?: string): Promise<boolean> {
  const c = rootClient({ dir, endpoints: [`https://${m.ip}:2379`] });
  try {
    await withTimeout(c.maintenance.status(), 3000, "etcd status");
    return true;
  } catch {
    return false;
  } finally {
    c.close();
  }
}

/**
 * Removes the member named `name` (or at the address `name`). Refused with one line: no such member,
 * the last voting member, or another voting member not answering (the removal could leave the rest
 * without a quorum). Returns the members left.
 */
export async function removeMember(client: Etcd3, name: string, dir?: string): Promise<EtcdMember[]> {
  const members = await listMembers(client);
  const target = members.find((m) => m.name === name || m.ip === name);
  if (!target)
    throw new PlanetError("NO_MEMBER", `etcd has no member ${name} (members: ${members.map((m) => m.name || m.ip).join(", ")})`, {
      phase,
    });
  const voters = members.filter((m) => !m.learner);
  if (!target.learner && voters.length === 1)
    throw new PlanetError(
      "LAST_MEMBER",
      `${name} is etcd's last voting member: removing it would end the cluster (stop it instead, or add a master first)`,
      { phase },
    );
  const others = voters.filter((m) => m.id !== target.id);
  const down = (await Promise.all(others.map(async (m) => ((await answers(m, dir)) ? null : m)))).filter(
    (m): m is EtcdMember => m !== null,
  );
  if (down.length)
    throw new PlanetError(
      "QUORUM_AT_RISK",
      `etcd member ${down.map((m) => `${m.name || m.id} (${m.ip})`).join(", ")} does not answer: removing ${name} now could leave the cluster without a quorum; bring it back (or remove it) first`,
      { phase },
    );
  const res = await withTimeout(
    client.cluster.memberRemove({ ID: BigInt(`0x${target.id}`).toString() }),
    10_000,
    "etcd member remove",
  ).catch((e) => {
    throw etcdError(`cannot remove ${name} from etcd`, e);
  });
  return res.members.map(toMember);
}

/** A warning for an even number of voting members (no more failures tolerated than with one fewer). */
export function evenWarning(members: EtcdMember[]): string | null {
  const n = members.filter((m) => !m.learner).length;
  return n > 0 && n % 2 === 0
    ? `etcd has ${n} voting members: an even count tolerates no more failures than ${n - 1}; add or remove one`
    : null;
}
