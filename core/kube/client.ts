/**
 * A small Kubernetes API client over fetch with client certs: what the agent, the secrets, the
 * manifests and the end-to-end suite ask of an apiserver.
 */
import { readFileSync } from "node:fs";
import { PlanetError } from "../errors.ts";

export interface KubeAuth {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
}

interface KubeconfigFile {
  clusters?: {
    name: string;
    cluster: { server: string; "certificate-authority-data"?: string; "certificate-authority"?: string };
  }[];
  users?: {
    name: string;
    user: {
      "client-certificate-data"?: string;
      "client-key-data"?: string;
      "client-certificate"?: string;
      "client-key"?: string;
      token?: string;
    };
  }[];
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  "current-context"?: string;
}

const b64 = (s?: string) => (s ? Buffer.from(s, "base64").toString("utf8") : undefined);
const file = (p?: string) => (p ? readFileSync(p, "utf8") : undefined);

/** Reads the current context of a kubeconfig; `server` overrides its server (`--kube-addr`). */
export function loadKubeconfig(path: string, server?: string): KubeAuth {
  let cfg: KubeconfigFile;
  try {
    cfg = Bun.YAML.parse(readFileSync(path, "utf8")) as KubeconfigFile;
  } catch (e) {
    throw new PlanetError("BAD_KUBECONFIG", `${path}: ${(e as Error).message}`);
  }
  const ctx = cfg.contexts?.find((c) => c.name === cfg["current-context"]) ?? cfg.contexts?.[0];
  const cluster = cfg.clusters?.find((c) => c.name === ctx?.context.cluster)?.cluster ?? cfg.clusters?.[0]?.cluster;
  const user = cfg.users?.find((u) => u.name === ctx?.context.user)?.user ?? cfg.users?.[0]?.user;
  if (!cluster) throw new PlanetError("BAD_KUBECONFIG", `${path} has no cluster`);
  return {
    server: server ?? cluster.server,
    ca: b64(cluster["certificate-authority-data"]) ?? file(cluster["certificate-authority"]),
    cert: b64(user?.["client-certificate-data"]) ?? file(user?.["client-certificate"]),
    key: b64(user?.["client-key-data"]) ?? file(user?.["client-key"]),
    token: user?.token,
  };
}

export class KubeError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class Kube {
  constructor(readonly auth: KubeAuth) {}

  withToken(token: string): Kube {
    return new Kube({ server: this.auth.server, ca: this.auth.ca, token });
  }

  async request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    accept = "application/json",
    contentType = "application/json",
  ): Promise<T> {
    const headers: Record<string, string> = { Accept: accept };
    if (body !== undefined) headers["Content-Type"] = contentType;
    if (this.auth.token) headers.Authorization = `Bearer ${this.auth.token}`;
    let res: Response;
    try {
      res = await fetch(`${this.auth.server}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        tls: { ca: this.auth.ca, cert: this.auth.cert, key: this.auth.key },
        signal: AbortSignal.timeout(15_000),
      });
    } catch (e) {
      throw new KubeError(0, `${method} ${path}: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let msg = text.trim();
      try {
        msg = (JSON.parse(text) as { message?: string }).message ?? msg;
      } catch {
        // not JSON
      }
      throw new KubeError(res.status, `${method} ${path}: HTTP ${res.status} ${msg.slice(0, 200)}`);
    }
    return (accept === "application/json" && text ? JSON.parse(text) : text) as T;
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }
  create<T = unknown>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }
  delete(path: string): Promise<unknown> {
    return this.request("DELETE", path);
  }

  /** Waits until the apiserver answers /readyz, at most `seconds`. */
  async waitReady(seconds: number): Promise<void> {
    const end = Date.now() + seconds * 1000;
    for (;;) {
      const ok = await this.request("GET", "/readyz", undefined, "text/plain").then(
        () => true,
        () => false,
      );
      if (ok) return;
      if (Date.now() > end)
        throw new PlanetError("APISERVER_UNREACHABLE", `no answer from ${this.auth.server}/readyz within ${seconds}s`);
      await Bun.sleep(500);
    }
  }

  /**
   * Runs `work` while holding the Lease `kube-system/<name>` (created for the call, deleted after),
   * so that one host at a time does it; a lease left by a holder that died expires after `ttlSeconds`.
   */
  async withLease<T>(name: string, holder: string, ttlSeconds: number, work: () => Promise<T>): Promise<T> {
    const base = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    type Lease = {
      metadata: { resourceVersion: string };
      spec: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
    };
    for (;;) {
      const now = new Date().toISOString().replace("Z", "000Z");
      const mine = await this.create(base, {
        metadata: { name },
        spec: { holderIdentity: holder, leaseDurationSeconds: ttlSeconds, acquireTime: now, renewTime: now },
      }).then(
        () => true,
        (e) => {
          if (e instanceof KubeError && e.status === 409) return false;
          throw e;
        },
      );
      if (mine) break;
      const held = await this.get<Lease>(`${base}/${name}`).catch(() => null);
      const renewed = Date.parse(held?.spec.renewTime ?? "");
      if (held && Date.now() > renewed + (held.spec.leaseDurationSeconds ?? ttlSeconds) * 1000)
        // Expired: remove exactly that lease (a newer one has another resourceVersion), then try again.
        await this.request("DELETE", `${base}/${name}`, {
          preconditions: { resourceVersion: held.metadata.resourceVersion },
        }).catch(() => {});
      else await Bun.sleep(1000);
    }
    try {
      return await work();
    } finally {
      await this.delete(`${base}/${name}`).catch(() => {});
    }
  }

  /**
   * Runs a command in a container over the exec subresource (WebSocket, v4.channel.k8s.io):
   * channel 1 stdout, 2 stderr, 3 the status.
   */
  exec(
    ns: string,
    pod: string,
    command: string[],
    timeoutMs = 15_000,
  ): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const q = new URLSearchParams({ stdout: "true", stderr: "true" });
    for (const c of command) q.append("command", c);
    const url = `${this.auth.server.replace(/^http/, "ws")}/api/v1/namespaces/${ns}/pods/${pod}/exec?${q}`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        protocols: ["v4.channel.k8s.io"],
        headers: this.auth.token ? { Authorization: `Bearer ${this.auth.token}` } : {},
        tls: { ca: this.auth.ca, cert: this.auth.cert, key: this.auth.key },
      } as unknown as string[]);
      ws.binaryType = "arraybuffer";
      let stdout = "";
      let stderr = "";
      let status = "";
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error(`exec ${command.join(" ")}: no end within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.onmessage = (ev) => {
        const buf = new Uint8Array(ev.data as ArrayBuffer);
        const text = new TextDecoder().decode(buf.subarray(1));
        if (buf[0] === 1) stdout += text;
        else if (buf[0] === 2) stderr += text;
        else if (buf[0] === 3) status += text;
      };
      ws.onerror = (ev) => {
        clearTimeout(timer);
        reject(new Error(`exec ${command.join(" ")}: ${(ev as ErrorEvent).message ?? "websocket error"}`));
      };
      ws.onclose = () => {
        clearTimeout(timer);
        let exitCode = 0;
        if (status) {
          const s = JSON.parse(status) as { status: string; details?: { causes?: { reason: string; message: string }[] } };
          if (s.status !== "Success") exitCode = Number(s.details?.causes?.find((c) => c.reason === "ExitCode")?.message ?? 1);
        }
        resolve({ stdout, stderr, exitCode });
      };
    });
  }
}
