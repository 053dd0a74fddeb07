/**
 * Many hosts, one cluster: a master and a node, each built from its own image and booted in its
 * own test host on one bridge, join up — both Nodes Ready, the master tainted, pods on each talking
 * across the vxlan overlay, DNS from the node, the membership in `planet status` on every host —
 * and each host holds only its own trust: no CA key on the node, its kubelet certificate confined
 * to its own Node, etcd closed to the cluster CA and flannel confined to its prefix.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { connect, type PeerCertificate } from "node:tls";
import forge from "node-forge";
import { readState } from "../core/bubble/state.ts";
import { certRequests } from "../core/cli/commands/secrets.ts";
import { Kube, type KubeError, loadKubeconfig } from "../core/kube/client.ts";
import type { Role } from "../core/plugin.ts";
import { issueHost } from "../secrets/host.ts";
import { initSecrets } from "../secrets/init.ts";
import { csrPem, parseCert, parseKey, pemsOf, signedBy } from "../secrets/pki.ts";
import { caHash } from "../secrets/token.ts";
import { buildTest, busybox, canBoot, hostSnapshot, planet, planetAsync, REPO, sh, startArgs, waitFor } from "./helpers.ts";

const BRIDGE = "ptc-br";
const CLUSTER = "ctest";
const M1 = { name: "m1", host: "ptc-m1", ip: "10.217.0.1" };
const N1 = { name: "n1", host: "ptc-n1", ip: "10.217.0.2" };
const N2 = { name: "n2", host: "ptc-n2", ip: "10.217.0.3" };
const work = join(REPO, "build", "test-cluster-work");
const clusterDir = join(work, "cluster");
const secretsOf = (name: string) => join(work, `secrets-${name}`);
const caHashOf = (file: string) => caHash(readFileSync(file, "utf8"));

/** The certificate a TLS server presents (not verified: it is what is being looked at). */
function peerCertificate(host: string, port: number): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port, rejectUnauthorized: false }, () => {
      resolve(sock.getPeerCertificate());
      sock.end();
    });
    sock.on("error", reject);
  });
}

type AltName = { type: number; value?: string; ip?: string };

/** A PKCS#10 request (RSA) in system:nodes with the given CN and alternative names. */
function csrWith(cn: string, alt: AltName[]): string {
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const r = forge.pki.createCertificationRequest();
  r.publicKey = keys.publicKey;
  r.setSubject([
    { shortName: "CN", value: cn },
    { shortName: "O", value: "system:nodes" },
  ]);
  if (alt.length) r.setAttributes([{ name: "extensionRequest", extensions: [{ name: "subjectAltName", altNames: alt }] }]);
  r.sign(keys.privateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(r);
}

interface Pod {
  status: { podIP?: string; phase?: string };
}
interface Node {
  metadata: { labels?: Record<string, string> };
  spec: { taints?: { key: string; effect: string }[] };
  status: { conditions?: { type: string; status: string }[] };
}

describe.if(canBoot)("a master and a node in two test hosts on one bridge (master and node images)", () => {
  let masterRootfs = "";
  let nodeRootfs = "";
  let joinRootfs = "";
  let before: Record<string, unknown> = {};
  let kube: Kube;

  const issue = (h: typeof M1, roles: Role[], target: string, from = clusterDir, dir = secretsOf(h.name)) =>
    issueHost(from, dir, certRequests(target, roles).requests, {
      nodeName: h.name,
      ips: [h.ip],
      hosts: [],
      roles,
      validityDays: 365,
    });
  const start = (rootfs: string, h: typeof M1 & { secrets?: string }, ...extra: string[]) =>
    planetAsync(
      startArgs(
        {
          rootfs,
          host: h.host,
          cluster: CLUSTER,
          node: h.name,
          secrets: h.secrets ?? secretsOf(h.name),
          data: join(work, `data-${h.host}`),
        },
        ...extra,
      ),
    );
  const startNode = (...extra: string[]) => start(nodeRootfs, N1, "--master-ip", M1.ip, ...extra);
  const inBubble = (rootfs: string, ...cmd: string[]) => planet("exec", "--rootfs", rootfs, "--", ...cmd);
  /** Nothing of a refused start is left: no state, no runc container, no data folder. */
  const nothingLeft = (h: typeof M1) => {
    expect(readState(`planet-${CLUSTER}-${h.host}`)).toBeNull();
    expect(existsSync(join(work, `data-${h.host}`))).toBe(false);
  };

  beforeAll(async () => {
    masterRootfs = join(buildTest("master", ["--target", "master"]), "rootfs");
    nodeRootfs = join(buildTest("node", ["--target", "node"]), "rootfs");
    // A second node image (one rootfs boots one bubble): the host that joins with a token.
    joinRootfs = join(buildTest("node-join", ["--target", "node"]), "rootfs");
    for (const r of [masterRootfs, nodeRootfs, joinRootfs]) planet("stop", "--rootfs", r);
    for (const h of [M1, N1, N2]) planet("dev-host", "down", h.host);
    rmSync(work, { recursive: true, force: true });
    before = hostSnapshot();
    for (const h of [M1, N1, N2]) {
      const up = planet("dev-host", "up", h.host, "--ip", h.ip, "--bridge", BRIDGE);
      if (up.exitCode !== 0) throw new Error(`dev-host up ${h.host}: ${up.stderr}`);
    }
    await initSecrets(clusterDir, certRequests("dev").requests, {
      domain: "cluster.local",
      serviceSubnet: "10.100.0.0/16",
      ips: [M1.ip],
      hosts: [],
      nodeName: M1.name,
      validityDays: 365,
    });
    await issue(M1, ["master"], "master");
    await issue(N1, ["node"], "node");
    kube = new Kube(loadKubeconfig(join(clusterDir, "admin.kubeconfig")));
  }, 240_000);

  afterAll(() => {
    for (const r of [joinRootfs, nodeRootfs, masterRootfs]) if (r) planet("stop", "--rootfs", r);
    for (const h of [M1, N1, N2]) planet("dev-host", "down", h.host);
  });

  test("bad input before the master runs: another host's secrets, a master missing from --initial-cluster, no master answering", async () => {
    const other = await start(nodeRootfs, { ...N1, name: "n9", secrets: secretsOf(N1.name) }, "--master-ip", M1.ip);
    expect(other.exitCode).toBe(1);
    expect(other.stderr).toContain("SECRETS_OTHER_HOST");
    expect(other.stderr).toContain("holds the secrets of host n1, not --node-name n9");
    const wrongIp = await start(nodeRootfs, { ...N1, host: N2.host }, "--master-ip", M1.ip);
    expect(wrongIp.stderr).toContain(`was issued for ${N1.ip}, not --public-ip ${N2.ip}`);
    const notIn = await start(masterRootfs, M1, "--initial-cluster", `m2:10.217.0.5,m3:10.217.0.6`);
    expect(notIn.exitCode).toBe(1);
    expect(notIn.stderr).toContain(`does not include this master as m1:${M1.ip}`);
    const silent = await startNode("--join-timeout", "2");
    expect(silent.exitCode).toBe(1);
    expect(silent.stderr).toContain("MASTER_UNREACHABLE");
    expect(silent.stderr).toContain("start a master first or fix --master-ip");
    for (const h of [M1, N1, N2]) nothingLeft(h);
  }, 120_000);

  test("the master boots, registers as a tainted control-plane Node, and turns etcd's auth on", async () => {
    const res = await start(masterRootfs, M1);
    expect(res.stderr).toContain("ready in");
    expect(res.exitCode).toBe(0);
    const node = await waitFor(
      "m1 Ready and labelled",
      async () => {
        const n = await kube.get<Node>("/api/v1/nodes/m1");
        const ready = n.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
        return ready && n.metadata.labels?.["node-role.kubernetes.io/control-plane"] !== undefined ? n : null;
      },
      120_000,
      1000,
    );
    expect(node.spec.taints).toContainEqual(
      expect.objectContaining({ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }),
    );
    await waitFor(
      "etcd auth on",
      () => inBubble(masterRootfs, "etcdctl", "auth", "status").stdout.includes("Status: true"),
      60_000,
      1000,
    );
  }, 180_000);

  test("a node with another cluster's secrets or a live host's name is refused; nothing half-joined", async () => {
    const foreign = join(work, "foreign");
    await initSecrets(foreign, certRequests("dev").requests, {
      domain: "cluster.local",
      serviceSubnet: "10.100.0.0/16",
      ips: ["10.217.0.9"],
      hosts: [],
      nodeName: "x",
      validityDays: 365,
    });
    await issue(N2, ["node"], "node", foreign, secretsOf(N2.name));
    const res = await start(nodeRootfs, N2, "--master-ip", M1.ip);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain("MASTER_CA_MISMATCH");
    // A second host calling itself m1 (with secrets issued for that name and its own address).
    rmSync(secretsOf(N2.name), { recursive: true });
    await issue({ ...N2, name: "m1" }, ["node"], "node", clusterDir, secretsOf(N2.name));
    const dup = await start(nodeRootfs, { ...N2, name: "m1", secrets: secretsOf(N2.name) }, "--master-ip", M1.ip);
    expect(dup.exitCode).toBe(1);
    expect(dup.stderr).toContain(`DUPLICATE_NODE: (join) a host named m1 already runs at ${M1.ip}`);
    nothingLeft(N2);
    // --disable: a plugin the image lacks, or one another plugin needs, is one line.
    const unknown = await start(nodeRootfs, N2, "--master-ip", M1.ip, "--disable", "etcd");
    expect(unknown.stderr).toMatch(/UNKNOWN_PLUGIN: --disable etcd: image target node has no plugin etcd \(it has .*apilb/);
    const needed = await start(nodeRootfs, N2, "--master-ip", M1.ip, "--disable", "agent");
    expect(needed.stderr).toMatch(/BAD_FLAG: --disable agent: plugin [a-z-]+ requires it/);
    expect(needed.exitCode).toBe(1);
    nothingLeft(N2);
    expect((await kube.get<{ items: unknown[] }>("/api/v1/nodes")).items).toHaveLength(1);
  }, 120_000);

  test("the node joins: Ready, its flannel lease taken, both hosts' pods talk across the overlay", async () => {
    const res = await startNode();
    expect(res.stderr).toContain(`joining the cluster through master ${M1.ip}`);
    expect(res.exitCode).toBe(0);
    await waitFor(
      "n1 Ready",
      async () =>
        (await kube.get<Node>("/api/v1/nodes/n1")).status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      120_000,
      1000,
    );
    await waitFor("default service account", () => kube.get("/api/v1/namespaces/default/serviceaccounts/default"), 60_000);
    // An HTTP server on each host, pinned there; the master's pod tolerates its taint.
    for (const node of ["m1", "n1"])
      await kube.create("/api/v1/namespaces/default/pods", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: `web-${node}`, labels: { app: `web-${node}` } },
        spec: {
          nodeName: node,
          tolerations: [{ operator: "Exists" }],
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: "main",
              image: "docker.io/library/busybox:latest",
              imagePullPolicy: "IfNotPresent",
              command: ["sh", "-c", `mkdir -p /www && echo ${node} > /www/who && exec httpd -f -p 8080 -h /www`],
            },
          ],
        },
      });
    const ips: Record<string, string> = {};
    for (const node of ["m1", "n1"])
      ips[node] = await waitFor(
        `web-${node} running`,
        async () => {
          const p = await kube.get<Pod>(`/api/v1/namespaces/default/pods/web-${node}`);
          return p.status.phase === "Running" ? p.status.podIP : undefined;
        },
        90_000,
        500,
      );
    expect(ips.m1).not.toBe(ips.n1);
    const get = async (from: string, host: string, port: number) => {
      const r = await kube.exec("default", `web-${from}`, [
        "sh",
        "-c",
        `printf 'GET /who HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${host} ${port} | tail -n 1`,
      ]);
      return r.stdout.trim();
    };
    expect(await get("n1", ips.m1 as string, 8080)).toBe("m1");
    expect(await get("m1", ips.n1 as string, 8080)).toBe("n1");
    await kube.create("/api/v1/namespaces/default/services", {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web-m1" },
      spec: { selector: { app: "web-m1" }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    // Service by name from the node: cluster DNS, then kube-proxy to the master's pod over vxlan.
    expect(await waitFor("web-m1 through its Service", async () => (await get("n1", "web-m1", 80)) === "m1", 30_000, 500)).toBe(
      true,
    );
    const dns = await kube.exec("default", "web-n1", ["nslookup", "kubernetes.default.svc.cluster.local"]);
    expect(dns.stdout).toContain("10.100.0.1");
  }, 300_000);

  test("NetworkPolicy is enforced on both hosts: deny-all, then allow from a label, ingress and egress, across hosts and on one", async () => {
    // Clients beside the servers of the test above: one allowed by label and one not on the node
    // (web-n1's host), and one allowed on the master (web-m1 is the master's unlabelled one).
    const clients = [
      { name: "client-m1", node: "m1", labels: { role: "client" } },
      { name: "client-n1", node: "n1", labels: { role: "client" } },
      { name: "other-n1", node: "n1", labels: {} },
    ];
    for (const c of clients)
      await kube.create("/api/v1/namespaces/default/pods", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: c.name, labels: c.labels },
        spec: {
          nodeName: c.node,
          tolerations: [{ operator: "Exists" }],
          terminationGracePeriodSeconds: 1,
          containers: [busybox(["sleep", "3600"])],
        },
      });
    for (const c of clients)
      await waitFor(
        `${c.name} running`,
        async () => (await kube.get<Pod>(`/api/v1/namespaces/default/pods/${c.name}`)).status.phase === "Running" || undefined,
        90_000,
        500,
      );
    const web = await kube.get<Pod>("/api/v1/namespaces/default/pods/web-n1");
    const target = web.status.podIP as string;
    /** What web-n1 answers to `from` ("n1"), or "" when the connection is refused or dropped. */
    const reach = async (from: string, port = 8080) =>
      (
        await kube.exec("default", from, [
          "sh",
          "-c",
          `printf 'GET /who HTTP/1.0\r\n\r\n' | nc -w 2 ${target} ${port} | tail -n 1`,
        ])
      ).stdout.trim();
    // web-n1 serves a second port too (busybox httpd without -f goes to the background).
    expect((await kube.exec("default", "web-n1", ["httpd", "-p", "8081", "-h", "/www"])).exitCode).toBe(0);
    expect(await waitFor("web-n1 on 8081", async () => (await reach("client-n1", 8081)) === "n1" || undefined, 20_000, 500)).toBe(
      true,
    );
    const all = ["web-m1", "client-m1", "client-n1", "other-n1"];
    const answers = async () => Object.fromEntries(await Promise.all(all.map(async (p) => [p, await reach(p)] as const)));
    const everyone = Object.fromEntries(all.map((p) => [p, "n1"]));
    expect(await answers()).toEqual(everyone);

    const policies = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
    const policy = (name: string, spec: Record<string, unknown>) =>
      kube.create(policies, { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name }, spec });
    /** Polls until the answers are `want` (kube-router syncs on the policy's event), then holds them. */
    const settle = async (what: string, want: Record<string, string>) => {
      await waitFor(what, async () => JSON.stringify(await answers()) === JSON.stringify(want) || undefined, 60_000, 1000);
      expect(await answers()).toEqual(want);
    };

    // Deny all ingress to web-n1: refused from its own host's pods and from the master's.
    await policy("web-deny-all", { podSelector: { matchLabels: { app: "web-n1" } }, policyTypes: ["Ingress"] });
    await settle("deny-all enforced", { "web-m1": "", "client-m1": "", "client-n1": "", "other-n1": "" });
    // The host itself still reaches it (the kubelet's probes do), as upstream's semantics leave it.
    const fromHost = inBubble(nodeRootfs, "curl", "-s", "-m", "3", `http://${target}:8080/who`);
    expect(fromHost.stdout.trim()).toBe("n1");

    // Allow from pods labelled role=client (any host): exactly those two get through.
    await policy("web-allow-clients", {
      podSelector: { matchLabels: { app: "web-n1" } },
      policyTypes: ["Ingress"],
      ingress: [{ from: [{ podSelector: { matchLabels: { role: "client" } } }], ports: [{ port: 8080, protocol: "TCP" }] }],
    });
    await settle("allow-from-label enforced", { "web-m1": "", "client-m1": "n1", "client-n1": "n1", "other-n1": "" });
    // A port the allow rule does not name stays closed to the allowed client (web-n1 serves it too).
    expect(await reach("client-n1", 8081)).toBe("");

    // Ingress policies gone: open again. Then an egress deny-all on the labelled clients only.
    await kube.delete(`${policies}/web-deny-all`);
    await kube.delete(`${policies}/web-allow-clients`);
    await settle("policies removed", everyone);
    await policy("clients-no-egress", { podSelector: { matchLabels: { role: "client" } }, policyTypes: ["Egress"] });
    await settle("egress deny enforced", { "web-m1": "n1", "client-m1": "", "client-n1": "", "other-n1": "n1" });
    // The node's identity (what kube-router reads with) may read policies, never write or delete one.
    const n1 = new Kube(loadKubeconfig(join(secretsOf(N1.name), "kubelet.kubeconfig"), `https://${M1.ip}:6443`));
    await n1.get(policies);
    const denyAll = {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "by-node" },
      spec: { podSelector: {} },
    };
    await expect(n1.create(policies, denyAll)).rejects.toMatchObject({ status: 403 });
    await expect(n1.delete(`${policies}/clients-no-egress`)).rejects.toMatchObject({ status: 403 });
    const anonymous = await new Kube({ server: `https://${M1.ip}:6443`, ca: kube.auth.ca }).get(policies).then(
      () => 200,
      (e: KubeError) => e.status,
    );
    expect([401, 403]).toContain(anonymous);
    await kube.delete(`${policies}/clients-no-egress`);
    await settle("egress policy removed", everyone);
    for (const c of clients) await kube.delete(`/api/v1/namespaces/default/pods/${c.name}`);
  }, 420_000);

  test("planet status on the node lists both members, each healthy over the agents' mTLS API", async () => {
    const st = await waitFor(
      "both members healthy",
      () => {
        const r = planet("status", "--rootfs", nodeRootfs, "--json");
        const j = JSON.parse(r.stdout || "{}") as { members?: { name: string; status: string }[]; leader?: { leader: string } };
        return j.members?.length === 2 && j.members.every((m) => m.status === "healthy") ? j : null;
      },
      120_000,
      2000,
    );
    expect(st.members?.map((m) => m.name)).toEqual(["m1", "n1"]);
    // The node follows the master the agents elected.
    expect(st.leader?.leader).toBe(M1.ip);
    // The node reaches the masters through its own load balancer, which the masters' agents keep told.
    expect(readFileSync(join(nodeRootfs, "etc/hosts"), "utf8")).toMatch(/^127\.0\.0\.1\s+planet-master$/m);
    await waitFor("the node's masters file", () => existsSync(join(nodeRootfs, "run/planet/masters")), 30_000, 500).catch(
      () => {},
    );
    expect(inBubble(nodeRootfs, "cat", "/run/planet/masters").stdout).toBe(`m1:${M1.ip}\n`);
    expect(inBubble(nodeRootfs, "grep", "server m1", "/run/planet/haproxy.cfg").stdout).toContain(
      `server m1 ${M1.ip}:6443 check`,
    );
  }, 150_000);

  test("a node's secrets directory is the README's table of what a node holds, file for file", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("What a node holds"), readme.indexOf("**Joining.**"));
    const listed = table
      .split("\n")
      .filter((l) => l.startsWith("| `"))
      .flatMap((l) => {
        const cell = l.split("|")[1] ?? "";
        return cell.split(", ").flatMap((part) => {
          const [first, ...exts] = [...part.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
          if (!first) return [];
          const base = first.replace(/\.[a-z]+$/, "");
          return [first, ...exts.map((e) => `${base}${e}`)];
        });
      });
    expect(listed.length).toBeGreaterThan(10);
    expect(readdirSync(secretsOf(N1.name)).sort()).toEqual(listed.sort());
  });

  test("trust per host: no CA key on the node, its kubelet certificate confined to its Node, etcd closed to all but its users", async () => {
    const files = readdirSync(secretsOf(N1.name));
    for (const ca of ["root", "etcd-ca", "csr-signer", "front-proxy-ca"]) expect(files).not.toContain(`${ca}.key`);
    for (const f of [
      "etcd.key",
      "etcd-root.key",
      "apiserver-etcd-client.key",
      "sa.key",
      "encryption.key",
      "planet-rpc-master.key",
      "planet-rpc-admin.key",
      "dns-endpoints.key",
    ])
      expect(files).not.toContain(f);
    const n1 = new Kube(loadKubeconfig(join(secretsOf(N1.name), "kubelet.kubeconfig"), `https://${M1.ip}:6443`));
    expect((await n1.get<{ metadata: { name: string } }>("/api/v1/nodes/n1")).metadata.name).toBe("n1");
    const patch = { metadata: { labels: { hijacked: "yes" } } };
    const refused = await n1
      .request("PATCH", "/api/v1/nodes/m1", patch, "application/json", "application/merge-patch+json")
      .then(() => 0)
      .catch((e: KubeError) => e.status);
    expect(refused).toBe(403);
    // Nor the master's pod subnet (its podCIDR, which flannel routes), its heartbeat lease, or its status.
    const status = (p: Promise<unknown>) => p.then(() => 0).catch((e: KubeError) => e.status);
    const merge = (path: string, body: unknown) =>
      status(n1.request("PATCH", path, body, "application/json", "application/merge-patch+json"));
    expect(await merge("/api/v1/nodes/m1", { spec: { podCIDR: "10.244.9.0/24" } })).toBe(403);
    expect(
      await merge("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/m1", { spec: { holderIdentity: "n1" } }),
    ).toBe(403);
    expect(
      await merge("/api/v1/nodes/m1/status", {
        metadata: { annotations: { "flannel.alpha.coreos.com/public-ip": "10.217.0.66" } },
      }),
    ).toBe(403);
    const own = await n1.request(
      "PATCH",
      "/api/v1/nodes/n1",
      { metadata: { labels: { own: "yes" } } },
      "application/json",
      "application/merge-patch+json",
    );
    expect(own).toBeTruthy();
    // etcd: the agents' user reads its prefix but not the cluster's state; the apiserver's user reads both.
    const kv = (cert: string, key: string) =>
      inBubble(
        masterRootfs,
        "planet",
        "kv",
        "get",
        "--endpoints",
        "https://127.0.0.1:2379",
        "--server-name",
        "etcd",
        "--cert",
        `/var/state/${cert}.cert`,
        "--key",
        `/var/state/${cert}.key`,
        key,
      );
    expect(kv("apiserver-etcd-client", "/registry/namespaces/default").exitCode).toBe(0);
    const denied = kv("agent-etcd-client", "/registry/namespaces/default");
    expect(denied.exitCode).toBe(1);
    expect(denied.stderr).toContain("permission denied");
    // A certificate of the cluster CA does not even get through etcd's TLS.
    expect(kv("kubelet", "/registry/namespaces/default").exitCode).toBe(1);
    // The gossip key is nowhere on a command line in the bubble.
    const key = readFileSync(join(secretsOf(N1.name), "serf.key"), "utf8").trim();
    const cmdlines = inBubble(nodeRootfs, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout;
    expect(cmdlines).toContain("serf agent");
    expect(cmdlines).not.toContain(key);
  }, 60_000);

  test("each kubelet serves a certificate from a CSR a master approved for its own names; a node's CSR for another's name or address is denied, its own approval refused", async () => {
    // The planet-issued serving certificate is not in system:node form, so each kubelet asks at boot.
    for (const h of [M1, N1]) {
      const served = await waitFor(
        `${h.name}'s kubelet serving its CSR's certificate`,
        async () => {
          const c = await peerCertificate(h.ip, 10250);
          return c.subject.CN === `system:node:${h.name}` ? c : null;
        },
        60_000,
        1000,
      );
      expect(served.issuer.CN).toBe("planet-csr-signer");
      expect(served.subjectaltname).toContain(`IP Address:${h.ip}`);
    }
    // exec and logs go through the kubelets' new certificates (the apiserver checks them).
    expect((await kube.exec("default", "web-n1", ["echo", "through"])).stdout.trim()).toBe("through");
    const csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    const n1 = new Kube(loadKubeconfig(join(secretsOf(N1.name), "kubelet.kubeconfig"), `https://${M1.ip}:6443`));
    const ask = (name: string, signerName: string, cn: string, alt: AltName[], usages: string[]) =>
      n1.create(csrs, {
        apiVersion: "certificates.k8s.io/v1",
        kind: "CertificateSigningRequest",
        metadata: { name },
        spec: { request: Buffer.from(csrWith(cn, alt)).toString("base64"), signerName, usages },
      });
    await ask(
      "n1-wants-m1-ip",
      "kubernetes.io/kubelet-serving",
      "system:node:n1",
      [{ type: 7, ip: M1.ip }],
      ["digital signature", "server auth"],
    );
    interface Csr {
      status: { conditions?: { type: string; message: string }[]; certificate?: string };
    }
    const denied = await waitFor(
      "n1's CSR for the master's address denied",
      async () => (await kube.get<Csr>(`${csrs}/n1-wants-m1-ip`)).status.conditions?.find((c) => c.type === "Denied"),
      30_000,
      500,
    );
    expect(denied.message).toContain(`${M1.ip} not among Node n1's addresses`);
    const status = (p: Promise<unknown>) => p.then(() => 0).catch((e: KubeError) => e.status);
    // A client certificate for another node is refused at the door (NodeRestriction).
    const client = ["digital signature", "client auth"];
    expect(
      await status(ask("n1-wants-m1-client", "kubernetes.io/kube-apiserver-client-kubelet", "system:node:m1", [], client)),
    ).toBe(403);
    // Nor may a node approve a request itself, even its own.
    await ask("n1-own-other-signer", "example.com/planet-test", "system:node:n1", [], client);
    const own = await n1.get<object>(`${csrs}/n1-own-other-signer`);
    const approve = { ...own, status: { conditions: [{ type: "Approved", status: "True", reason: "Mine", message: "" }] } };
    expect(await status(n1.request("PUT", `${csrs}/n1-own-other-signer/approval`, approve))).toBe(403);
    expect((await kube.get<Csr>(`${csrs}/n1-own-other-signer`)).status.conditions ?? []).toEqual([]);
    for (const name of ["n1-wants-m1-ip", "n1-own-other-signer"]) await kube.delete(`${csrs}/${name}`);
  }, 120_000);

  test("no credential a node holds writes kube-system, joins etcd's peers, or asks serf without its key", async () => {
    const nodeDir = secretsOf(N1.name);
    const kubeconfigs = readdirSync(nodeDir).filter((f) => f.endsWith(".kubeconfig"));
    expect(kubeconfigs.sort()).toEqual(["coredns.kubeconfig", "kube-proxy.kubeconfig", "kubelet.kubeconfig"]);
    const slice = (name: string) => ({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name, namespace: "kube-system", labels: { "kubernetes.io/service-name": "kube-dns" } },
      addressType: "IPv4",
      ports: [{ name: "dns", protocol: "UDP", port: 53 }],
      endpoints: [{ addresses: ["10.217.0.66"], conditions: { ready: true } }],
    });
    for (const file of kubeconfigs) {
      const as = new Kube(loadKubeconfig(join(nodeDir, file), `https://${M1.ip}:6443`));
      const status = (p: Promise<unknown>) => p.then(() => 0).catch((e: KubeError) => e.status);
      // A new kube-dns endpoint, a change to the masters' slice, a ConfigMap: all refused.
      expect(
        await status(as.create("/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices", slice(`hijack-${file}`))),
      ).toBe(403);
      expect(
        await status(
          as.request(
            "PATCH",
            "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-planet",
            { endpoints: [{ addresses: ["10.217.0.66"] }] },
            "application/json",
            "application/merge-patch+json",
          ),
        ),
      ).toBe(403);
      expect(
        await status(
          as.create("/api/v1/namespaces/kube-system/configmaps", {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: `x-${file}` },
          }),
        ),
      ).toBe(403);
    }
    // The masters keep kube-dns's endpoints: both hosts' CoreDNS, in one slice; none of a node's own.
    const slices = await waitFor(
      "kube-dns endpoints of both hosts",
      async () => {
        const l = await kube.get<{ items: { metadata: { name: string }; endpoints?: { addresses: string[] }[] }[] }>(
          "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices?labelSelector=kubernetes.io/service-name%3Dkube-dns",
        );
        const ips = l.items.flatMap((i) => i.endpoints ?? []).flatMap((e) => e.addresses);
        return ips.includes(M1.ip) && ips.includes(N1.ip) ? l : null;
      },
      60_000,
      1000,
    );
    expect(slices.items.map((i) => i.metadata.name)).toEqual(["kube-dns-planet"]);
    // etcd's peer port: a member's certificate gets in, no other certificate of etcd's CA does.
    // Asked from inside the master's bubble (etcd also checks that a peer connects from an address its
    // certificate names), with each of the master's etcd-CA certificates in turn.
    const peer = (cert: string) => {
      const r = inBubble(
        masterRootfs,
        "curl",
        "-sS",
        "--http1.1",
        "--max-time",
        "5",
        "--cacert",
        "/var/state/etcd-ca.cert",
        "--cert",
        `/var/state/${cert}.cert`,
        "--key",
        `/var/state/${cert}.key`,
        `https://${M1.ip}:2380/members`,
      );
      return r.exitCode === 0 && r.stdout.includes('"name":"m1"') ? 200 : `refused: ${r.stderr.trim()}`;
    };
    expect(peer("etcd")).toBe(200);
    // The masters' other etcd-CA client certificates (no node holds any) are not members either.
    for (const cert of ["apiserver-etcd-client", "agent-etcd-client", "etcd-root"])
      expect(peer(cert)).toMatch(/^refused: .*(bad certificate|alert)/);
    // The master's agent: the node's agent certificate reads; pausing the election or breaking the upgrade lock is refused.
    const agentCall = (method: string, path: string) =>
      fetch(`https://${M1.ip}:7575${path}`, {
        method,
        tls: {
          ca: Bun.file(join(nodeDir, "root.cert")),
          cert: Bun.file(join(nodeDir, "planet-rpc-client.cert")),
          key: Bun.file(join(nodeDir, "planet-rpc-client.key")),
        },
        signal: AbortSignal.timeout(5000),
      }).then((r) => r.status);
    expect(await agentCall("GET", "/health")).toBe(200);
    for (const [method, path] of [
      ["POST", "/leader/pause"],
      ["DELETE", "/upgrade/lock?force=1"],
    ])
      expect(await agentCall(method as string, path as string)).toBe(403);
    // serf's RPC: refused without the bubble's key, answered through serf-rpc.
    const bare = inBubble(nodeRootfs, "serf", "members", "-rpc-addr=127.0.0.1:7373");
    expect(bare.exitCode).not.toBe(0);
    expect(`${bare.stdout}${bare.stderr}`).toMatch(/auth/i);
    const keyed = inBubble(nodeRootfs, "/usr/lib/planet/serf-rpc", "members");
    expect(keyed.exitCode).toBe(0);
    expect(keyed.stdout).toContain("m1");
    // CoreDNS: a client outside the cluster's networks is refused, names of the cluster and recursion alike.
    const outside = "192.0.2.10";
    expect(sh(["ip", "netns", "exec", N1.host, "ip", "addr", "add", `${outside}/32`, "dev", "lo"]).exitCode).toBe(0);
    try {
      const dig = (...args: string[]) => inBubble(nodeRootfs, "dig", "+time=2", "+tries=1", `@${N1.ip}`, ...args).stdout;
      expect(dig("-b", outside, "kubernetes.default.svc.cluster.local")).toContain("status: REFUSED");
      expect(dig("-b", outside, "example.com")).toContain("status: REFUSED");
      expect(dig("+short", "kubernetes.default.svc.cluster.local")).toContain("10.100.0.1");
    } finally {
      sh(["ip", "netns", "exec", N1.host, "ip", "addr", "del", `${outside}/32`, "dev", "lo"]);
    }
  }, 120_000);

  test("a fresh host joins with a token: its own keys, no CA key, no etcd credential; bad tokens are one line and write nothing", async () => {
    const dir = secretsOf("n2-joined");
    const joiner = { ...N2, secrets: dir };
    const join2 = (token: string, at = M1.ip) => start(joinRootfs, joiner, "--join", at, "--token", token);
    const token = (...args: string[]) => {
      const r = inBubble(masterRootfs, "planet", "token", ...args);
      expect(r.exitCode).toBe(0);
      return r.stdout.trim();
    };
    const refused = async (res: Promise<{ exitCode: number; stderr: string }>, text: string | RegExp) => {
      const r = await res;
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(text);
      expect(existsSync(dir)).toBe(false);
      nothingLeft(N2);
    };
    const good = token("create", "--ttl", "10m", "--description", "cluster test");
    expect(good).toMatch(/^P1[0-9a-f]{64}::[a-z0-9]{6}\.[a-z0-9]{16}$/);
    // Bad input: a malformed token, a token without --join, another cluster's CA, a revoked and an
    // expired token, an address where nobody answers. (A node's token asked for a master: secrets/join.test.ts.)
    await refused(join2("not-a-token"), "BAD_TOKEN");
    await refused(start(joinRootfs, joiner, "--token", good), "--token goes with --join");
    const foreignHash = caHashOf(join(work, "foreign", "root.cert"));
    await refused(join2(good.replace(/^P1[0-9a-f]{64}/, `P1${foreignHash}`)), "MASTER_CA_MISMATCH");
    const revoked = token("create", "--ttl", "10m");
    token("revoke", revoked.slice(-23, -17));
    await refused(join2(revoked), /JOIN_REFUSED.*unknown or revoked/);
    const expired = token("create", "--ttl", "1s");
    await Bun.sleep(2000);
    await refused(join2(expired), /JOIN_REFUSED.*(expired|unknown or revoked)/);
    await refused(join2(good, "10.217.0.9"), "MASTER_UNREACHABLE");
    // The name of an existing Node: refused by the master before it issues anything.
    await refused(
      start(joinRootfs, { ...joiner, name: "n1" }, "--join", M1.ip, "--token", good),
      /a Node named n1 exists and its host is alive; give this host another --node-name/,
    );
    // A master's token does not make a node (nor a node's a master: test/masters.test.ts).
    await refused(
      join2(token("create", "--role", "master", "--ttl", "10m")),
      /JOIN_REFUSED.*this token admits a master, not node/,
    );
    expect(inBubble(masterRootfs, "planet", "token", "create", "--role", "admin").stderr).toContain(
      "--role admin: a token admits a node or a master",
    );
    // The join itself.
    const res = await join2(good);
    expect(res.stderr).toContain("joined:");
    expect(res.exitCode).toBe(0);
    await waitFor(
      "n2 Ready",
      async () =>
        (await kube.get<Node>("/api/v1/nodes/n2")).status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      120_000,
      1000,
    );
    await kube.create("/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "on-n2" },
      spec: {
        nodeName: "n2",
        terminationGracePeriodSeconds: 1,
        containers: [{ name: "main", image: "docker.io/library/busybox:latest", command: ["sleep", "3600"] }],
      },
    });
    await waitFor(
      "a pod running on n2",
      async () => (await kube.get<Pod>("/api/v1/namespaces/default/pods/on-n2")).status.phase === "Running",
      90_000,
      500,
    );
    const m1Pod = await kube.get<Pod>("/api/v1/namespaces/default/pods/web-m1");
    const across = await kube.exec("default", "on-n2", [
      "sh",
      "-c",
      `printf 'GET /who HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${m1Pod.status.podIP} 8080 | tail -n 1`,
    ]);
    expect(across.stdout.trim()).toBe("m1");
    // What it holds: its own keys and certificates; no CA key, no etcd credential, nothing a node does not hold.
    const files = readdirSync(dir).sort();
    expect(files).toEqual(readdirSync(secretsOf(N1.name)).sort());
    for (const f of files) if (f.endsWith(".key")) expect(["root.key", "csr-signer.key", "etcd-ca.key"]).not.toContain(f);
    expect(token("list")).toContain(good.slice(-23, -17));
    expect(planet("stop", "--rootfs", joinRootfs).exitCode).toBe(0);
  }, 420_000);

  test("certificates of a few minutes renew themselves across their expiry on the master (from its CA keys) and the node (through the master), units restarted one by one, etcd and the apiserver kept running; both stay Ready and no API write fails", async () => {
    const MINUTES = 5;
    const serial = (name: string, host = N1.name) =>
      parseCert(readFileSync(join(secretsOf(host), `${name}.cert`), "utf8")).serialNumber;
    // Both hosts' certificates issued anew for five minutes, and both restarted on them (the master first).
    for (const [h, roles, target] of [
      [M1, ["master"], "master"],
      [N1, ["node"], "node"],
    ] as const)
      await issueHost(clusterDir, secretsOf(h.name), certRequests(target, [...roles]).requests, {
        nodeName: h.name,
        ips: [h.ip],
        hosts: [],
        roles: [...roles],
        validityDays: MINUTES / 1440,
      });
    const expiry = parseCert(readFileSync(join(secretsOf(N1.name), "kubelet.cert"), "utf8")).validity.notAfter.getTime();
    expect(planet("stop", "--rootfs", nodeRootfs).exitCode).toBe(0);
    expect(planet("stop", "--rootfs", masterRootfs).exitCode).toBe(0);
    // The kubelets' own certificates (from their CSRs at the first boot) gone: they start from these.
    const kubeletPki = join(work, `data-${N1.host}`, "kubelet-pki");
    rmSync(kubeletPki, { recursive: true, force: true });
    rmSync(join(work, `data-${M1.host}`, "kubelet-pki"), { recursive: true, force: true });
    expect((await start(masterRootfs, M1)).exitCode).toBe(0);
    expect((await startNode()).exitCode).toBe(0);
    const readyNode = (name: string) => async () =>
      (await kube.get<Node>(`/api/v1/nodes/${name}`)).status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    const n1Ready = readyNode("n1");
    await waitFor("m1 Ready on five-minute certificates", readyNode("m1"), 120_000, 1000);
    await waitFor("n1 Ready on five-minute certificates", n1Ready, 120_000, 1000);
    // The hourly timer would renew on its own a couple of minutes after boot: this test starts its unit itself.
    for (const r of [masterRootfs, nodeRootfs])
      expect(inBubble(r, "systemctl", "stop", "planet-secrets-renew.timer").exitCode).toBe(0);
    // Days from an expiry: the critical check says so (the host is degraded) until the renewal.
    const critical = () => {
      const j = JSON.parse(planet("status", "--rootfs", nodeRootfs, "--local", "--json").stdout || "{}") as {
        members?: { checks?: { name: string; state: string }[] }[];
      };
      return j.members?.[0]?.checks?.find((c) => c.name === "secrets-expiry-critical")?.state;
    };
    await waitFor("secrets-expiry-critical red", () => critical() === "failed", 60_000, 2000);
    // A writer through the master's API the whole time.
    let ok = 0;
    let failed = 0;
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await kube
          .create("/api/v1/namespaces/default/configmaps", {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: `renewal-${i}` },
          })
          .then(() => ok++)
          .catch(() => failed++);
        await Bun.sleep(200);
      }
    })();
    // The kubelet renews its client certificate itself, through a CSR the controller-manager approves:
    // at once when it starts from a kubeconfig's embedded certificate (kubeadm's way), then at 70–84 %
    // of each certificate's life. The link points at its cert dir as the bubble sees it.
    const signerKey = new X509Certificate(readFileSync(join(clusterDir, "csr-signer.cert"))).publicKey;
    const rotated = await waitFor(
      "the kubelet's client certificate renewed through its CSR",
      () => {
        const [dir] = readdirSync(kubeletPki);
        const link = join(kubeletPki, dir ?? "-", "kubelet-client-current.pem");
        if (!lstatSync(link, { throwIfNoEntry: false })) return null;
        // The kubelet's keys are ECDSA (node-forge reads RSA only): node:crypto reads this one.
        const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(
          readFileSync(join(kubeletPki, dir ?? "-", basename(readlinkSync(link))), "utf8"),
        )?.[0];
        // Until its CSR is signed the kubelet may hold a copy of its kubeconfig's certificate (the root CA's).
        const cert = pem ? new X509Certificate(pem) : null;
        return cert?.verify(signerKey) ? cert : null;
      },
      Math.max(10_000, expiry - Date.now() - 20_000),
      2000,
    );
    expect(rotated.subject).toContain("CN=system:node:n1");
    expect(Date.parse(rotated.validTo) - Date.now()).toBeGreaterThan(300 * 86_400_000);
    const before = Object.fromEntries(
      ["kubelet", "kubelet-server", "kube-proxy", "coredns", "planet-rpc-client"].map((n) => [n, serial(n)]),
    );
    // What the hourly timer starts: everything is due, so everything is renewed through the master.
    expect(inBubble(nodeRootfs, "systemctl", "start", "planet-secrets-renew.service").exitCode).toBe(0);
    const log = inBubble(nodeRootfs, "journalctl", "-u", "planet-secrets-renew.service", "--no-pager", "-o", "cat").stdout;
    for (const unit of ["kubelet.service", "kube-proxy.service", "coredns.service", "planet-agent.service"])
      expect(log).toContain(`restarted ${unit}`);
    for (const [name, was] of Object.entries(before)) expect(serial(name)).not.toBe(was);
    // The master renews from its own CA keys: every leaf anew; etcd and the apiserver read their new
    // files at the next connection (not restarted: the writer below sees no failure), the others restart.
    const masterLeaves = ["apiserver", "apiserver-etcd-client", "etcd", "kubelet", "scheduler", "controller-manager"];
    const masterBefore = Object.fromEntries(masterLeaves.map((n) => [n, serial(n, M1.name)]));
    const pid = (unit: string) => inBubble(masterRootfs, "systemctl", "show", "-P", "MainPID", unit).stdout.trim();
    const storePids = { etcd: pid("etcd.service"), apiserver: pid("kube-apiserver.service") };
    expect(inBubble(masterRootfs, "systemctl", "start", "planet-secrets-renew.service").exitCode).toBe(0);
    const mlog = inBubble(masterRootfs, "journalctl", "-u", "planet-secrets-renew.service", "--no-pager", "-o", "cat").stdout;
    for (const unit of ["kube-controller-manager.service", "kube-scheduler.service", "kubelet.service"])
      expect(mlog).toContain(`restarted ${unit}`);
    expect(mlog).not.toContain("restarted etcd.service");
    expect(mlog).not.toContain("restarted kube-apiserver.service");
    expect({ etcd: pid("etcd.service"), apiserver: pid("kube-apiserver.service") }).toEqual(storePids);
    for (const [name, was] of Object.entries(masterBefore)) expect(serial(name, M1.name), name).not.toBe(was);
    const signer = parseCert(readFileSync(join(clusterDir, "csr-signer.cert"), "utf8"));
    const renewed = parseCert(readFileSync(join(secretsOf(N1.name), "kubelet.cert"), "utf8"));
    expect(signedBy(renewed, signer)).toBe(true);
    expect(renewed.validity.notAfter.getTime() - Date.now()).toBeGreaterThan(300 * 86_400_000);
    // Past the original expiry: Ready, exec through the kubelet's renewed serving certificate, pods across hosts.
    await Bun.sleep(Math.max(0, expiry - Date.now() + 5000));
    await waitFor("n1 Ready past the original expiry", n1Ready, 60_000, 1000);
    await waitFor("m1 Ready past the original expiry", readyNode("m1"), 60_000, 1000);
    // The master's apiserver opens a new connection to etcd with its renewed client certificate, and
    // etcd answers with its renewed serving one: both past the original expiry.
    const etcdCheck = inBubble(
      masterRootfs,
      "etcdctl",
      "--endpoints=https://127.0.0.1:2379",
      "--cacert=/var/state/etcd-ca.cert",
      "--cert=/var/state/apiserver-etcd-client.cert",
      "--key=/var/state/apiserver-etcd-client.key",
      "get",
      "--keys-only",
      "/registry/namespaces/default",
    );
    expect(etcdCheck.stderr).toBe("");
    expect(etcdCheck.stdout.trim()).toBe("/registry/namespaces/default");
    const served = await peerCertificate(M1.ip, 2379);
    expect(Date.parse(served.valid_to) - Date.now()).toBeGreaterThan(300 * 86_400_000);
    const m1Pod = await kube.get<Pod>("/api/v1/namespaces/default/pods/web-m1");
    const across = await waitFor(
      "n1's pod reaches m1's",
      async () => {
        const r = await kube.exec("default", "web-n1", [
          "sh",
          "-c",
          `printf 'GET /who HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${m1Pod.status.podIP} 8080 | tail -n 1`,
        ]);
        return r.stdout.trim() === "m1" ? r : null;
      },
      60_000,
      1000,
    );
    expect(across.stdout.trim()).toBe("m1");
    for (const r of [nodeRootfs, masterRootfs])
      await waitFor(
        `${r === nodeRootfs ? "n1" : "m1"} healthy, the critical check green`,
        () => planet("status", "--rootfs", r, "--local").exitCode === 0,
        120_000,
        2000,
      );
    writing = false;
    await writer;
    expect(ok).toBeGreaterThan(0);
    expect(failed).toBe(0);
  }, 900_000);

  test("the cluster CA rotates with an overlap on a running cluster (a master, a node, a node joined with a token): Ready throughout, the apiserver never restarted, no API write fails; the old CA's credentials are refused after", async () => {
    const n2 = { ...N2, secrets: secretsOf("n2-joined") };
    // Back with what it got when it joined (no token needed again).
    const back = await start(joinRootfs, n2, "--master-ip", M1.ip);
    expect([back.exitCode, back.stderr.slice(-600)]).toEqual([0, expect.any(String)]);
    // The admin's client as the cluster directory has it after each stage (the new CA trusted from prepare on).
    let api = kube;
    const ready = async (n: string) =>
      (await api.get<Node>(`/api/v1/nodes/${n}`)).status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    const allReady = async () => (await ready("m1")) && (await ready("n1")) && (await ready("n2"));
    await waitFor("m1, n1 and n2 Ready", allReady, 120_000, 1000);
    const apiserverPid = () =>
      inBubble(masterRootfs, "systemctl", "show", "-p", "MainPID", "--value", "kube-apiserver").stdout.trim();
    const pid = apiserverPid();
    const oldAdmin = join(work, "admin-before-rotation.kubeconfig");
    writeFileSync(oldAdmin, readFileSync(join(clusterDir, "admin.kubeconfig")));
    const oldCa = readFileSync(join(clusterDir, "root.cert"), "utf8");
    // A writer through the master's API the whole time, trusting what the cluster directory trusts.
    let ok = 0;
    const failures: string[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await api
          .create("/api/v1/namespaces/default/configmaps", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: `ca-${i}` } })
          .then(() => ok++)
          .catch((e: Error) => failures.push(e.message));
        await Bun.sleep(200);
      }
    })();
    const hosts = [masterRootfs, nodeRootfs, joinRootfs];
    for (const stage of ["prepare", "rotate", "finish"]) {
      if (stage === "finish")
        // Hosts trust the new CA alone from here: the apiserver must serve its new certificate (read again by itself).
        await waitFor(
          "the apiserver serving the new CA's certificate",
          async () => (await peerCertificate(M1.ip, 6443)).issuer.CN === "planet-ca-2",
          120_000,
          1000,
        );
      const r = planet("secrets", "rotate-ca", clusterDir, "--stage", stage);
      expect([stage, r.exitCode, r.stderr.slice(-300)]).toEqual([stage, 0, expect.any(String)]);
      await issue(M1, ["master"], "master");
      await issue(N1, ["node"], "node");
      api = new Kube(loadKubeconfig(join(clusterDir, "admin.kubeconfig")));
      // What the hourly timer runs on each host: n2 takes up the trust from the masters.
      for (const rootfs of hosts)
        expect([stage, rootfs, inBubble(rootfs, "systemctl", "start", "planet-secrets-renew.service").exitCode]).toEqual([
          stage,
          rootfs,
          0,
        ]);
      await waitFor(`m1, n1 and n2 Ready after ${stage}`, allReady, 120_000, 1000);
    }
    const log = inBubble(masterRootfs, "journalctl", "-u", "planet-secrets-renew.service", "--no-pager", "-o", "cat").stdout;
    expect(log).toContain("kube-apiserver.service reads");
    expect(apiserverPid()).toBe(pid);
    // Every host trusts the new CA alone; n2 got it from the masters, not from a copied folder.
    for (const dir of [secretsOf(M1.name), secretsOf(N1.name), n2.secrets])
      expect([dir, pemsOf(readFileSync(join(dir, "root.cert"), "utf8")).length]).toEqual([dir, 1]);
    expect(readFileSync(join(n2.secrets, "root.cert"), "utf8")).toBe(readFileSync(join(clusterDir, "root.cert"), "utf8"));
    // Pods across hosts, exec through the kubelets.
    // Each kubelet was just restarted by its host's renew unit: exec once it serves again (the
    // apiserver's words, through kubectl on the master, if it never does).
    for (const [pod, node] of [
      ["web-n1", "n1"],
      ["on-n2", "n2"],
    ])
      await waitFor(
        `exec on ${node}`,
        async () => (await api.exec("default", pod as string, ["echo", node as string])).stdout.trim() === node,
        60_000,
        1000,
      ).catch((e: Error) => {
        const why = inBubble(masterRootfs, "kubectl", "exec", pod as string, "--", "true").stderr;
        throw new Error(`${e.message}; kubectl exec says: ${why}`);
      });
    writing = false;
    await writer;
    expect(ok).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    // The old CA's admin credential is refused; a client trusting only the old CA does not trust the apiserver.
    const status = (p: Promise<unknown>) => p.then(() => 0).catch((e: KubeError) => e.status);
    const old = loadKubeconfig(oldAdmin);
    expect(await status(new Kube({ ...old, ca: readFileSync(join(clusterDir, "root.cert"), "utf8") }).get("/api/v1/nodes"))).toBe(
      401,
    );
    expect(
      await status(new Kube({ ...loadKubeconfig(join(clusterDir, "admin.kubeconfig")), ca: oldCa }).get("/api/v1/nodes")),
    ).toBe(0);
    kube = api;
    expect(planet("stop", "--rootfs", joinRootfs).exitCode).toBe(0);
  }, 900_000);

  test("n2's host is reinstalled: refused while its heartbeat is fresh, then it joins under its name with a new token (the old Node replaced); planet leave has a master drain it and delete its Node, on proof of its key alone", async () => {
    const dir = secretsOf("n2-joined");
    const joiner = { ...N2, secrets: dir };
    // Its disk is gone: no secrets, no data. Its Node is still there, its lease renewed moments ago.
    rmSync(dir, { recursive: true, force: true });
    rmSync(join(work, `data-${N2.host}`), { recursive: true, force: true });
    const fresh = inBubble(masterRootfs, "planet", "token", "create", "--ttl", "10m").stdout.trim();
    const early = await start(joinRootfs, joiner, "--join", M1.ip, "--token", fresh);
    expect(early.exitCode).toBe(1);
    expect(early.stderr).toContain("a Node named n2 exists and its host is alive");
    expect(existsSync(dir)).toBe(false);
    nothingLeft(N2);
    const lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2";
    await waitFor(
      "n2's heartbeat a minute old",
      async () => Date.now() - Date.parse((await kube.get<{ spec: { renewTime: string } }>(lease)).spec.renewTime) > 62_000,
      120_000,
      2000,
    );
    const oldUid = (await kube.get<{ metadata: { uid: string } }>("/api/v1/nodes/n2")).metadata.uid;
    const res = await start(joinRootfs, joiner, "--join", M1.ip, "--token", fresh);
    expect(res.exitCode).toBe(0);
    const node = await waitFor(
      "the new n2 Ready",
      async () => {
        const n = await kube.get<Node & { metadata: { uid: string } }>("/api/v1/nodes/n2");
        return n.metadata.uid !== oldUid && n.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")
          ? n
          : null;
      },
      120_000,
      1000,
    );
    expect(node.metadata.uid).not.toBe(oldUid);
    // Another node cannot make it leave: n1's agent certificate, n2's kubelet certificate (public), but a
    // request signed with n1's own key — no proof of n2's key.
    const n1Key = parseKey(readFileSync(join(secretsOf("n1"), "kubelet.key"), "utf8"));
    const forged = await fetch(`https://${M1.ip}:7575/leave`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        certs: { kubelet: readFileSync(join(dir, "kubelet.cert"), "utf8") },
        csrs: { kubelet: csrPem("kubelet", n1Key) },
      }),
      tls: {
        ca: readFileSync(join(secretsOf("n1"), "client-ca.pem"), "utf8"),
        cert: readFileSync(join(secretsOf("n1"), "planet-rpc-client.cert"), "utf8"),
        key: readFileSync(join(secretsOf("n1"), "planet-rpc-client.key"), "utf8"),
      },
    });
    expect(forged.status).toBeGreaterThanOrEqual(400);
    expect(JSON.stringify(await forged.json())).toContain("RENEW_REFUSED");
    expect((await kube.get<Node & { metadata: { uid: string } }>("/api/v1/nodes/n2")).metadata.uid).toBe(node.metadata.uid);
    // It leaves by itself, through the master: its pods evicted, its Node deleted, serf left.
    const left = inBubble(joinRootfs, "planet", "leave");
    expect(left.stderr).toContain("n2 left the cluster");
    expect(left.exitCode).toBe(0);
    expect(
      await kube.get("/api/v1/nodes/n2").then(
        () => 200,
        (e: KubeError) => e.status,
      ),
    ).toBe(404);
    await waitFor(
      "n2 marked left on the master",
      () =>
        (
          JSON.parse(planet("status", "--rootfs", masterRootfs, "--json").stdout || "{}") as {
            members?: { name: string; status: string }[];
          }
        ).members?.some((m) => m.name === "n2" && m.status === "left"),
      60_000,
      1000,
    );
    expect(planet("stop", "--rootfs", joinRootfs).exitCode).toBe(0);
  }, 600_000);

  test("a node that stops leaves: the master's status marks it; both stop and the host is as it was", async () => {
    // A host-wide sysctl as a component in a bubble would change it: it belongs to every bubble
    // until the last one stops, so stopping the node must not put it back under the master.
    const knob = "/proc/sys/fs/inotify/max_user_instances";
    const original = readFileSync(knob, "utf8").trim();
    writeFileSync(knob, String(Number(original) + 1));
    expect(planet("stop", "--rootfs", nodeRootfs).exitCode).toBe(0);
    expect(readFileSync(knob, "utf8").trim()).toBe(String(Number(original) + 1));
    let last = "";
    const st = await waitFor(
      "n1 marked left",
      () => {
        last = planet("status", "--rootfs", masterRootfs, "--json").stdout;
        const j = JSON.parse(last || "{}") as {
          members?: { name: string; status: string }[];
        };
        return j.members?.find((m) => m.name === "n1" && m.status === "left") ? j : null;
      },
      60_000,
      1000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}; the master's status said: ${last.slice(0, 1500)}`);
    });
    expect(st.members?.find((m) => m.name === "m1")?.status).not.toBe("left");
    expect(planet("stop", "--rootfs", masterRootfs).exitCode).toBe(0);
    expect(readFileSync(knob, "utf8").trim()).toBe(original); // the last bubble restored it
    for (const h of [M1, N1, N2]) planet("dev-host", "down", h.host);
    expect(sh(["ip", "link", "show", BRIDGE]).exitCode).not.toBe(0);
    expect(hostSnapshot()).toEqual(before);
  }, 120_000);
});
