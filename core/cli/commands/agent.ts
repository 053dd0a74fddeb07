import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { addLearner, listMembers, rootClient } from "../../../plugins/etcd/members.ts";
import { answerJoin, type JoinRequest } from "../../../secrets/join.ts";
import { KUBELET_SERVING, type NodeAddresses, type ServingCsr, servingRefusal } from "../../../secrets/kubelet-serving.ts";
import { answerRenew, proveHost, type RenewRequest, trustFiles } from "../../../secrets/renew.ts";
import { checkToken } from "../../../secrets/token.ts";
import { type AgentOptions, createAgent } from "../../agent/agent.ts";
import { hostChecks, manifestChecks } from "../../agent/checks.ts";
import { AGENT_SOCKET } from "../../agent/client.ts";
import { PlanetError } from "../../errors.ts";
import { Kube, type KubeError, loadKubeconfig } from "../../kube/client.ts";
import { logger } from "../../log.ts";
import { certsFor, type Manifest, readManifest } from "../../manifest.ts";
import type { Role } from "../../plugin.ts";
import { ruledVersions } from "../../upgrade/skew.ts";
import { debugArg, multi } from "../_args.ts";
import { removeNode } from "./leave.ts";

const log = logger("agent");

/** `name:ip,name:ip` → members. */
export function parseMembers(text: string | undefined): { name: string; ip: string }[] {
  return (text ?? "")
    .split(",")
    .filter(Boolean)
    .map((m) => {
      const [name, ip] = m.split(":");
      if (!name || !ip) throw new PlanetError("BAD_FLAG", `initial cluster member ${m}: expected name:ip`);
      return { name, ip };
    });
}

function seconds(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!m) throw new PlanetError("BAD_FLAG", `${flag} ${text}: expected a duration such as 10s`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "m" ? n * 60 : n;
}

/**
 * How long the host of Node `name` has gone without its kubelet's heartbeat (its Lease in
 * kube-node-lease, renewed every 10 s), in ms; null when there is no such Node.
 */
async function heartbeatAge(kube: Kube, name: string): Promise<number | null> {
  const missing = (e: KubeError) => {
    if (e.status === 404) return null;
    throw new PlanetError("JOIN_REFUSED", `cannot check whether ${name} is taken: ${e.message}`);
  };
  const node = await kube.get(`/api/v1/nodes/${encodeURIComponent(name)}`).catch(missing);
  if (!node) return null;
  const lease = await kube
    .get<{ spec?: { renewTime?: string } }>(
      `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${encodeURIComponent(name)}`,
    )
    .catch(missing);
  const renewed = lease?.spec?.renewTime ? Date.parse(lease.spec.renewTime) : 0;
  return Date.now() - renewed;
}

/**
 * A master issues certificates to hosts that join with a token: it holds the signer's key and an
 * admin credential to read the tokens (bootstrap token Secrets) through the local apiserver.
 */
function joinService(
  dir: string,
  roles: Role[],
  manifest: Manifest,
  etcdEndpoints: string[],
): Pick<Required<AgentOptions>, "join" | "renew" | "trust" | "leave"> | null {
  if (!roles.includes("master") || !existsSync(join(dir, "csr-signer.key")) || !existsSync(join(dir, "admin.kubeconfig")))
    return null;
  const kubeOf = () => new Kube(loadKubeconfig(join(dir, "admin.kubeconfig"), "https://127.0.0.1:6443"));
  return {
    // What hosts trust now: during a CA rotation, the old CA and the new one.
    trust: () => trustFiles(dir),
    // A node leaving at its own request: proved as a renewal is (its kubelet certificate and a request
    // signed with its key), then drained and its Node deleted with the admin's credential. A master
    // leaves with planet leave on itself (its etcd member too).
    leave: async (body) => {
      const { node } = proveHost(dir, certsFor(manifest, ["node"]), body as RenewRequest);
      if (!node) throw new PlanetError("RENEW_REFUSED", "the proof names no node: send the kubelet certificate");
      const etcd = rootClient({ endpoints: etcdEndpoints, dir });
      const master = await listMembers(etcd)
        .then((ms) => ms.some((m) => m.name === node))
        .finally(() => etcd.close());
      if (master) throw new PlanetError("BAD_ROLE", `${node} is a master: it leaves with planet leave in its own bubble`);
      await removeNode("https://127.0.0.1:6443", node);
      log.info(`${node} left the cluster at its own request: drained, its Node deleted`);
      return { node };
    },
    // A node's certificates, proved by their keys (secrets/renew.ts), for a node that is still a member.
    renew: async (body) => {
      const { certs, node } = answerRenew(dir, certsFor(manifest, ["node"]), body as RenewRequest);
      await kubeOf()
        .get(`/api/v1/nodes/${node}`)
        .catch((e: KubeError) => {
          throw new PlanetError(
            "RENEW_REFUSED",
            e.status === 404
              ? `${node} is no Node of this cluster (removed?): join again with a token`
              : `cannot check ${node}: ${e.message}`,
          );
        });
      log.info(`renewed ${Object.keys(certs).join(", ")} of ${node}`);
      return certs;
    },
    join: {
      ca: () => readFileSync(join(dir, "root.cert"), "utf8"),
      answer: async (body, peer) => {
        const b = body as JoinRequest;
        const m = /^([a-z0-9]{6})\.([a-z0-9]{16})$/.exec(typeof b.token === "string" ? b.token : "");
        if (!m) throw new PlanetError("BAD_TOKEN", "the join carries no token (<id>.<secret>)");
        const kube = kubeOf();
        const role = await checkToken(kube, { id: m[1] as string, secret: m[2] as string, caHash: "" });
        // A name stays with its live host: a Node of that name that heartbeats refuses the join. One
        // whose host is gone (no heartbeat for a minute: reinstalled, its disk lost) is replaced by a
        // node joining under its name; a master's name is freed by planet remove (etcd's quorum).
        // An apiserver that cannot say refuses too.
        const stale = await heartbeatAge(kube, String(b.nodeName));
        if (stale !== null && (role === "master" || stale < 60_000))
          throw new PlanetError(
            "DUPLICATE_NODE",
            role === "master"
              ? `a Node named ${b.nodeName} exists; give this master another --node-name, or take the old one out first (planet remove ${b.nodeName} on a master)`
              : `a Node named ${b.nodeName} exists and its host is alive; give this host another --node-name, or take that one out first (planet remove ${b.nodeName} on a master)`,
          );
        const answer = await answerJoin(dir, certsFor(manifest, [role]), b, role, peer);
        // The old Node goes only once the join itself checked out: a refused join changes nothing.
        if (stale !== null) {
          await kube.delete(`/api/v1/nodes/${encodeURIComponent(String(b.nodeName))}`);
          log.warn(
            `Node ${b.nodeName} had no heartbeat for ${Math.round(stale / 1000)} s: replaced by the host joining under its name`,
          );
        }
        // etcd last, once all else is checked: a master becomes a learner; every host learns the masters.
        const etcd = rootClient({ endpoints: etcdEndpoints, dir });
        try {
          const members =
            role === "master" ? await addLearner(etcd, b.nodeName, b.ip) : (await listMembers(etcd)).filter((m) => !m.learner);
          answer.masters = members.map((m) => `${m.name || b.nodeName}:${m.ip}`);
          if (role === "master") log.info(`etcd: ${b.nodeName} (${b.ip}) added as a learner`);
        } finally {
          etcd.close();
        }
        log.info(
          `issued ${Object.keys(answer.record.files).length} secrets to ${b.nodeName} (${b.ip}) joining as a ${role} with token ${m[1]}`,
        );
        return answer;
      },
    },
  };
}

interface Csr extends ServingCsr {
  metadata: { name: string };
  status?: { conditions?: { type: string }[]; certificate?: string };
}

/**
 * On masters: approves or denies the kubelets' serving-certificate requests (secrets/kubelet-serving.ts)
 * every two seconds; every master does, an approval that another made first is a conflict, ignored.
 */
function servingApprover(dir: string, roles: Role[]): (() => void) | null {
  if (!roles.includes("master") || !existsSync(join(dir, "admin.kubeconfig"))) return null;
  const path = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
  let busy = false;
  const pass = async () => {
    const kube = new Kube(loadKubeconfig(join(dir, "admin.kubeconfig"), "https://127.0.0.1:6443"));
    const list = await kube.get<{ items: Csr[] }>(
      `${path}?fieldSelector=spec.signerName%3D${encodeURIComponent(KUBELET_SERVING)}`,
    );
    for (const csr of list.items.filter((c) => !c.status?.conditions?.length)) {
      const who = /^system:node:(.+)$/.exec(csr.spec.username ?? "")?.[1];
      const node = who
        ? await kube
            .get<{ metadata: { name: string }; status?: { addresses?: NodeAddresses["addresses"] } }>(
              `/api/v1/nodes/${encodeURIComponent(who)}`,
            )
            .then(
              (n) => ({ name: n.metadata.name, addresses: n.status?.addresses ?? [] }),
              (e: KubeError) => {
                if (e.status === 404) return null;
                throw e;
              },
            )
        : null;
      const why = servingRefusal(csr, node);
      // A Node not registered yet may be soon: its request waits rather than being denied.
      if (why && who && !node) continue;
      const condition = why
        ? { type: "Denied", status: "True", reason: "PlanetNotTheNodesOwn", message: why }
        : { type: "Approved", status: "True", reason: "PlanetNodeServing", message: `serving certificate of Node ${who}` };
      await kube
        .request("PUT", `${path}/${csr.metadata.name}/approval`, {
          ...csr,
          status: {
            ...csr.status,
            conditions: [...(csr.status?.conditions ?? []), { ...condition, lastUpdateTime: new Date().toISOString() }],
          },
        })
        .then(
          () =>
            why
              ? log.warn(`denied ${csr.metadata.name} of ${csr.spec.username}: ${why}`)
              : log.info(`approved ${csr.metadata.name}: ${condition.message}`),
          (e: KubeError) => {
            if (e.status !== 409) throw e;
          },
        );
    }
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    pass()
      .catch((e: Error) => log.debug(`kubelet serving certificates: ${e.message}`))
      .finally(() => {
        busy = false;
      });
  }, 2000);
  return () => clearInterval(timer);
}

export const agentCmd = defineCommand({
  meta: { name: "agent", description: "run inside the bubble: health checks, leader election, status API" },
  args: {
    ...debugArg,
    "leader-key": { type: "string", description: "etcd key to campaign on", required: true },
    "election-key": {
      type: "string",
      description: "accepted for compatibility; participation is paused with planet leader pause",
    },
    term: { type: "string", description: "leader lease", default: "10s" },
    "rpc-addr": { type: "string", description: "ip:port for the mTLS API (repeatable)" },
    "rpc-port": { type: "string", description: "port members' agents listen on", default: "7575" },
    "etcd-endpoints": { type: "string", description: "comma list (default https://<master-ip>:2379)" },
    "etcd-cafile": { type: "string", description: "CA of etcd's certificates", default: "/var/state/etcd-ca.cert" },
    "etcd-certfile": { type: "string", description: "client certificate (etcd user = its CN)" },
    "etcd-keyfile": { type: "string", description: "its key" },
    "etcd-server-name": { type: "string", description: "a DNS name in etcd's server certificate (checked for every endpoint)" },
    "hosts-file": {
      type: "string",
      description: "hosts file whose planet-master line follows the leader ('' = leave it)",
      default: "/etc/hosts",
    },
    "masters-file": {
      type: "string",
      description: "file kept holding the cluster's masters, name:ip a line, as the masters name them ('' = none)",
      default: "/run/planet/masters",
    },
    "secrets-dir": { type: "string", default: "/var/state" },
    socket: { type: "string", default: AGENT_SOCKET },
    "initial-cluster": { type: "string", description: "members name:ip,... (default PLANET_INITIAL_CLUSTER)" },
  },
  async run({ args, rawArgs }) {
    const image = readManifest("/");
    if (!image) throw new PlanetError("NOT_AN_IMAGE", "planet agent runs inside a bubble (no /etc/planet/manifest.json)");
    const env = process.env;
    const roles = (env.PLANET_ROLE ?? image.manifest.roles.join(",")).split(",") as Role[];
    // Plugins left out at start (`--disable-flannel`) have no units running: their checks neither.
    const off = (env.PLANET_DISABLED_PLUGINS ?? "").split(",").filter(Boolean);
    const wanted = image.manifest.checks.filter((c) => !off.includes(c.plugin));
    const { checks, skipped } = manifestChecks(wanted, roles);
    for (const sk of skipped) log.warn(`check ${sk.name} skipped: ${sk.reason}`);
    checks.push(
      // The data volumes `planet start` mounted (the plugins declare them).
      ...hostChecks({ volumes: (env.PLANET_VOLUMES ?? "").split(",").filter((v) => v && existsSync(v)) }),
    );
    const master = env.KUBE_MASTER_IP ?? "127.0.0.1";
    const members = parseMembers(args["initial-cluster"] ?? env.PLANET_INITIAL_CLUSTER);
    const etcdCert = args["etcd-certfile"] && existsSync(args["etcd-certfile"]) ? args["etcd-certfile"] : undefined;
    const endpoints = (args["etcd-endpoints"] || env.PLANET_ETCD_ENDPOINTS || `https://${master}:2379`).split(",");
    const agent = await createAgent({
      node: env.KUBE_NODE_NAME ?? "node",
      ip: env.PLANET_PUBLIC_IP ?? "127.0.0.1",
      roles,
      image: {
        version: image.manifest.version,
        target: image.manifest.target,
        digest: image.digest,
        versions: ruledVersions(image.manifest),
      },
      checks,
      skipped,
      secretsDir: args["secrets-dir"],
      leaderKey: args["leader-key"],
      termSeconds: seconds(args.term, "--term"),
      // A host without an etcd client certificate (a node) learns who leads from the masters' agents.
      ...(etcdCert
        ? {
            etcd: {
              endpoints,
              ca: args["etcd-cafile"],
              cert: etcdCert,
              key: args["etcd-keyfile"],
              serverName: args["etcd-server-name"],
            },
          }
        : { followMasters: members.filter((m) => m.ip !== env.PLANET_PUBLIC_IP).map((m) => m.ip) }),
      socketPath: args.socket,
      rpcAddrs: multi(rawArgs, "rpc-addr"),
      rpcPort: Number(args["rpc-port"]),
      members,
      membersCommand: env.PLANET_MEMBERS_COMMAND?.split(" ").filter(Boolean),
      // Masters lead; nodes follow (planet-master points at the leader on every host).
      campaign: roles.includes("master"),
      // Behind a node-local load balancer (PLANET_MASTER_LB) planet-master stays on it: every master serves.
      hostsFile: env.PLANET_MASTER_LB ? undefined : args["hosts-file"] || undefined,
      mastersFile: args["masters-file"] || undefined,
      ...(joinService(args["secrets-dir"], roles, image.manifest, endpoints) ?? {}),
    });
    const stopApprover = servingApprover(args["secrets-dir"], roles);
    await new Promise<void>((resolve) => {
      for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => resolve());
    });
    stopApprover?.();
    await agent.close();
  },
});
