/**
 * The cases of `planet test`, in the order they run: each a name and a function of the shared
 * context (the namespace, the image, and what earlier cases hand on), with the pod helpers they use.
 * suite.ts runs them.
 */
import { type Kube, KubeError } from "../kube/client.ts";

export interface Ctx {
  kube: Kube;
  ns: string;
  image: string;
  outside?: { name: string; ip: string };
  /** Pod IPs and names the cases hand on to each other. */
  vars: Record<string, string>;
}

export async function until<T>(what: string, probe: () => Promise<T | undefined | false | null>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    await Bun.sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (${last})` : ""}`);
}

interface Pod {
  status?: {
    phase?: string;
    podIP?: string;
    containerStatuses?: { state?: { waiting?: { reason?: string; message?: string } } }[];
  };
}

function pod(ctx: Ctx, name: string, script: string, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { app: name } },
    spec: {
      terminationGracePeriodSeconds: 1,
      restartPolicy: "Never",
      containers: [{ name: "main", image: ctx.image, imagePullPolicy: "IfNotPresent", command: ["sh", "-c", script] }],
      ...extra,
    },
  };
}

/** Creates a pod, retrying while the namespace's default service account does not exist yet. */
async function createPod(ctx: Ctx, body: ReturnType<typeof pod>): Promise<void> {
  await until(
    `pod ${body.metadata.name} accepted`,
    async () => {
      try {
        await ctx.kube.create(`/api/v1/namespaces/${ctx.ns}/pods`, body);
        return true;
      } catch (e) {
        if (e instanceof KubeError && e.status === 403 && /serviceaccount/.test(e.message)) return false;
        throw e;
      }
    },
    60_000,
  );
}

async function waitPhase(ctx: Ctx, name: string, phases: string[], timeoutMs = 60_000): Promise<Pod> {
  return until(
    `pod ${name} ${phases.join("/")}`,
    async () => {
      const p = await ctx.kube.get<Pod>(`/api/v1/namespaces/${ctx.ns}/pods/${name}`);
      const waiting = p.status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting?.reason && /ErrImage|ImagePull|CrashLoop|CreateContainerError/.test(waiting.reason))
        throw new Error(`${waiting.reason}: ${waiting.message ?? ""}`);
      return phases.includes(p.status?.phase ?? "") ? p : undefined;
    },
    timeoutMs,
  );
}

async function logsOf(ctx: Ctx, name: string): Promise<string> {
  return ctx.kube.request<string>("GET", `/api/v1/namespaces/${ctx.ns}/pods/${name}/log`, undefined, "*/*");
}

/** A client pod that connects to `target`, prints what it got, and exits. */
async function connect(ctx: Ctx, name: string, host: string, port: number): Promise<string> {
  await createPod(
    ctx,
    pod(
      ctx,
      name,
      `for i in 1 2 3 4 5 6 7 8 9 10; do out=$(nc -w 2 ${host} ${port} </dev/null) && [ -n "$out" ] && echo "$out" && exit 0; sleep 1; done; exit 1`,
    ),
  );
  const p = await waitPhase(ctx, name, ["Succeeded", "Failed"], 90_000);
  const out = (await logsOf(ctx, name)).trim();
  if (p.status?.phase !== "Succeeded") throw new Error(`${name} could not reach ${host}:${port}`);
  return out;
}

type Case = [name: string, run: (ctx: Ctx) => Promise<void>];

/** Thrown by a case that cannot run against this cluster: reported as skipped. */
export class Skip extends Error {}

/**
 * Looks `name` up from the `server` pod with its own resolv.conf (the kube-dns Service), until the
 * answer satisfies `ok`; the answer must come from the kube-dns address.
 */
async function lookup(ctx: Ctx, name: string, ok: (out: string) => boolean, want: string, type = "a"): Promise<void> {
  let last = "";
  try {
    await until(
      `${name} → ${want}`,
      async () => {
        const res = await ctx.kube.exec(ctx.ns, "server", ["nslookup", `-type=${type}`, name]);
        last = `${res.stdout}${res.stderr}`.replace(/\s+/g, " ").trim();
        if (ctx.vars.dnsIp && !res.stdout.includes(ctx.vars.dnsIp)) return false;
        return ok(res.stdout);
      },
      30_000,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last answer: ${last.slice(0, 300)}`);
  }
}

export const CASES: Case[] = [
  [
    "api-reachable",
    async ({ kube }) => {
      const v = await kube.get<{ gitVersion: string }>("/version");
      if (!v.gitVersion) throw new Error("no gitVersion in /version");
    },
  ],
  [
    "nodes-ready",
    async ({ kube }) => {
      type Nodes = { items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[] };
      const notReady = await until(
        "every node Ready",
        async () => {
          const nodes = await kube.get<Nodes>("/api/v1/nodes");
          if (nodes.items.length === 0) return undefined;
          const bad = nodes.items.filter((n) => n.status.conditions.find((c) => c.type === "Ready")?.status !== "True");
          return bad.length === 0 ? [] : undefined;
        },
        60_000,
      );
      if (notReady.length) throw new Error("nodes not ready");
    },
  ],
  [
    "namespace",
    async ({ kube, ns }) => {
      await kube.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
      await until("default service account", () => kube.get(`/api/v1/namespaces/${ns}/serviceaccounts/default`), 60_000);
    },
  ],
  [
    "pod-running",
    async (ctx) => {
      await createPod(
        ctx,
        pod(ctx, "server", "echo hello-from-pod; while true; do echo pong | nc -l -p 8080; done", { restartPolicy: "Always" }),
      );
      const p = await waitPhase(ctx, "server", ["Running"]);
      ctx.vars.serverIp = p.status?.podIP ?? "";
      if (!ctx.vars.serverIp) throw new Error("running pod has no IP");
    },
  ],
  [
    "pod-exec",
    async (ctx) => {
      const res = await ctx.kube.exec(ctx.ns, "server", ["sh", "-c", "echo exec-ok; exit 3"]);
      if (res.stdout.trim() !== "exec-ok" || res.exitCode !== 3)
        throw new Error(`exec gave stdout=${JSON.stringify(res.stdout)} exit=${res.exitCode}`);
    },
  ],
  [
    "pod-logs",
    async (ctx) => {
      const logs = await until(
        "hello in the logs",
        async () => ((await logsOf(ctx, "server")).includes("hello-from-pod") ? true : undefined),
        20_000,
      );
      if (!logs) throw new Error("no logs");
    },
  ],
  [
    "pod-to-pod",
    async (ctx) => {
      const out = await connect(ctx, "client-pod", ctx.vars.serverIp ?? "", 8080);
      if (out !== "pong") throw new Error(`expected pong from ${ctx.vars.serverIp}, got ${JSON.stringify(out)}`);
    },
  ],
  [
    "service-clusterip",
    async (ctx) => {
      type Svc = { spec: { clusterIP: string } };
      const svc = await ctx.kube.create<Svc>(`/api/v1/namespaces/${ctx.ns}/services`, {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "server" },
        spec: { selector: { app: "server" }, ports: [{ port: 80, targetPort: 8080 }] },
      });
      ctx.vars.serviceIp = svc.spec.clusterIP;
      const out = await connect(ctx, "client-svc", svc.spec.clusterIP, 80);
      if (out !== "pong") throw new Error(`expected pong through ${svc.spec.clusterIP}:80, got ${JSON.stringify(out)}`);
    },
  ],
  [
    "dns-service",
    async (ctx) => {
      type Svc = { spec: { clusterIP: string } };
      const dns = (await ctx.kube.get<Svc>("/api/v1/namespaces/kube-system/services/kube-dns")).spec.clusterIP;
      const api = (await ctx.kube.get<Svc>("/api/v1/namespaces/default/services/kubernetes")).spec.clusterIP;
      ctx.vars.dnsIp = dns;
      for (const [name, want] of [
        ["kubernetes.default", api],
        ["server", ctx.vars.serviceIp ?? ""],
        [`server.${ctx.ns}.svc.cluster.local`, ctx.vars.serviceIp ?? ""],
      ] as const)
        await lookup(ctx, name, (out) => out.includes(`Address: ${want}`) || out.includes(`Address:\t${want}`), want);
    },
  ],
  [
    "dns-headless-srv",
    async (ctx) => {
      await ctx.kube.create(`/api/v1/namespaces/${ctx.ns}/services`, {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "headless" },
        spec: { clusterIP: "None", selector: { app: "server" }, ports: [{ name: "http", port: 8080, protocol: "TCP" }] },
      });
      const fqdn = `_http._tcp.headless.${ctx.ns}.svc.cluster.local`;
      await lookup(
        ctx,
        fqdn,
        (out) => / 8080 /.test(out) && out.includes(`headless.${ctx.ns}.svc.cluster.local`),
        "SRV port 8080",
        "srv",
      );
      await lookup(
        ctx,
        `headless.${ctx.ns}.svc.cluster.local`,
        (out) => out.includes(ctx.vars.serverIp ?? "?"),
        ctx.vars.serverIp ?? "",
      );
    },
  ],
  [
    "dns-pod-a",
    async (ctx) => {
      const ip = ctx.vars.serverIp ?? "";
      await lookup(ctx, `${ip.replaceAll(".", "-")}.${ctx.ns}.pod.cluster.local`, (out) => out.includes(`Address: ${ip}`), ip);
    },
  ],
  [
    "dns-externalname",
    async (ctx) => {
      await ctx.kube.create(`/api/v1/namespaces/${ctx.ns}/services`, {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "elsewhere" },
        spec: { type: "ExternalName", externalName: "kubernetes.default.svc.cluster.local" },
      });
      await lookup(
        ctx,
        `elsewhere.${ctx.ns}.svc.cluster.local`,
        (out) => out.includes("kubernetes.default.svc.cluster.local"),
        "a CNAME to kubernetes.default.svc.cluster.local",
      );
    },
  ],
  [
    "dns-outside",
    async (ctx) => {
      if (!ctx.outside) throw new Skip("no --dns-outside name=ip given");
      const { name, ip } = ctx.outside;
      await lookup(ctx, name, (out) => out.includes(`Address: ${ip}`), ip);
    },
  ],
  [
    "job-completes",
    async (ctx) => {
      type Job = { status?: { succeeded?: number; failed?: number } };
      await ctx.kube.create(`/apis/batch/v1/namespaces/${ctx.ns}/jobs`, {
        apiVersion: "batch/v1",
        kind: "Job",
        metadata: { name: "once" },
        spec: { backoffLimit: 0, template: pod(ctx, "once", "echo job-done") },
      });
      await until(
        "job succeeded",
        async () => {
          const j = await ctx.kube.get<Job>(`/apis/batch/v1/namespaces/${ctx.ns}/jobs/once`);
          if (j.status?.failed) throw new Error("job failed");
          return j.status?.succeeded === 1;
        },
        90_000,
      );
    },
  ],
  [
    "rbac-denies",
    async (ctx) => {
      const { kube, ns } = ctx;
      await kube.create(`/api/v1/namespaces/${ns}/serviceaccounts`, {
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: { name: "nobody" },
      });
      // A bound token from the TokenRequest API (token secrets are no longer created since 1.24).
      const req = await kube.create<{ status: { token: string } }>(`/api/v1/namespaces/${ns}/serviceaccounts/nobody/token`, {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 600 },
      });
      const token = req.status.token;
      const weak = kube.withToken(token);
      await weak.get(`/api/v1/namespaces/${ns}/serviceaccounts/nobody`).then(
        () => {
          throw new Error("an unprivileged service account could read service accounts");
        },
        (e) => {
          if (!(e instanceof KubeError) || e.status !== 403) throw e;
        },
      );
      await weak.get("/api/v1/namespaces/kube-system/secrets").then(
        () => {
          throw new Error("an unprivileged service account could list kube-system secrets");
        },
        (e) => {
          if (!(e instanceof KubeError) || e.status !== 403) throw e;
        },
      );
    },
  ],
];
