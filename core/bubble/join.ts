/**
 * A bubble and the cluster it joins, before it boots: `--join` gets a new host its secrets from a
 * master with a token, and a node that has its secrets asks a master whether it may join at all.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { joined } from "../../secrets/join.ts";
import { loadRecord } from "../../secrets/record.ts";
import { formatToken } from "../../secrets/token.ts";
import { type ErrorCode, PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { run, selfCommand } from "../proc.ts";
import type { Prepared, StartOptions } from "./prepare.ts";

const phase = "join";
const log = logger("bubble");

export interface JoinProbe {
  /** Masters' addresses, tried in order. */
  masters: string[];
  port: number;
  secretsDir: string;
  nodeName: string;
  publicIp: string;
  /** Seconds to keep trying a master that does not answer. */
  waitSeconds: number;
}

interface NodeObject {
  status?: {
    addresses?: { type: string; address: string }[];
    conditions?: { type: string; status: string; lastHeartbeatTime?: string }[];
  };
}

/**
 * Before a node boots: a master answers, its certificate is signed by the CA in the node's secrets
 * (same cluster), the apiserver takes the node's kubelet certificate, and no other live host
 * holds this node name. Throws one clear line otherwise; nothing has been written yet.
 */
export async function probeJoin(p: JoinProbe): Promise<string> {
  const read = (f: string) => readFileSync(join(p.secretsDir, f), "utf8");
  const tls = { ca: read("root.cert"), cert: read("kubelet.cert"), key: read("kubelet.key") };
  const end = Date.now() + p.waitSeconds * 1000;
  const errors = new Map<string, string>();
  for (;;) {
    for (const ip of p.masters) {
      const url = `https://${ip}:${p.port}/api/v1/nodes/${p.nodeName}`;
      let res: Response;
      try {
        res = await fetch(url, { tls, signal: AbortSignal.timeout(3000) });
      } catch (e) {
        const msg = (e as Error).message;
        if (/certificate|self.signed|issuer|verify/i.test(msg) || /CERT|SELF_SIGNED/.test((e as { code?: string }).code ?? ""))
          throw new PlanetError(
            "MASTER_CA_MISMATCH",
            `master ${ip}:${p.port} presents a certificate not signed by ${join(p.secretsDir, "root.cert")}: these secrets belong to another cluster; issue this host's from the cluster's directory (planet secrets host)`,
            { phase },
          );
        errors.set(ip, msg);
        continue;
      }
      if (res.status === 404) return ip;
      if (res.status === 401 || res.status === 403)
        throw new PlanetError(
          "JOIN_REFUSED",
          `master ${ip} refuses this node's kubelet certificate (HTTP ${res.status}); issue the secrets for node ${p.nodeName}: planet secrets host … --node-name ${p.nodeName}`,
          { phase },
        );
      if (!res.ok) {
        errors.set(ip, `HTTP ${res.status}`);
        continue;
      }
      const node = (await res.json()) as NodeObject;
      const at = node.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
      const ready = node.status?.conditions?.find((c) => c.type === "Ready");
      const fresh = ready?.lastHeartbeatTime && Date.now() - Date.parse(ready.lastHeartbeatTime) < 60_000;
      if (at && at !== p.publicIp && ready?.status === "True" && fresh)
        throw new PlanetError(
          "DUPLICATE_NODE",
          `a host named ${p.nodeName} already runs at ${at} and is Ready; give this one another --node-name (or stop that host and delete its Node)`,
          { phase },
        );
      return ip;
    }
    if (Date.now() > end) break;
    await Bun.sleep(1000);
  }
  const why = [...errors].map(([ip, e]) => `${ip}: ${e}`).join("; ");
  throw new PlanetError(
    "MASTER_UNREACHABLE",
    `no master answers on port ${p.port} within ${p.waitSeconds}s (${why}); start a master first or fix --master-ip/--initial-cluster`,
    { phase },
  );
}

/** `probeJoin` from inside a network namespace (a test host): the same check, run there. */
export async function probeJoinIn(netns: string | undefined, p: JoinProbe): Promise<string> {
  if (!netns) return probeJoin(p);
  const res = await run([
    "ip",
    "netns",
    "exec",
    netns,
    ...selfCommand(),
    "join-check",
    "--masters",
    p.masters.join(","),
    "--port",
    String(p.port),
    "--secrets-dir",
    p.secretsDir,
    "--node-name",
    p.nodeName,
    "--public-ip",
    p.publicIp,
    "--wait",
    String(p.waitSeconds),
  ]);
  if (res.exitCode === 0) return res.stdout.trim();
  const line = res.stderr.trim().split("\n").pop() ?? "";
  const m = /^([A-Z_]+): (?:\([\w-]+\) )?(.*)$/.exec(line);
  // The child's code is one of ours: it is this same program.
  throw new PlanetError(
    (m?.[1] as ErrorCode | undefined) ?? "JOIN_FAILED",
    m?.[2] ?? (line || `join-check exited ${res.exitCode}`),
    { phase },
  );
}

/** Whether the secrets dir carries what the probe presents (a node's kubelet certificate). */
export function canProbe(secretsDir: string): boolean {
  return ["root.cert", "kubelet.cert", "kubelet.key"].every((f) => existsSync(join(secretsDir, f)));
}

/**
 * `--join`: a host without secrets makes its keys and gets its certificates from a master (its
 * token checked there, the master's CA checked here against the token). A host that joined before
 * keeps what it has: a restart needs no token.
 */
export async function joinFirst(
  p: Prepared,
  opts: StartOptions,
  j: NonNullable<StartOptions["join"]>,
  rootfs: string,
): Promise<void> {
  if (!opts.secretsDir)
    throw new PlanetError("BAD_FLAG", "--join needs --secrets-dir: the folder where this host keeps the keys it makes", {
      phase: "join",
    });
  const had = loadRecord(opts.secretsDir)?.host;
  if (had && had.cluster !== j.token.caHash)
    throw new PlanetError(
      "SECRETS_OTHER_HOST",
      `--secrets-dir ${opts.secretsDir} holds the secrets of another cluster (CA sha256:${had.cluster}); give --join an empty folder`,
      { phase: "join" },
    );
  if (joined(opts.secretsDir)) return;
  if (existsSync(opts.secretsDir) && readdirSync(opts.secretsDir).length)
    throw new PlanetError(
      "NOT_OUR_DIR",
      `--secrets-dir ${opts.secretsDir} is not empty and holds no host's secrets; give --join an empty or new folder`,
      { phase: "join" },
    );
  log.info(`joining the cluster through ${j.master} with token ${j.token.id}`);
  // From the bubble's network (a test host's namespace, else the host's): the master issues
  // certificates for the address the join comes from. The token travels in the environment.
  const cmd = [
    ...(opts.netns ? ["ip", "netns", "exec", opts.netns] : []),
    ...selfCommand(),
    "secrets",
    "join",
    opts.secretsDir,
    "--master",
    j.master,
    "--node-name",
    p.nodeName,
    "--ip",
    p.publicIp,
    "--role",
    p.roles.join(","),
    "--rootfs",
    rootfs,
    "--port",
    String(p.env.PLANET_AGENT_PORT ?? 7575),
  ];
  const res = await run(cmd, { env: { ...process.env, PLANET_TOKEN: formatToken(j.token) }, timeoutMs: 120_000 });
  if (res.exitCode !== 0) {
    const line =
      res.stderr
        .trim()
        .split("\n")
        .filter((l) => /^[A-Z_]+: /.test(l))
        .pop() ?? res.stderr.trim();
    const m = /^([A-Z_]+): (.*)$/.exec(line);
    // The child's line already names its phase: `(join)` is not said twice.
    const message = (m?.[2] ?? line).replace(/^\(join\) /, "");
    throw new PlanetError((m?.[1] as ErrorCode | undefined) ?? "JOIN_FAILED", message, { phase: "join" });
  }
  log.success(
    res.stderr
      .trim()
      .split("\n")
      .pop()
      ?.replace(/^.*?\] /, "") ?? "joined",
  );
}
