import { Hono } from "hono";
import { type ErrorCode, PlanetError, toPlanetError } from "../errors.ts";
import type { Role } from "../plugin.ts";
import type { CheckStatus } from "./checks.ts";
import { type AgentRole, allowed, PEER_HEADER } from "./roles.ts";
import type { ClusterLock } from "./upgrade-lock.ts";

export interface NodeHealth {
  node: string;
  ip: string;
  roles: Role[];
  status: "healthy" | "degraded";
  failed: string[];
  pending: string[];
  checks: number;
  leader: boolean;
  /** The image this node runs (its manifest's version, target, digest, and the versions its upgrade rules name). */
  image?: { version: string; target: string; digest: string; versions?: Record<string, string> };
}

export interface LeaderView {
  /** IP of the current leader, or null when there is none (or etcd is unreachable). */
  leader: string | null;
  self: string;
  isLeader: boolean;
  paused: boolean;
  /** This node never campaigns (not a master): it follows whoever leads. */
  follower?: boolean;
  etcd: "up" | "down";
  /** `masters`: learned from the masters' agents (a host without an etcd credential); else from etcd. */
  via?: "masters";
  /** The cluster's masters now (`name:ip`, etcd's started voting members), as the masters' agents know them. */
  masters?: string[];
  error?: string;
}

export interface MemberHealth {
  name: string;
  ip: string;
  /**
   * `left`, `leaving` and `failed` come from the membership (serf): the member said goodbye (or is
   * saying it), or stopped answering gossip; `learning` is a master that joined and whose etcd
   * member is a learner still catching up (masters' agents see it).
   */
  status: "healthy" | "degraded" | "unreachable" | "left" | "leaving" | "failed" | "learning";
  roles?: string[];
  error?: string;
  health?: NodeHealth;
}

/** What the API needs from a running agent (tests pass a fake). */
export interface AgentView {
  health(): NodeHealth;
  checks(): CheckStatus[];
  leader(): LeaderView;
  pause(): Promise<void>;
  resume(): Promise<void>;
  members(): Promise<MemberHealth[]>;
  /** This node's clock in ms (tests skew it). */
  now?(): number;
  /** The cluster's upgrade lock (in etcd); absent without etcd. */
  lock?: ClusterLock;
  /** Hosts joining with a token (masters only): the cluster CA to pin, and the answer to a join. */
  join?: { ca(): string; answer(body: unknown, peer: string): Promise<unknown> };
  /** A host's certificates renewed with the masters' signer (masters only; secrets/renew.ts). */
  renew?(body: unknown): Promise<Record<string, string>>;
  /** A node taken out at its own request, proved by its kubelet certificate's key (masters only). */
  leave?(body: unknown): Promise<{ node: string }>;
  /** The CA certificate files hosts trust now, by file name (masters only; public certificates). */
  trust?(): Record<string, string>;
}

/**
 * What a connection without a client certificate reaches on the mTLS port: the join protocol and
 * nothing else (secrets/join.ts). A host that does not serve joins answers 404.
 */
export function createJoinApi(view: AgentView): Hono {
  const app = new Hono();
  const join = () => {
    if (!view.join)
      throw new PlanetError("NOT_FOUND", "this host does not issue certificates to joining hosts: join through a master");
    return view.join;
  };
  app.get("/join/ca", (c) => c.json({ ca: join().ca() }));
  // The connection's source address, as the TLS front saw it (roles.ts): what the host's claim is checked against.
  app.post("/join", async (c) =>
    c.json(await join().answer(await c.req.json().catch(() => ({})), c.req.header(PEER_HEADER) ?? "")),
  );
  app.notFound((c) =>
    c.json({ error: { code: "FORBIDDEN", message: "a client certificate is required (without one: POST /join only)" } }, 403),
  );
  app.onError((err, c) => {
    const e = toPlanetError(err);
    return c.json({ error: { code: e.code, message: e.message } }, STATUS[e.code] ?? 500);
  });
  return app;
}

const STATUS: Partial<Record<ErrorCode, 400 | 403 | 404 | 409 | 500 | 503>> = {
  FORBIDDEN: 403,
  JOIN_REFUSED: 403,
  DUPLICATE_NODE: 409,
  RENEW_REFUSED: 403,
  BAD_TOKEN: 400,
  NOT_FOUND: 404,
  USAGE: 400,
  ETCD_UNREACHABLE: 503,
  UPGRADE_LOCKED: 409,
};

/**
 * The agent's HTTP API, served on the unix socket (as `admin`: only root reaches it) and on the mTLS
 * port, where the client certificate's role decides (see roles.ts): reads for every role, pausing
 * the election and the upgrade lock for masters and admins, nothing for a certificate without one.
 */
export function createApi(view: AgentView, role: AgentRole | null = "admin"): Hono {
  const app = new Hono();
  app.use("*", async (c, next) => {
    if (!allowed(role, c.req.method, c.req.path))
      throw new PlanetError(
        "FORBIDDEN",
        role
          ? `${c.req.method} ${c.req.path} is for masters and admins; this certificate's role is ${role}`
          : "this certificate carries no planet role (O=planet:admin|master|node|reader)",
      );
    await next();
  });
  app.get("/health", (c) => c.json(view.health()));
  app.get("/checks", (c) => c.json(view.checks()));
  app.get("/plugins/:name", (c) => {
    const name = c.req.param("name");
    const checks = view.checks().filter((s) => s.plugin === name);
    if (checks.length === 0) throw new PlanetError("NOT_FOUND", `no checks of plugin ${name} on this node`);
    const failed = checks.filter((s) => s.state !== "ok").map((s) => s.name);
    return c.json({ plugin: name, status: failed.length ? "degraded" : "healthy", failed, checks });
  });
  app.get("/status", async (c) => {
    const members = await view.members();
    const status = members.every((m) => m.status === "healthy") ? "healthy" : "degraded";
    return c.json({ status, leader: view.leader(), members });
  });
  app.get("/leader", (c) => c.json(view.leader()));
  app.post("/leave", async (c) => {
    if (!view.leave) throw new PlanetError("NOT_FOUND", "this host does not take nodes out: ask a master");
    return c.json(await view.leave(await c.req.json().catch(() => ({}))));
  });
  app.post("/renew", async (c) => {
    if (!view.renew) throw new PlanetError("NOT_FOUND", "this host does not renew certificates: ask a master");
    return c.json({ certs: await view.renew(await c.req.json().catch(() => ({}))) });
  });
  app.get("/trust", (c) => {
    if (!view.trust) throw new PlanetError("NOT_FOUND", "this host hands out no trust: ask a master");
    return c.json({ files: view.trust() });
  });
  app.get("/time", (c) => c.json({ now: view.now?.() ?? Date.now() }));
  app.post("/leader/pause", async (c) => {
    await view.pause();
    return c.json(view.leader());
  });
  app.post("/leader/resume", async (c) => {
    await view.resume();
    return c.json(view.leader());
  });
  // The cluster's upgrade lock: read it, take it for an owner, release it (by force: whoever holds it).
  const lock = () => {
    if (!view.lock && view.leader().via === "masters")
      throw new PlanetError(
        "NOT_FOUND",
        "this host holds no etcd credential (a node): the cluster's upgrade lock is kept on the masters (a roll takes it there)",
      );
    if (!view.lock) throw new PlanetError("ETCD_UNREACHABLE", "this agent has no etcd, so no cluster upgrade lock");
    return view.lock;
  };
  app.get("/upgrade/lock", async (c) => c.json({ lock: await lock().get() }));
  app.post("/upgrade/lock", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { owner?: unknown; what?: unknown };
    if (typeof body.owner !== "string" || !body.owner || typeof body.what !== "string")
      throw new PlanetError("USAGE", "POST /upgrade/lock takes {owner, what}");
    return c.json({ lock: await lock().take(body.owner, body.what) });
  });
  app.delete("/upgrade/lock", async (c) => {
    const owner = c.req.query("owner") ?? "";
    const force = c.req.query("force") === "1";
    if (!owner && !force) throw new PlanetError("USAGE", "DELETE /upgrade/lock takes ?owner= (or ?force=1)");
    return c.json({ released: await lock().release(owner, force) });
  });
  app.notFound((c) => c.json({ error: { code: "NOT_FOUND", message: `no route ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((err, c) => {
    const e = toPlanetError(err);
    return c.json({ error: { code: e.code, message: e.message } }, STATUS[e.code] ?? 500);
  });
  return app;
}
