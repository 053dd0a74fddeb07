/**
 * Who may do what on the agent's API. The role rides in the client certificate's organisation
 * (`O=planet:<role>`, as Talos carries roles in its client certificates): `admin` (the cluster
 * directory's operator certificate, and anyone on the unix socket, which only root reaches),
 * `master`, `node` and `reader`. Any other certificate of the cluster CA — a kubelet's, the agent's
 * own server certificate — gets no role and is refused everywhere.
 *
 * Bun's HTTP server does not show a request's client certificate, so TLS ends in a `node:tls`
 * server, which does: each connection is piped, by its certificate's role, to an HTTP server of that
 * role on a private unix socket. A connection without a certificate reaches only the join protocol.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type TLSSocket, type Server as TlsServer } from "node:tls";
import { logger } from "../log.ts";

const log = logger("agent");

export const AGENT_ROLES = ["admin", "master", "node", "reader"] as const;
export type AgentRole = (typeof AGENT_ROLES)[number];

/** The organisation that gives a certificate its role on the agent's API. */
export const roleOrg = (role: AgentRole) => `planet:${role}`;

/**
 * Calls any host may make about itself, proved by its certificates' keys in the body: renewing its
 * own certificates, and leaving the cluster (its Node drained and deleted).
 */
const SELF_SERVICE = new Set(["POST /renew", "POST /leave"]);

/**
 * What each role may call: reading is everyone's; a host's own certificates are renewed by nodes
 * and masters alike; steering the cluster is the masters' and admins'.
 */
export function allowed(role: AgentRole | null, method: string, path = ""): boolean {
  if (!role) return false;
  if (method === "GET" || method === "HEAD") return true;
  if (SELF_SERVICE.has(`${method} ${path}`) && role !== "reader") return true;
  return role === "admin" || role === "master";
}

/** The role a peer certificate's subject carries (its `O` values), or null. */
export function roleOf(subject: { O?: string | string[] } | undefined): AgentRole | null {
  const orgs = subject?.O === undefined ? [] : Array.isArray(subject.O) ? subject.O : [subject.O];
  // A certificate naming several roles gets the least of them.
  for (const role of [...AGENT_ROLES].reverse()) if (orgs.includes(roleOrg(role))) return role;
  return null;
}

export interface RoleFront {
  stop(): void;
}

/** The header that carries a connection's source address to the join protocol; a client's own is dropped. */
export const PEER_HEADER = "x-planet-peer";

/**
 * Serves one connection without a client certificate with `fetch` (the join protocol), through
 * node's HTTP parser, so that each request carries the connection's real source address in
 * `PEER_HEADER`: what the join checks the host's claimed address against.
 */
function anonymousHttp(fetch: (req: Request) => Response | Promise<Response>) {
  return createHttpServer(async (req, res) => {
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (k !== PEER_HEADER && typeof v === "string") headers.set(k, v);
      headers.set(PEER_HEADER, (req.socket.remoteAddress ?? "").replace(/^::ffff:/, ""));
      const body = chunks.length && req.method !== "GET" && req.method !== "HEAD" ? Buffer.concat(chunks) : undefined;
      const answer = await fetch(new Request(`http://agent${req.url ?? "/"}`, { method: req.method, headers, body }));
      res.writeHead(answer.status, Object.fromEntries(answer.headers));
      res.end(Buffer.from(await answer.arrayBuffer()));
    } catch (e) {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "INTERNAL", message: (e as Error).message } }));
    }
  });
}

/**
 * mTLS listeners on `addrs` whose connections are handed to `serve(role)`'s HTTP server; a
 * certificate without a role is answered 403 by `serve(null)`; a connection without a certificate
 * is answered by `anonymous` (the join protocol), which sees its source address.
 */
export function roleFront(
  addrs: string[],
  tls: { ca: string; cert: string; key: string },
  serve: (role: AgentRole | null, socket: string) => { stop(force?: boolean): void },
  anonymous: (req: Request) => Response | Promise<Response>,
): RoleFront {
  const dir = mkdtempSync(join(tmpdir(), "planet-agent-"));
  chmodSync(dir, 0o700);
  const joinHttp = anonymousHttp(anonymous);
  const inner = new Map<string, { socket: string; server: { stop(force?: boolean): void } }>();
  for (const role of [...AGENT_ROLES, null]) {
    const socket = join(dir, `${role ?? "none"}.sock`);
    inner.set(role ?? "none", { socket, server: serve(role, socket) });
  }
  const servers: TlsServer[] = addrs.map((addr) => {
    const i = addr.lastIndexOf(":");
    // A certificate is asked for, not required: without one a connection reaches only the join
    // protocol; with one that does not verify, nothing.
    const server = createServer({ ...tls, requestCert: true, rejectUnauthorized: false }, (conn: TLSSocket) => {
      const peer = conn.getPeerCertificate();
      const presented = !!peer && Object.keys(peer).length > 0;
      if (presented && !conn.authorized) return conn.destroy();
      if (!presented) return void joinHttp.emit("connection", conn);
      const role = roleOf(peer.subject as { O?: string | string[] } | undefined);
      const to = inner.get(role ?? "none");
      if (!to) return conn.destroy();
      const up = connect(to.socket);
      const end = () => {
        conn.destroy();
        up.destroy();
      };
      conn.pipe(up);
      up.pipe(conn);
      for (const s of [conn, up]) {
        s.on("error", end);
        s.on("close", end);
      }
    });
    server.on("tlsClientError", (e) => log.debug(`agent API: TLS refused: ${e.message}`));
    server.listen(Number(addr.slice(i + 1)), addr.slice(0, i).replace(/^\[|\]$/g, ""));
    return server;
  });
  return {
    stop() {
      for (const s of servers) s.close();
      joinHttp.close();
      for (const { server } of inner.values()) server.stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
