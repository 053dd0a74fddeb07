import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, join } from "node:path";
import { Etcd3 } from "etcd3";
import { logger } from "../log.ts";
import type { Role } from "../plugin.ts";
import { run } from "../proc.ts";
import { writeDurably } from "../util.ts";
import { type AgentView, createApi, createJoinApi, type LeaderView, type MemberHealth, type NodeHealth } from "./api.ts";
import { CheckRunner, type RunnableCheck, tlsFiles, withTimeout } from "./checks.ts";
import { LeaderElection } from "./election.ts";
import { LeaderFollower } from "./follow.ts";
import { roleFront } from "./roles.ts";
import { ClusterLock } from "./upgrade-lock.ts";

const log = logger("agent");

export interface AgentOptions {
  node: string;
  ip: string;
  roles: Role[];
  checks: RunnableCheck[];
  /** The image this node runs, reported in its health. */
  image?: NodeHealth["image"];
  /** Checks of the manifest that were malformed: named, skipped, reported. */
  skipped?: { name: string; reason: string }[];
  secretsDir: string;
  leaderKey: string;
  /** The cluster's upgrade lock (default: `upgrade` beside the leader key). */
  upgradeLockKey?: string;
  termSeconds: number;
  /**
   * etcd client: endpoints, CA, client certificate, and the DNS name its server certificate carries
   * (gRPC under Bun cannot check an IP address as the TLS name, so one name stands for every endpoint).
   */
  etcd?: { endpoints: string[]; ca?: string; cert?: string; key?: string; serverName?: string };
  socketPath?: string;
  /** ip:port listeners for the mTLS API. */
  rpcAddrs: string[];
  rpcPort: number;
  members: { name: string; ip: string }[];
  /**
   * Lists the cluster's members as JSON `{members: [{name, addr, status, tags}]}` (serf's format;
   * a plugin declares it in PLANET_MEMBERS_COMMAND). Without it, `members` is the membership.
   */
  membersCommand?: string[];
  /** Campaign for leadership (masters); others only follow the leader. Default true. */
  campaign?: boolean;
  /**
   * Without etcd: the masters' IPs, whose agents this one asks who leads (a node holds no etcd
   * credential). Its client certificate there is `planet-rpc-client` (role node: reads only).
   */
  followMasters?: string[];
  /** A hosts file whose `planet-master` line the agent points at each new leader (/etc/hosts). */
  hostsFile?: string;
  /**
   * A file the agent keeps holding the cluster's masters, one `name:ip` a line, as the masters' agents
   * name them (a follower; e.g. a node-local load balancer in front of every apiserver reads it).
   */
  mastersFile?: string;
  timing?: { readyEveryMs: number; healthEveryMs: number };
  /** Largest clock difference to the leader before `host-time-drift` fails (default 1000 ms). */
  maxDriftMs?: number;
  /** This node's clock (tests skew it). */
  now?: () => number;
  /** Issue certificates to hosts that join with a token (a master): see secrets/join.ts. */
  join?: AgentView["join"];
  /** Renew hosts' certificates (a master): see secrets/renew.ts. */
  renew?: AgentView["renew"];
  /** Take a node out at its own request (a master): see core/cli/commands/leave.ts. */
  leave?: AgentView["leave"];
  /** The CA certificates hosts trust now (a master): see secrets/renew.ts. */
  trust?: AgentView["trust"];
}

export interface Agent extends AsyncDisposable {
  runner: CheckRunner;
  election?: LeaderElection | LeaderFollower;
  view: AgentView;
  app: ReturnType<typeof createApi>;
  close(): Promise<void>;
}

export function etcdClient(etcd: NonNullable<AgentOptions["etcd"]>): Etcd3 {
  const read = (p?: string) => (p ? readFileSync(p) : undefined);
  const secure = etcd.endpoints.some((e) => e.startsWith("https:"));
  return new Etcd3({
    hosts: etcd.endpoints,
    ...(secure
      ? {
          credentials: { rootCertificate: read(etcd.ca) as Buffer, certChain: read(etcd.cert), privateKey: read(etcd.key) },
          ...(etcd.serverName ? { grpcOptions: { "grpc.ssl_target_name_override": etcd.serverName } } : {}),
        }
      : {}),
    dialTimeout: 3000,
  });
}

interface Member {
  name: string;
  ip: string;
  roles?: string[];
  status?: string;
}

/** A member's name as a host name (RFC 1123 label or dotted name), the only shape that may reach a file or command. */
const MEMBER_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * The membership command's members, sorted by name; null when there is no command or it fails.
 * A member whose name is not a host name or whose address is not an IP is left out (and logged):
 * what gossip says is not trusted further than that.
 */
async function listMembers(cmd?: string[]): Promise<Member[] | null> {
  if (!cmd?.length) return null;
  const res = await run(cmd, { timeoutMs: 3000 });
  if (res.exitCode !== 0) {
    log.debug(`${cmd.join(" ")}: ${res.stderr.trim()}`);
    return null;
  }
  try {
    const out = JSON.parse(res.stdout) as {
      members?: { name: string; addr: string; status: string; tags?: Record<string, string> }[];
    };
    return (out.members ?? [])
      .filter((m) => {
        const ok = typeof m.name === "string" && MEMBER_NAME.test(m.name) && isIP(String(m.addr).replace(/:\d+$/, "")) !== 0;
        if (!ok) log.warn(`member ${JSON.stringify(m.name)} at ${JSON.stringify(m.addr)} left out: not a host name and an IP`);
        return ok;
      })
      .map((m) => ({
        name: m.name,
        ip: m.addr.replace(/:\d+$/, ""),
        status: m.status,
        roles: m.tags?.role?.split(",").filter(Boolean),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  } catch {
    return null;
  }
}

/**
 * Points `name` at `ip` in a hosts file (temp + rename: readers never see half a file). `ip` comes
 * from the cluster (the leader key's value): anything but one IP address is refused and logged.
 */
export function pointHost(file: string, name: string, ip: string): boolean {
  if (isIP(ip) === 0) {
    log.warn(`not pointing ${name} at ${JSON.stringify(ip.slice(0, 64))}: not an IP address`);
    return false;
  }
  try {
    const lines = (existsSync(file) ? readFileSync(file, "utf8") : "").split("\n").filter((l) => l !== "");
    const line = `${ip}\t${name}`;
    const i = lines.findIndex((l) => l.split(/\s+/).slice(1).includes(name));
    if (lines[i] === line) return true;
    if (i >= 0) lines[i] = line;
    else lines.push(line);
    writeDurably(file, `${lines.join("\n")}\n`);
    log.info(`${name} → ${ip}`);
    return true;
  } catch (e) {
    log.warn(`could not point ${name} at ${ip} in ${file}: ${(e as Error).message}`);
    return false;
  }
}

export async function createAgent(opts: AgentOptions): Promise<Agent> {
  const client = opts.etcd ? etcdClient(opts.etcd) : undefined;
  const onLeader = (leader: string) => {
    if (opts.hostsFile) pointHost(opts.hostsFile, "planet-master", leader);
  };
  const election: LeaderElection | LeaderFollower | undefined = client
    ? new LeaderElection(client, opts.leaderKey, opts.ip, opts.termSeconds, opts.campaign ?? true, onLeader)
    : opts.followMasters?.length
      ? new LeaderFollower(
          opts.followMasters,
          async (master) => {
            const res = await fetch(`https://${master}:${opts.rpcPort}/leader`, {
              tls: tlsFiles(opts.secretsDir, "planet-rpc-client"),
              signal: AbortSignal.timeout(3000),
            });
            if (!res.ok) throw new Error(`HTTP ${res.status}`);
            return (await res.json()) as LeaderView;
          },
          onLeader,
          2000,
          (masters) => {
            log.info(`masters: ${masters.join(", ")}`);
            if (!opts.mastersFile) return;
            mkdirSync(dirname(opts.mastersFile), { recursive: true });
            writeDurably(opts.mastersFile, `${masters.join("\n")}\n`);
          },
        )
      : undefined;
  // A master names the cluster's masters to the followers: etcd's started voting members.
  let masters: string[] = [];
  let learners = new Set<string>();
  const refreshMasters = async () => {
    if (!client) return;
    const res = await withTimeout(client.cluster.memberList({ linearizable: false }), 3000, "etcd member list").catch(() => null);
    if (!res) return;
    const ipOf = (m: { peerURLs: string[] }) => /^https:\/\/([\d.]+):/.exec(m.peerURLs[0] ?? "")?.[1] ?? "";
    learners = new Set(res.members.filter((m) => m.isLearner).map(ipOf));
    masters = res.members
      .filter((m) => m.name && !m.isLearner && MEMBER_NAME.test(m.name))
      .map((m) => `${m.name}:${ipOf(m)}`)
      .filter((m) => isIP(m.split(":")[1] ?? "") === 4)
      .sort();
  };
  // Not awaited: at boot etcd may not answer yet, and the agent's API comes first.
  const mastersTimer = client ? setInterval(() => void refreshMasters(), 5000) : undefined;
  void refreshMasters();
  const now = opts.now ?? Date.now;
  const maxDrift = opts.maxDriftMs ?? 1000;
  // The original's satellite check: this node's clock against the leader's, over the mTLS API.
  const timeDrift: RunnableCheck = {
    name: "host-time-drift",
    plugin: "host",
    probe: async () => {
      // A follower asks the masters every few seconds: its last answer is fresh enough.
      const leader =
        election instanceof LeaderFollower
          ? election.leader
          : await withTimeout(election?.currentLeader() ?? Promise.resolve(null), 3000, "etcd: who leads");
      if (!leader || leader === opts.ip) return;
      const t0 = now();
      const res = await fetch(`https://${leader}:${opts.rpcPort}/time`, {
        tls: tlsFiles(opts.secretsDir, "planet-rpc-client"),
        signal: AbortSignal.timeout(3000),
      });
      const t1 = now();
      const { now: theirs } = (await res.json()) as { now: number };
      const drift = theirs - (t0 + t1) / 2;
      if (Math.abs(drift) > maxDrift) throw new Error(`clock differs from the leader ${leader} by ${Math.round(drift)} ms`);
    },
  };
  const runner = new CheckRunner(
    [...opts.checks, ...(election ? [timeDrift] : [])],
    { secretsDir: opts.secretsDir },
    opts.timing,
  );

  const health = (): NodeHealth & { skipped: { name: string; reason: string }[] } => {
    const s = runner.summary();
    return {
      node: opts.node,
      ip: opts.ip,
      roles: opts.roles,
      status: s.status,
      failed: s.failed,
      pending: s.pending,
      checks: runner.status.size,
      leader: election?.isLeader ?? false,
      ...(opts.image ? { image: opts.image } : {}),
      skipped: opts.skipped ?? [],
    };
  };

  const view: AgentView = {
    health,
    checks: () => [...runner.status.values()],
    leader: () => ({
      leader: election?.leader ?? null,
      self: opts.ip,
      isLeader: election?.isLeader ?? false,
      paused: election?.paused ?? false,
      ...(opts.campaign === false ? { follower: true } : {}),
      etcd: election?.etcdUp ? "up" : "down",
      ...(election instanceof LeaderFollower ? { via: "masters" as const } : {}),
      ...(masters.length
        ? { masters }
        : election instanceof LeaderFollower && election.known.length
          ? { masters: election.known }
          : {}),
      ...(election?.error ? { error: election.error } : election ? {} : { error: "no etcd endpoints configured" }),
    }),
    pause: async () => election?.pause(),
    resume: async () => election?.resume(),
    now,
    ...(opts.join ? { join: opts.join } : {}),
    ...(opts.renew ? { renew: opts.renew } : {}),
    ...(opts.leave ? { leave: opts.leave } : {}),
    ...(opts.trust ? { trust: opts.trust } : {}),
    ...(client ? { lock: new ClusterLock(client, opts.upgradeLockKey ?? `${dirname(opts.leaderKey)}/upgrade`, opts.node) } : {}),
    members: async () => {
      const listed = await listMembers(opts.membersCommand);
      const known = listed ?? (opts.members.length ? opts.members : [{ name: opts.node, ip: opts.ip }]);
      return Promise.all(
        known.map(async (m: Member): Promise<MemberHealth> => {
          if (m.status === "left" || m.status === "failed" || m.status === "leaving")
            return { name: m.name, ip: m.ip, roles: m.roles, status: m.status, error: `member ${m.status}` };
          if (learners.has(m.ip))
            return {
              name: m.name,
              ip: m.ip,
              roles: m.roles,
              status: "learning",
              error: "etcd learner: catching up before it votes",
            };
          if (m.ip === opts.ip) {
            const h = health();
            return { name: m.name, ip: m.ip, roles: m.roles, status: h.status, health: h };
          }
          try {
            const res = await fetch(`https://${m.ip}:${opts.rpcPort}/health`, {
              tls: tlsFiles(opts.secretsDir, "planet-rpc-client"),
              signal: AbortSignal.timeout(3000),
            });
            const h = (await res.json()) as NodeHealth;
            return { name: m.name, ip: m.ip, roles: m.roles, status: h.status, health: h };
          } catch (e) {
            return { name: m.name, ip: m.ip, roles: m.roles, status: "unreachable", error: (e as Error).message };
          }
        }),
      );
    },
  };
  const app = createApi(view);

  const servers: { stop(force?: boolean): void }[] = [];
  if (opts.socketPath) {
    mkdirSync(dirname(opts.socketPath), { recursive: true });
    rmSync(opts.socketPath, { force: true });
    servers.push(Bun.serve({ unix: opts.socketPath, fetch: app.fetch }));
  }
  const haveCerts = existsSync(join(opts.secretsDir, "planet-rpc-server.cert"));
  if (opts.rpcAddrs.length && !haveCerts)
    log.warn(`no planet-rpc-server.cert in ${opts.secretsDir}: the mTLS API is off (issue it: planet secrets init)`);
  if (haveCerts && opts.rpcAddrs.length) {
    const files = tlsFiles(opts.secretsDir, "planet-rpc-server") as { ca: string; cert: string; key: string };
    // Each connection's certificate picks the API it reaches: one HTTP server per role.
    servers.push(
      roleFront(
        opts.rpcAddrs,
        files,
        (role, socket) => Bun.serve({ unix: socket, fetch: createApi(view, role).fetch }),
        createJoinApi(view).fetch,
      ),
    );
  }
  runner.start();
  await election?.start();
  log.info(
    `agent ${opts.node} (${opts.roles.join("+")}): ${runner.status.size} checks, ${opts.etcd ? `election on ${opts.leaderKey}` : election ? `following the masters ${opts.followMasters?.join(",")}` : "no etcd"}, api ${[opts.socketPath, ...opts.rpcAddrs].filter(Boolean).join(" ")}`,
  );

  const close = async () => {
    clearInterval(mastersTimer);
    runner.stop();
    await election?.close();
    client?.close();
    for (const s of servers) s.stop(true);
    if (opts.socketPath && existsSync(opts.socketPath)) rmSync(opts.socketPath, { force: true });
  };
  return { runner, election, view, app, close, [Symbol.asyncDispose]: close };
}
