/**
 * Pod network and cluster DNS in the dev bubble: flannel's lease and overlay, CoreDNS through the
 * kube-dns Service (cluster names, SRV, pod records, ExternalName, a name its upstream — a dnsmasq
 * the test starts in the test host — answers, `--dns-hosts`), plugin manifests applied at boot and
 * pruned when a rebuilt image no longer ships one, and a host left as it was.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readState } from "../core/bubble/state.ts";
import { Kube, KubeError, loadKubeconfig } from "../core/kube/client.ts";
import { contains, parseCidr } from "../core/net.ts";
import {
  buildTest,
  canBoot,
  devSecrets,
  hostSnapshot,
  planet,
  planetAsync,
  REPO,
  sh,
  sleeperPod,
  startBubble,
  testHost,
  waitFor,
} from "./helpers.ts";

const HOST = "pt-net";
const IP = "10.216.0.1";
/** The upstream resolver of the test host: dnsmasq on a second address inside it. */
const UPSTREAM = "10.216.0.53";
const OUTSIDE = { name: "www.outside.planet.test", ip: "10.9.8.7" };
const CLUSTER = "nettest";
const NODE = "net-node-1";
const POD_SUBNET = "10.244.0.0/16";
const work = join(REPO, "build", "test-net-work");
const secrets = join(work, "secrets");
const webPlugin = join(work, "web");
const netnsResolv = `/etc/netns/${HOST}/resolv.conf`;

describe.if(canBoot && Bun.which("dnsmasq") !== null)("pod network and cluster DNS (dev target + examples/web)", () => {
  let rootfs = "";
  let before: Record<string, unknown> = {};
  let host: ReturnType<typeof testHost> | undefined;
  let dnsmasq: ReturnType<typeof Bun.spawn> | undefined;
  let kube: Kube;
  const badPlugin = join(work, "badweb");
  const build = (...more: string[]) => join(buildTest("net", ["--target", "dev", "--plugin", webPlugin, ...more]), "rootfs");
  const start = (...extra: string[]) =>
    startBubble(
      { rootfs, host: HOST, cluster: CLUSTER, node: NODE, work },
      "--pod-subnet",
      POD_SUBNET,
      "--dns-hosts",
      "registry.corp.test/10.1.2.3",
      ...extra,
    );
  const inBubble = (...cmd: string[]) => planet("exec", "--rootfs", rootfs, ...cmd);
  const subnetEnv = () =>
    Object.fromEntries(
      inBubble("cat", "/run/flannel/subnet.env")
        .stdout.trim()
        .split("\n")
        .map((l) => l.split("=")),
    );

  beforeAll(async () => {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    cpSync(join(REPO, "examples/web"), webPlugin, { recursive: true });
    // The copy lives elsewhere: point its import of the contract at the checkout.
    const index = join(webPlugin, "index.ts");
    writeFileSync(index, readFileSync(index, "utf8").replace("../../core/plugin.ts", join(REPO, "core/plugin.ts")));
    // A plugin whose manifest is well formed but refused by the apiserver (an unknown Service type).
    mkdirSync(join(badPlugin, "manifests"), { recursive: true });
    writeFileSync(
      join(badPlugin, "index.ts"),
      'export default { name: "badweb", description: "refused manifest", roles: ["master"], manifests: "manifests" };\n',
    );
    writeFileSync(
      join(badPlugin, "manifests/bad.yaml"),
      "apiVersion: v1\nkind: Service\nmetadata: { name: bad, namespace: default }\nspec: { type: Bogus, ports: [{ port: 1 }] }\n",
    );
    rootfs = build();
    await devSecrets(secrets, { domain: "net.test", ips: [IP], node: NODE });
    kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig")));
    before = hostSnapshot();
    host = testHost(HOST, IP);
    sh(["ip", "-n", HOST, "addr", "add", `${UPSTREAM}/24`, "dev", `${HOST}-c`]);
    dnsmasq = Bun.spawn(
      [
        "ip",
        "netns",
        "exec",
        HOST,
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        `--listen-address=${UPSTREAM}`,
        `--address=/${OUTSIDE.name}/${OUTSIDE.ip}`,
        "--pid-file=",
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    mkdirSync(`/etc/netns/${HOST}`, { recursive: true });
    writeFileSync(netnsResolv, `nameserver ${UPSTREAM}\nsearch outside.planet.test\n`);
  }, 3_600_000);
  afterAll(() => {
    if (readState(`planet-${CLUSTER}-${HOST}`)) planet("stop", "--rootfs", rootfs, "--timeout", "30");
    dnsmasq?.kill();
    rmSync(`/etc/netns/${HOST}`, { recursive: true, force: true });
    host?.[Symbol.dispose]();
  });

  test("bad network flags: one line each, nothing started", () => {
    const cases: [string[], RegExp][] = [
      [["--pod-subnet-size", "12"], /^BAD_FLAG: --pod-subnet-size 12: expected 17\.\.28/],
      [["--pod-subnet-size", "29"], /^BAD_FLAG: --pod-subnet-size 29/],
      [
        ["--pod-subnet", "10.216.0.0/16"],
        /^BAD_CIDR: --pod-subnet 10\.216\.0\.0\/16 overlaps the host's network 10\.216\.0\.0\/24/,
      ],
      [
        ["--dns-hosts", "registry.corp.test=10.1.2.3"],
        /^BAD_FLAG: --dns-hosts registry\.corp\.test=10\.1\.2\.3: expected domain\/ip/,
      ],
      [["--dns-zones", "corp.test/not-an-ip"], /^BAD_FLAG: --dns-zones corp\.test\/not-an-ip: expected zone\/nameserver/],
    ];
    for (const [flags, pattern] of cases) {
      const res = sh([
        process.execPath,
        join(REPO, "core/cli/main.ts"),
        "start",
        "--rootfs",
        rootfs,
        "--netns",
        HOST,
        "--cluster-id",
        "netbad",
        "--secrets-dir",
        secrets,
        ...flags,
      ]);
      expect(res.exitCode).toBe(1);
      expect(res.stderr.trim().split("\n").at(-1)).toMatch(pattern);
      expect(readState("planet-netbad")).toBeNull();
    }
  }, 60_000);

  test("boots to a Ready node whose pods live in the host's flannel subnet", async () => {
    const res = await start();
    expect(res.exitCode).toBe(0);
    await waitFor(
      "node Ready",
      async () => {
        type Node = { status: { conditions: { type: string; status: string }[] } };
        const n = await kube.get<Node>(`/api/v1/nodes/${NODE}`);
        return n.status.conditions.find((c) => c.type === "Ready")?.status === "True";
      },
      120_000,
      250,
    );
    const env = subnetEnv();
    expect(env.FLANNEL_NETWORK).toBe(POD_SUBNET);
    const subnet = parseCidr(env.FLANNEL_SUBNET ?? "", "FLANNEL_SUBNET");
    expect(contains(parseCidr(POD_SUBNET, "pod"), subnet.text.split("/")[0] ?? "")).toBe(true);
    expect(subnet.prefix).toBe(24);
    expect(inBubble("cat", "/run/cni/net.d/00-flannel.conflist").stdout).toContain('"type": "flannel"');
    expect(inBubble("ip", "-o", "link", "show", "flannel.1").stdout).toContain(",UP");
    // A pod gets its address from that subnet.
    const ip = await sleeperPod(kube, "where");
    expect(contains(subnet, ip)).toBe(true);
  }, 300_000);

  test("planet test passes, DNS cases included: service, headless SRV, pod A, ExternalName, a name upstream answers", async () => {
    const res = await planetAsync([
      "test",
      "--kube-addr",
      `${IP}:6443`,
      "--kubeconfig",
      join(secrets, "admin.kubeconfig"),
      "--dns-outside",
      `${OUTSIDE.name}=${OUTSIDE.ip}`,
      "--json",
    ]);
    const results = JSON.parse(res.stdout) as { name: string; ok: boolean; skipped?: boolean; error?: string }[];
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const ran = results.filter((r) => r.ok && !r.skipped).map((r) => r.name);
    expect(ran).toEqual(
      expect.arrayContaining([
        "pod-to-pod",
        "service-clusterip",
        "dns-service",
        "dns-headless-srv",
        "dns-pod-a",
        "dns-externalname",
        "dns-outside",
      ]),
    );
    expect(res.exitCode).toBe(0);
  }, 600_000);

  test("kube-dns sits at the 10th service address; --dns-hosts answers; processes in the bubble resolve cluster names", async () => {
    const svc = await kube.get<{ spec: { clusterIP: string } }>("/api/v1/namespaces/kube-system/services/kube-dns");
    expect(svc.spec.clusterIP).toBe("10.100.0.10");
    const dig = (name: string, server = "10.100.0.10") =>
      inBubble("dig", "+short", "+time=2", "+tries=2", `@${server}`, name).stdout.trim();
    expect(dig("registry.corp.test")).toBe("10.1.2.3");
    expect(dig(OUTSIDE.name)).toBe(OUTSIDE.ip);
    expect(inBubble("getent", "hosts", "kubernetes.default.svc.cluster.local").stdout).toContain("10.100.0.1");
    const kubelet = inBubble("cat", "/run/kubelet.conf.d/20-dns.conf").stdout;
    expect(kubelet).toContain('clusterDNS: ["10.100.0.10"]');
  }, 60_000);

  test("planet status shows the flannel and dns checks healthy", async () => {
    await waitFor("all checks ok", () => planet("status", "--rootfs", rootfs, "--local").exitCode === 0, 90_000, 1000);
    const out = planet("status", "--rootfs", rootfs, "--local").stdout;
    for (const check of [
      "flannel-flanneld-running",
      "flannel-lease",
      "flannel-vxlan-up",
      "dns-coredns-running",
      "dns-cluster-lookup",
      "dns-upstream",
    ])
      expect(out).toMatch(new RegExp(`ok\\s+${check}`));
  }, 120_000);

  test("the example plugin's manifests are applied at boot", async () => {
    await waitFor(
      "web Deployment available",
      async () => {
        const d = await kube.get<{ status?: { availableReplicas?: number } }>(
          "/apis/apps/v1/namespaces/planet-example/deployments/web",
        );
        return d.status?.availableReplicas === 1;
      },
      120_000,
    );
    await kube.get("/api/v1/namespaces/planet-example/services/web");
  }, 150_000);

  test("a restart keeps the host's lease; a manifest the rebuilt image no longer ships is pruned", async () => {
    const lease = subnetEnv().FLANNEL_SUBNET;
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    rmSync(join(webPlugin, "manifests/service.yaml"));
    rootfs = build("--plugin", badPlugin);
    expect((await start()).exitCode).toBe(0);
    await waitFor("subnet.env", () => subnetEnv().FLANNEL_SUBNET, 60_000);
    expect(subnetEnv().FLANNEL_SUBNET).toBe(lease);
    await waitFor(
      "service pruned",
      async () =>
        kube.get("/api/v1/namespaces/planet-example/services/web").then(
          () => false,
          (e) => e instanceof KubeError && e.status === 404,
        ),
      120_000,
    );
    await kube.get("/apis/apps/v1/namespaces/planet-example/deployments/web");
    // The refused manifest fails the apply unit with one line naming its plugin and file; the others applied.
    const journal = inBubble("journalctl", "-u", "planet-manifests.service", "--no-pager", "-o", "cat").stdout;
    expect(journal).toMatch(/\[plugin badweb\] badweb\/bad\.yaml: Service bad: .*HTTP 422/);
    expect(journal).toMatch(/\[plugin dns\] \d+ applied/);
    expect(inBubble("systemctl", "is-failed", "planet-manifests.service").stdout.trim()).toBe("failed");
  }, 600_000);

  test("--disable-flannel: flanneld masked, its checks gone, pods on the podCIDR bridge; no upstream resolver is a warning; --dns-zones", async () => {
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    // Only a loopback resolver, which means nothing inside a network namespace: cluster names only.
    writeFileSync(netnsResolv, "nameserver 127.0.0.53\n");
    // The upstream's zone through --dns-zones still answers: a server block of its own.
    expect((await start("--disable-flannel", "--dns-zones", `outside.planet.test/${UPSTREAM}`)).exitCode).toBe(0);
    expect(inBubble("systemctl", "is-enabled", "flanneld.service").stdout.trim()).toBe("masked");
    expect(inBubble("test", "-e", "/run/cni/net.d/00-flannel.conflist").exitCode).not.toBe(0);
    await kube.delete("/api/v1/namespaces/default/pods/where?gracePeriodSeconds=0").catch(() => undefined);
    await waitFor(
      "old pod gone",
      () =>
        kube.get("/api/v1/namespaces/default/pods/where").then(
          () => false,
          () => true,
        ),
      60_000,
    );
    const ip = await sleeperPod(kube, "where");
    const node = await kube.get<{ spec: { podCIDR: string } }>(`/api/v1/nodes/${NODE}`);
    expect(contains(parseCidr(node.spec.podCIDR, "podCIDR"), ip)).toBe(true);
    await waitFor("all checks ok", () => planet("status", "--rootfs", rootfs, "--local").exitCode === 0, 90_000, 1000);
    const status = planet("status", "--rootfs", rootfs, "--local").stdout;
    expect(status).not.toContain("flannel");
    expect(status).toMatch(/dns-upstream \(warning\).*no usable upstream resolver/);
    expect(inBubble("dig", "+short", "@10.100.0.10", "kubernetes.default.svc.cluster.local").stdout.trim()).toBe("10.100.0.1");
    expect(inBubble("dig", "+short", "@10.100.0.10", OUTSIDE.name).stdout.trim()).toBe(OUTSIDE.ip);
    expect(inBubble("dig", "+short", "+time=2", "+tries=1", "@10.100.0.10", "www.not-forwarded.test").stdout.trim()).toBe("");
  }, 300_000);

  test("stop leaves the test host without the overlay and the host as it was", async () => {
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    const inHost = (cmd: string) => sh(["ip", "netns", "exec", HOST, "sh", "-c", cmd]).stdout.trim();
    expect(inHost("ip -o link show | grep -c -e flannel -e cni0 || true")).toBe("0");
    expect(inHost("iptables-save | grep -c -e FLANNEL -e KUBE- -e CNI- || true")).toBe("0");
    expect(inHost("ip route | grep -c 10.244. || true")).toBe("0");
    dnsmasq?.kill();
    await dnsmasq?.exited;
    dnsmasq = undefined;
    rmSync(`/etc/netns/${HOST}`, { recursive: true, force: true });
    host?.[Symbol.dispose]();
    host = undefined;
    await waitFor("host as before", () => Bun.deepEquals(hostSnapshot(), before), 10_000).catch(() => false);
    expect(hostSnapshot()).toEqual(before);
  }, 120_000);
});
