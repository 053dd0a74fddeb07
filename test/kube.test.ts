/**
 * The product: the dev image boots, in a test host, to a Ready node that runs pods; `planet test`
 * passes against it; a restart keeps every object; stop leaves the host as it was.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { readState } from "../core/bubble/state.ts";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import {
  buildTest,
  busybox,
  canBoot,
  devSecrets,
  hostSnapshot,
  planet,
  planetAsync,
  REPO,
  sh,
  startBubble,
  testHost,
  waitFor,
} from "./helpers.ts";

const HOST = "pt-kube";
const IP = "10.213.0.1";
const CLUSTER = "kubetest";
const NODE = "kube-node-1";
const work = join(REPO, "build", "test-kube-work");
const secrets = join(work, "secrets");

/** The name the apiserver gives an encryption key in etcd's values: k-<12 hex of its file's sha256>. */
const keyName = (file: string) =>
  `k-${createHash("sha256")
    .update(readFileSync(join(secrets, file)))
    .digest("hex")
    .slice(0, 12)}`;

type Node = { status: { conditions: { type: string; status: string; lastHeartbeatTime: string }[] } };

/** Ready with a heartbeat from after `since` (etcd keeps the old Ready=True across restarts). */
async function nodeReady(kube: Kube, since: number): Promise<boolean> {
  const node = await kube.get<Node>(`/api/v1/nodes/${NODE}`);
  const ready = node.status.conditions.find((c) => c.type === "Ready");
  return ready?.status === "True" && Date.parse(ready.lastHeartbeatTime) >= since - 1000;
}

describe.if(canBoot)("Kubernetes in the bubble (dev target)", () => {
  let rootfs = "";
  let before: Record<string, unknown> = {};
  let host: ReturnType<typeof testHost> | undefined;
  let kube: Kube;
  /** What the StatefulSet's pod wrote to its volume (checked again after a restart). */
  let dbId = "";
  const start = () => startBubble({ rootfs, host: HOST, cluster: CLUSTER, node: NODE, work });

  beforeAll(async () => {
    rootfs = join(buildTest("kube", ["--target", "dev"]), "rootfs");
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    await devSecrets(secrets, { domain: "kube.test", ips: [IP], node: NODE });
    kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig")));
    before = hostSnapshot();
    host = testHost(HOST, IP);
  }, 3_600_000);
  afterAll(() => {
    if (readState(`planet-${CLUSTER}-${HOST}`)) planet("stop", "--rootfs", rootfs, "--timeout", "30");
    host?.[Symbol.dispose]();
  });

  test("ready means usable: the moment start returns a pod is admitted and cluster DNS answers; the node turns Ready", async () => {
    const t0 = Date.now();
    const res = await start();
    expect(res.exitCode).toBe(0);
    // No waiting: what a user's next kubectl run needs is there when start says ready.
    const pod = await kube.create<{ spec: { serviceAccountName: string } }>("/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "at-once" },
      spec: { terminationGracePeriodSeconds: 0, containers: [busybox(["sleep", "3600"])] },
    });
    expect(pod.spec.serviceAccountName).toBe("default");
    expect(await kube.get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")).toBeTruthy();
    expect(planet("exec", "--rootfs", rootfs, "/usr/lib/planet/dns-check", "cluster").exitCode).toBe(0);
    await kube.delete("/api/v1/namespaces/default/pods/at-once");
    await waitFor("node Ready", () => nodeReady(kube, t0), 120_000, 250);
    const svc = await kube.get<{ spec: { clusterIP: string } }>("/api/v1/namespaces/default/services/kubernetes");
    expect(svc.spec.clusterIP).toBe("10.100.0.1");
    const failed = planet("exec", "--rootfs", rootfs, "systemctl", "--failed", "--no-legend").stdout.trim();
    expect(failed).toBe("");
  }, 300_000);

  test("every component reports the upstream version it was built from, through real clients", async () => {
    const k8s = (await import("../build.assets/kubernetes/index.ts")).default.version;
    const version = await kube.get<{ gitVersion: string; gitTreeState: string; goVersion: string }>("/version");
    expect(version.gitVersion).toBe(`v${k8s}`);
    expect(version.gitTreeState).toBe("clean");
    const node = await kube.get<{ status: { nodeInfo: Record<string, string> } }>(`/api/v1/nodes/${NODE}`);
    expect(node.status.nodeInfo.kubeletVersion).toBe(`v${k8s}`);
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/2\.\d+\.\d+$/);
    // kubectl inside the bubble: its own version and the server's, with no skew warning.
    const kubectl = planet("exec", "--rootfs", rootfs, "kubectl", "version", "-o", "json");
    expect(kubectl.exitCode).toBe(0);
    const both = JSON.parse(kubectl.stdout) as Record<string, { gitVersion: string }>;
    expect([both.clientVersion?.gitVersion, both.serverVersion?.gitVersion]).toEqual([`v${k8s}`, `v${k8s}`]);
    const etcd = planet("exec", "--rootfs", rootfs, "etcdctl", "version").stdout;
    expect(etcd).toContain("etcdctl version: 3.7.");
    const crictl = planet("exec", "--rootfs", rootfs, "crictl", "version");
    expect(crictl.stdout).toMatch(/RuntimeName:\s+containerd/);
  }, 60_000);

  test("the apiserver's flags hold on the wire: anonymous gets 401, the node identity is limited by Node authz", async () => {
    const anon = await fetch(`https://${IP}:6443/api/v1/namespaces`, { tls: { ca: Bun.file(join(secrets, "root.cert")) } });
    expect(anon.status).toBe(401);
    const kubelet = new Kube(loadKubeconfig(join(secrets, "kubelet.kubeconfig"), `https://${IP}:6443`));
    await expect(kubelet.get("/api/v1/namespaces/kube-system/secrets")).rejects.toMatchObject({ status: 403 });
    const wrongCa = fetch(`https://${IP}:6443/version`, { tls: { ca: Bun.file(join(secrets, "front-proxy-ca.cert")) } });
    await expect(wrongCa).rejects.toThrow();
  }, 60_000);

  test("a Secret is ciphertext in etcd (secretbox with the cluster's key) and its write is in the audit log, without its data", async () => {
    const value = `planet-plaintext-${Date.now()}`;
    const name = `at-rest-${Date.now()}`;
    await kube.create("/api/v1/namespaces/default/secrets", {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name },
      stringData: { password: value },
    });
    // Read back through the API: the apiserver decrypts.
    const back = await kube.get<{ data: { password: string } }>(`/api/v1/namespaces/default/secrets/${name}`);
    expect(Buffer.from(back.data.password, "base64").toString()).toBe(value);
    // Raw from etcd: the secretbox envelope, and nowhere the value or its base64.
    const raw = planet(
      "exec",
      "--rootfs",
      rootfs,
      "--",
      "etcdctl",
      "get",
      `/registry/secrets/default/${name}`,
      "--print-value-only",
    );
    expect(raw.exitCode).toBe(0);
    expect(raw.stdout).toContain(`k8s:enc:secretbox:v1:${keyName("encryption.key")}:`);
    expect(raw.stdout).not.toContain(value);
    expect(raw.stdout).not.toContain(Buffer.from(value).toString("base64"));
    // A ConfigMap is not encrypted (only Secrets are): the check is not vacuous.
    await kube.create("/api/v1/namespaces/default/configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name },
      data: { plain: value },
    });
    const cm = planet(
      "exec",
      "--rootfs",
      rootfs,
      "--",
      "etcdctl",
      "get",
      `/registry/configmaps/default/${name}`,
      "--print-value-only",
    );
    expect(cm.stdout).toContain(value);
    // The audit log, on the host's data volume: admin created the Secret; Metadata level keeps its data out.
    const log = join(work, "data", "audit", "audit.log");
    const line = await waitFor(
      "the Secret's create in the audit log",
      async () =>
        (
          await Bun.file(log)
            .text()
            .catch(() => "")
        )
          .split("\n")
          .find((l) => l.includes(`"name":"${name}"`) && l.includes('"resource":"secrets"') && l.includes('"verb":"create"')),
      30_000,
      500,
    );
    const event = JSON.parse(line) as { level: string; user: { username: string }; objectRef: { namespace: string } };
    expect(event.level).toBe("Metadata");
    expect(event.user.username).toBe("admin");
    expect(event.objectRef.namespace).toBe("default");
    expect(await Bun.file(log).text()).not.toContain(value);
    expect(planet("exec", "--rootfs", rootfs, "--", "/usr/lib/planet/apiserver-encryption", "check").exitCode).toBe(0);
  }, 90_000);

  test("planet test --kube-addr passes against it (pods, exec, logs, pod-to-pod, ClusterIP, Job, RBAC)", async () => {
    const res = await planetAsync([
      "test",
      "--kube-addr",
      `${IP}:6443`,
      "--kubeconfig",
      join(secrets, "admin.kubeconfig"),
      "--json",
    ]);
    const results = JSON.parse(res.stdout) as { name: string; ok: boolean; error?: string }[];
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        "pod-running",
        "pod-exec",
        "pod-logs",
        "pod-to-pod",
        "service-clusterip",
        "job-completes",
        "rbac-denies",
        "cleanup",
      ]),
    );
    expect(res.exitCode).toBe(0);
  }, 600_000);

  test("planet status reports every plugin healthy", async () => {
    await waitFor("all checks ok", () => planet("status", "--rootfs", rootfs, "--local").exitCode === 0, 60_000, 1000);
    const json = JSON.parse(planet("status", "--rootfs", rootfs, "--json").stdout) as {
      status: string;
      leader: { leader: string };
    };
    expect(json.status).toBe("healthy");
    expect(json.leader.leader).toBe(IP);
    // The add-ons' checks are among them, and each passes (the warnings too: metrics, storage, charts).
    const addOns = ["metrics-api", "storage-provisioner", "netpol-kube-router-running", "netpol-chains", "helm-charts"];
    const states = await waitFor(
      "add-on checks ok",
      () => {
        const st = JSON.parse(planet("status", "--rootfs", rootfs, "--local", "--json").stdout) as {
          members: { checks?: { name: string; state: string }[] }[];
        };
        const checks = st.members[0]?.checks ?? [];
        const mine = Object.fromEntries(checks.filter((c) => addOns.includes(c.name)).map((c) => [c.name, c.state]));
        return Object.values(mine).every((v) => v === "ok") && Object.keys(mine).length === addOns.length ? mine : undefined;
      },
      120_000,
      2000,
    );
    expect(Object.keys(states).sort()).toEqual([...addOns].sort());
  }, 200_000);

  test("metrics: kubectl top nodes and pods answer; a HorizontalPodAutoscaler scales a Deployment up under CPU load and back down; a node's identity reads no metrics", async () => {
    const kubectl = (...args: string[]) => planet("exec", "--rootfs", rootfs, "kubectl", ...args);
    const top = await waitFor(
      "kubectl top nodes",
      () => {
        const r = kubectl("top", "nodes", "--no-headers");
        return r.exitCode === 0 && r.stdout.includes(NODE) ? r.stdout : null;
      },
      120_000,
      2000,
    );
    expect(top).toMatch(new RegExp(`${NODE}\\s+\\d+m\\s+\\d+%\\s+\\d+Mi`));
    expect(kubectl("top", "pods", "-n", "kube-system", "--no-headers").stdout).toContain("metrics-server");
    // The kubelet's identity (system:node) may not read the Metrics API.
    const node = new Kube(loadKubeconfig(join(secrets, "kubelet.kubeconfig"), `https://${IP}:6443`));
    await expect(node.get("/apis/metrics.k8s.io/v1beta1/pods")).rejects.toMatchObject({ status: 403 });
    // A Deployment whose pods burn their CPU limit, and an HPA at 50 % of the request, no scale-down delay.
    const deployment = (command: string) => ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "burner", namespace: "default" },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "burner" } },
        template: {
          metadata: { labels: { app: "burner" } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [busybox(["sh", "-c", command], { resources: { requests: { cpu: "50m" }, limits: { cpu: "100m" } } })],
          },
        },
      },
    });
    await kube.create("/apis/apps/v1/namespaces/default/deployments", deployment("while :; do :; done"));
    await kube.create("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", {
      apiVersion: "autoscaling/v2",
      kind: "HorizontalPodAutoscaler",
      metadata: { name: "burner", namespace: "default" },
      spec: {
        scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "burner" },
        minReplicas: 1,
        maxReplicas: 3,
        metrics: [{ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 50 } } }],
        behavior: { scaleDown: { stabilizationWindowSeconds: 0 } },
      },
    });
    type Hpa = { status: { currentReplicas?: number; desiredReplicas?: number } };
    const replicas = async () =>
      (await kube.get<Hpa>("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/burner")).status;
    await waitFor("the HPA scaling burner up to 3", async () => (await replicas()).desiredReplicas === 3, 240_000, 2000);
    // The load goes: the same Deployment, idle.
    await kube.request(
      "PATCH",
      "/apis/apps/v1/namespaces/default/deployments/burner",
      { spec: { template: { spec: { containers: [{ name: "main", command: ["sleep", "3600"] }] } } } },
      "application/json",
      "application/strategic-merge-patch+json",
    );
    await waitFor("the HPA scaling burner back down to 1", async () => (await replicas()).desiredReplicas === 1, 300_000, 2000);
    await kube.delete("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/burner");
    await kube.delete("/apis/apps/v1/namespaces/default/deployments/burner");
  }, 900_000);

  test("storage: a claim with no class binds to the default local-path class, its data lives under the host's data dir, survives its pod and goes with the claim; a StatefulSet's claim template runs", async () => {
    const localPath = join(work, "data", "local-path");
    type Sc = { metadata: { annotations?: Record<string, string> }; reclaimPolicy: string };
    const sc = await kube.get<Sc>("/apis/storage.k8s.io/v1/storageclasses/local-path");
    expect(sc.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"]).toBe("true");
    expect(sc.reclaimPolicy).toBe("Delete");
    const pod = (name: string, command: string, claim: string) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [busybox(["sh", "-c", command], { volumeMounts: [{ name: "data", mountPath: "/data" }] })],
        volumes: [{ name: "data", persistentVolumeClaim: { claimName: claim } }],
      },
    });
    const phase = async (name: string) =>
      (await kube.get<{ status: { phase: string } }>(`/api/v1/namespaces/default/pods/${name}`)).status.phase;
    await kube.create("/api/v1/namespaces/default/persistentvolumeclaims", {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "data" },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "16Mi" } } },
    });
    await kube.create("/api/v1/namespaces/default/pods", pod("writer", "echo kept > /data/f && sleep 3600", "data"));
    await waitFor("writer running", async () => (await phase("writer")) === "Running", 120_000, 500);
    type Pvc = { spec: { storageClassName?: string; volumeName?: string }; status: { phase: string } };
    const pvc = await kube.get<Pvc>("/api/v1/namespaces/default/persistentvolumeclaims/data");
    expect([pvc.status.phase, pvc.spec.storageClassName]).toEqual(["Bound", "local-path"]);
    const folder = await waitFor(
      "the claim's folder on the host",
      () => readdirSync(localPath).find((d) => d.startsWith(`${pvc.spec.volumeName}_default_data`)),
      30_000,
    );
    expect(readFileSync(join(localPath, folder, "f"), "utf8")).toBe("kept\n");
    // Another pod on the same claim reads what the first wrote.
    await kube.delete("/api/v1/namespaces/default/pods/writer");
    await waitFor(
      "writer gone",
      () =>
        kube.get("/api/v1/namespaces/default/pods/writer").then(
          () => undefined,
          () => true,
        ),
      60_000,
    );
    await kube.create("/api/v1/namespaces/default/pods", pod("reader", "cat /data/f; sleep 3600", "data"));
    await waitFor("reader running", async () => (await phase("reader")) === "Running", 60_000, 500);
    expect((await kube.exec("default", "reader", ["cat", "/data/f"])).stdout).toBe("kept\n");
    // Claim deleted: the volume and its folder go (reclaim policy Delete, done by a helper pod).
    await kube.delete("/api/v1/namespaces/default/pods/reader");
    await waitFor(
      "reader gone",
      () =>
        kube.get("/api/v1/namespaces/default/pods/reader").then(
          () => undefined,
          () => true,
        ),
      60_000,
    );
    await kube.delete("/api/v1/namespaces/default/persistentvolumeclaims/data");
    await waitFor("the claim's folder removed", () => !existsSync(join(localPath, folder)), 90_000, 500);
    await waitFor(
      "its volume deleted",
      () =>
        kube.get(`/api/v1/persistentvolumes/${pvc.spec.volumeName}`).then(
          () => undefined,
          () => true,
        ),
      60_000,
    );
    // A StatefulSet with a claim template (its data checked again after the bubble restarts, below).
    await kube.create("/apis/apps/v1/namespaces/default/statefulsets", {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: "db" },
      spec: {
        serviceName: "db",
        replicas: 1,
        selector: { matchLabels: { app: "db" } },
        template: {
          metadata: { labels: { app: "db" } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [
              busybox(["sh", "-c", "[ -f /data/id ] || echo $(date +%s)-$RANDOM > /data/id; exec sleep 3600"], {
                volumeMounts: [{ name: "data", mountPath: "/data" }],
              }),
            ],
          },
        },
        volumeClaimTemplates: [
          { metadata: { name: "data" }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "16Mi" } } } },
        ],
      },
    });
    await waitFor("db-0 running", async () => (await phase("db-0").catch(() => "")) === "Running", 120_000, 500);
    dbId = (await kube.exec("default", "db-0", ["cat", "/data/id"])).stdout.trim();
    expect(dbId).toMatch(/^\d+-\d+$/);
  }, 600_000);

  test("kubectl run --image=busybox: the applets of a debug pod work (sh, wget -T, nslookup, nc, ping)", async () => {
    const script = [
      "set -e",
      "mkdir -p /www && echo served > /www/x && httpd -p 8080 -h /www",
      "wget -T 5 -q -O- http://127.0.0.1:8080/x",
      "nslookup kubernetes.default.svc.cluster.local | grep -q 10.100.0.1 && echo resolved",
      "(nc -l -p 8081 > /tmp/got &) ; sleep 1; echo talked | nc -w 2 127.0.0.1 8081; sleep 1; cat /tmp/got",
      "ping -c 1 -W 2 127.0.0.1 > /dev/null && echo pinged",
    ].join("\n");
    const kubectl = (...args: string[]) => planet("exec", "--rootfs", rootfs, "kubectl", ...args);
    const run = kubectl("run", "smoke", "--image=busybox", "--restart=Never", "--command", "--", "sh", "-c", script);
    expect(run.exitCode).toBe(0);
    const phase = await waitFor(
      "smoke done",
      async () => {
        const p = (await kube.get<{ status: { phase: string } }>("/api/v1/namespaces/default/pods/smoke")).status.phase;
        return p === "Succeeded" || p === "Failed" ? p : undefined;
      },
      90_000,
      500,
    );
    const logs = kubectl("logs", "smoke").stdout;
    expect([phase, logs.split("\n").filter(Boolean)]).toEqual(["Succeeded", ["served", "resolved", "talked", "pinged"]]);
    await kube.delete("/api/v1/namespaces/default/pods/smoke");
  }, 120_000);

  test("the registry lets no one in without a cluster certificate and only the import writes", async () => {
    const ca = Bun.file(join(secrets, "root.cert"));
    const url = `https://${IP}:5000/v2/_catalog`;
    // No client certificate: the TLS handshake itself is refused.
    await expect(fetch(url, { tls: { ca } })).rejects.toThrow();
    const admin = { ca, cert: Bun.file(join(secrets, "admin.cert")), key: Bun.file(join(secrets, "admin.key")) };
    const catalog = (await (await fetch(url, { tls: admin })).json()) as { repositories: string[] };
    expect(catalog.repositories).toEqual(expect.arrayContaining(["docker.io/library/busybox", "registry.k8s.io/pause"]));
    // A certificate from the cluster CA still cannot write: the served registry is read-only.
    const upload = await fetch(`https://${IP}:5000/v2/docker.io/library/busybox/blobs/uploads/`, { method: "POST", tls: admin });
    expect(upload.status).toBe(405);
    const del = await fetch(`https://${IP}:5000/v2/docker.io/library/busybox/manifests/latest`, { method: "DELETE", tls: admin });
    expect(del.status).toBe(405);
  }, 60_000);

  test("bundled images run offline under their upstream names; an unbundled one fails fast naming the offline registry", async () => {
    const create = planet(
      "exec",
      "--rootfs",
      rootfs,
      "kubectl",
      "create",
      "deployment",
      "bb",
      "--image=busybox",
      "--",
      "sleep",
      "3600",
    );
    expect(create.exitCode).toBe(0);
    await waitFor(
      "deployment bb available",
      async () =>
        (await kube.get<{ status: { availableReplicas?: number } }>("/apis/apps/v1/namespaces/default/deployments/bb")).status
          .availableReplicas === 1,
      120_000,
      500,
    );
    // busybox's networking applets resolve names (Debian's dynamic busybox, not a static glibc one).
    const pod = (
      await kube.get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces/default/pods?labelSelector=app%3Dbb")
    ).items[0]?.metadata.name as string;
    const lookup = planet(
      "exec",
      "--rootfs",
      rootfs,
      "kubectl",
      "exec",
      pod,
      "--",
      "nslookup",
      "kubernetes.default.svc.cluster.local",
    );
    expect(lookup.stdout).toContain("10.100.0.1");
    await kube.create("/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "unbundled" },
      spec: { containers: [{ name: "main", image: "docker.io/library/not-bundled:1.0" }] },
    });
    const t0 = Date.now();
    const message = await waitFor(
      "pull failure of the unbundled image",
      async () => {
        const p = await kube.get<{
          status: { containerStatuses?: { state: { waiting?: { reason: string; message?: string } } }[] };
        }>("/api/v1/namespaces/default/pods/unbundled");
        const w = p.status.containerStatuses?.[0]?.state.waiting;
        return w && /ErrImagePull|ImagePullBackOff/.test(w.reason) && w.message ? w.message : undefined;
      },
      60_000,
      250,
    );
    expect(message).toContain("docker.io/library/not-bundled:1.0 is not in the cluster's offline registry");
    process.stderr.write(`unbundled image refused after ${Date.now() - t0} ms\n`);
    await kube.delete("/api/v1/namespaces/default/pods/unbundled");
    await kube.delete("/apis/apps/v1/namespaces/default/deployments/bb");
  }, 300_000);

  // Last before the restarts: each apiserver restart makes kube-proxy and CoreDNS re-establish their watches.
  test("the encryption key rotates in stages with the apiserver restarted between them: every Secret stays readable and ends under the new key", async () => {
    const etcdValue = (name: string) =>
      planet("exec", "--rootfs", rootfs, "--", "etcdctl", "get", `/registry/secrets/default/${name}`, "--print-value-only")
        .stdout;
    const restartApiserver = async () => {
      expect(planet("exec", "--rootfs", rootfs, "--", "systemctl", "restart", "kube-apiserver").exitCode).toBe(0);
      await waitFor(
        "the apiserver back",
        () =>
          kube
            .request<string>("GET", "/readyz", undefined, "text/plain")
            .then((t) => t.trim() === "ok")
            .catch(() => false),
        90_000,
        500,
      );
    };
    const secret = async (name: string) =>
      Buffer.from(
        (await kube.get<{ data: { v: string } }>(`/api/v1/namespaces/default/secrets/${name}`)).data.v,
        "base64",
      ).toString();
    const stage = (s: string) => {
      const r = planet("secrets", "rotate-encryption", secrets, "--stage", s);
      expect(r.exitCode).toBe(0);
    };
    await kube.create("/api/v1/namespaces/default/secrets", {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "before-rotation" },
      stringData: { v: "one" },
    });
    const oldName = keyName("encryption.key");
    expect(etcdValue("before-rotation")).toContain(`:${oldName}:`);
    stage("prepare");
    const newName = keyName("encryption-next.key");
    await restartApiserver();
    // Out of order: one line, nothing changed.
    const early = planet("secrets", "rotate-encryption", secrets, "--stage", "finish");
    expect(early.exitCode).toBe(1);
    expect(early.stderr).toContain("ROTATION_ORDER");
    stage("rotate");
    await restartApiserver();
    await kube.create("/api/v1/namespaces/default/secrets", {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "after-rotation" },
      stringData: { v: "two" },
    });
    expect(etcdValue("after-rotation")).toContain(`:${newName}:`);
    expect(etcdValue("before-rotation")).toContain(`:${oldName}:`);
    expect(await secret("before-rotation")).toBe("one");
    const re = planet("exec", "--rootfs", rootfs, "--", "planet", "secrets", "reencrypt");
    expect(re.exitCode).toBe(0);
    expect(etcdValue("before-rotation")).toContain(`:${newName}:`);
    stage("finish");
    await restartApiserver();
    expect(await secret("before-rotation")).toBe("one");
    expect(await secret("after-rotation")).toBe("two");
    expect(planet("exec", "--rootfs", rootfs, "--", "/usr/lib/planet/apiserver-encryption", "check").exitCode).toBe(0);
  }, 300_000);

  test("a restart with the same volumes and secrets keeps every object", async () => {
    await kube.create("/api/v1/namespaces/default/configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "keep-me" },
      data: { a: "1" },
    });
    await kube.create("/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "stubborn" },
      spec: {
        // PID 1 ignores SIGTERM: halting must not wait the default 90 s for it.
        terminationGracePeriodSeconds: 30,
        containers: [busybox(["sleep", "3600"])],
      },
    });
    await waitFor(
      "stubborn running",
      async () =>
        (await kube.get<{ status: { phase: string } }>("/api/v1/namespaces/default/pods/stubborn")).status.phase === "Running",
      60_000,
    );
    const stop = planet("stop", "--rootfs", rootfs);
    expect(stop.exitCode).toBe(0);
    expect(stop.stderr).not.toContain("forced");
    const t0 = Date.now();
    expect((await start()).exitCode).toBe(0);
    await waitFor("node Ready again", () => nodeReady(kube, t0), 120_000, 250);
    const cm = await kube.get<{ data: { a: string } }>("/api/v1/namespaces/default/configmaps/keep-me");
    expect(cm.data.a).toBe("1");
    await waitFor(
      "stubborn running again",
      async () =>
        (await kube.get<{ status: { phase: string } }>("/api/v1/namespaces/default/pods/stubborn")).status.phase === "Running",
      90_000,
    );
    // The StatefulSet's volume (local-path, on the data dir) kept what it held.
    const id = await waitFor(
      "db-0 reading its volume again",
      async () => (await kube.exec("default", "db-0", ["cat", "/data/id"])).stdout.trim() || undefined,
      90_000,
      1000,
    );
    expect(id).toBe(dbId);
  }, 400_000);

  test("stop of a bubble whose planet start was killed still leaves the host as it was: sysctls the kubelet changes restored, no links, cgroups or iptables left", async () => {
    // Orphaned: its owner killed with -9, as a crash would. Stop halts systemd all the same.
    const owner = readState(`planet-${CLUSTER}-${HOST}`)?.pid as number;
    process.kill(owner, "SIGKILL");
    await waitFor("the owner gone", () => !existsSync(`/proc/${owner}`), 10_000, 50);
    expect(planet("stop", "--rootfs", rootfs).exitCode).toBe(0);
    // The node's own cleanup unit removed its network state inside the test host before halting.
    expect(sh(["ip", "netns", "exec", HOST, "ip", "link", "show", "cni0"]).exitCode).not.toBe(0);
    expect(sh(["ip", "netns", "exec", HOST, "sh", "-c", "iptables-save | grep -c -e KUBE- -e CNI- || true"]).stdout.trim()).toBe(
      "0",
    );
    host?.[Symbol.dispose]();
    host = undefined;
    await waitFor("host as before", () => Bun.deepEquals(hostSnapshot(), before), 10_000).catch(() => false);
    expect(hostSnapshot()).toEqual(before);
    // Nothing of Kubernetes' or the CNI's rules ever reached the host's own tables.
    expect(sh(["sh", "-c", "iptables-save | grep -c -e KUBE- -e CNI- -e FLANNEL || true"]).stdout.trim()).toBe("0");
  }, 120_000);
});
