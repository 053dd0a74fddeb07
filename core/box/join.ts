import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type ErrorCode, PlanetError } from "../errors.ts";
import { run, selfCommand } from "../proc.ts";

const phase = "join";

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
