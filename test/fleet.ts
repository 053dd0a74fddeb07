/**
 * A cluster of bubbles on this one machine: every host a test host (network namespace) on one
 * bridge, each with its own copy of its image's rootfs, its own secrets issued from one cluster
 * directory, and its own data. Used by the three-master test and bench/cluster.ts.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { certRequests } from "../core/cli/commands/secrets.ts";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import { pointer } from "../core/upgrade/slots.ts";
import { issueHost } from "../secrets/host.ts";
import { initSecrets } from "../secrets/init.ts";
import { planet, planetAsync, type Ran, sh, startArgs, waitFor } from "./helpers.ts";

export interface FleetHost {
  /** Node name. */
  name: string;
  /** Test host (network namespace) name. */
  host: string;
  ip: string;
  role: "master" | "node";
}

export interface FleetOptions {
  cluster: string;
  bridge: string;
  /** Folder for rootfs copies, secrets and data (removed by `down`). */
  work: string;
  masterImage: string;
  nodeImage: string;
  hosts: FleetHost[];
  /** Install each host's image into a slot of its data dir and start it from there (planet upgrade needs it). */
  slots?: boolean;
}

export class Fleet {
  constructor(readonly o: FleetOptions) {}

  get masters(): FleetHost[] {
    return this.o.hosts.filter((h) => h.role === "master");
  }
  get nodes(): FleetHost[] {
    return this.o.hosts.filter((h) => h.role === "node");
  }
  host(name: string): FleetHost {
    const h = this.o.hosts.find((x) => x.name === name || x.ip === name);
    if (!h) throw new Error(`no host ${name} in the fleet`);
    return h;
  }
  /** The rootfs the host's bubble runs: its copy, or its current slot's. */
  rootfs(h: FleetHost): string {
    if (this.o.slots) return pointer(this.dataDir(h), "current")?.rootfs ?? join(this.dataDir(h), "no-slot");
    return join(this.o.work, `rootfs-${h.name}`);
  }
  dataDir(h: FleetHost): string {
    return join(this.o.work, `data-${h.name}`);
  }
  secrets(h: FleetHost): string {
    return join(this.o.work, `secrets-${h.name}`);
  }
  get clusterDir(): string {
    return join(this.o.work, "cluster");
  }
  /** The admin's client, talking to one master. */
  kube(h: FleetHost = this.masters[0] as FleetHost): Kube {
    return new Kube(loadKubeconfig(join(this.clusterDir, "admin.kubeconfig"), `https://${h.ip}:6443`));
  }

  /** Test hosts, rootfs copies and secrets: everything but the bubbles. */
  async prepare(): Promise<void> {
    this.down();
    mkdirSync(this.o.work, { recursive: true });
    for (const h of this.o.hosts) {
      const up = planet("dev-host", "up", h.host, "--ip", h.ip, "--bridge", this.o.bridge);
      if (up.exitCode !== 0) throw new Error(`dev-host up ${h.host}: ${up.stderr}`);
      const image = h.role === "master" ? this.o.masterImage : this.o.nodeImage;
      const cp = this.o.slots
        ? planet("install", image, "--data-dir", this.dataDir(h))
        : sh(["cp", "-a", "--reflink=auto", image, this.rootfs(h)]);
      if (cp.exitCode !== 0) throw new Error(`copy ${image}: ${cp.stderr}`);
    }
    const first = this.masters[0] as FleetHost;
    await initSecrets(this.clusterDir, certRequests("dev").requests, {
      domain: "cluster.local",
      serviceSubnet: "10.100.0.0/16",
      ips: [first.ip],
      hosts: [],
      nodeName: first.name,
      validityDays: 365,
    });
    for (const h of this.o.hosts)
      await issueHost(this.clusterDir, this.secrets(h), certRequests(h.role, [h.role]).requests, {
        nodeName: h.name,
        ips: [h.ip],
        hosts: [],
        roles: [h.role],
        validityDays: 365,
      });
  }

  /** `planet start --detach` of one host, with every master in --initial-cluster. */
  start(h: FleetHost, ...extra: string[]): Promise<Ran> {
    const initial = this.masters.map((m) => `${m.name}:${m.ip}`).join(",");
    return planetAsync(
      startArgs(
        {
          ...(this.o.slots ? {} : { rootfs: this.rootfs(h) }),
          host: h.host,
          cluster: this.o.cluster,
          node: h.name,
          secrets: this.secrets(h),
          data: this.dataDir(h),
        },
        "--initial-cluster",
        initial,
        ...(h.role === "node" ? ["--master-ip", (this.masters[0] as FleetHost).ip] : []),
        // Several bubbles boot at once on two cores: give systemd longer than a lone bubble needs.
        "--ready-timeout",
        "300",
        ...extra,
      ),
    );
  }

  /**
   * `planet start --detach` of a host that joins the running cluster through master `via` with a
   * token: no --initial-cluster, and a secrets folder the join makes (none issued beforehand).
   */
  startJoin(h: FleetHost, via: FleetHost, token: string, ...extra: string[]): Promise<Ran> {
    return planetAsync(
      startArgs(
        {
          rootfs: this.rootfs(h),
          host: h.host,
          cluster: this.o.cluster,
          node: h.name,
          secrets: this.joinedSecrets(h),
          data: this.dataDir(h),
        },
        "--join",
        via.ip,
        "--token",
        token,
        "--ready-timeout",
        "300",
        ...extra,
      ),
    );
  }
  /** Where a host that joins with a token keeps the secrets it makes. */
  joinedSecrets(h: FleetHost): string {
    return join(this.o.work, `joined-${h.name}`);
  }

  /**
   * Creates ConfigMaps `<prefix>-<i>` in a loop, each through the first master that answers (a client
   * with every master's endpoint), until `stop()`: what the API acknowledged, and what no master took.
   */
  writer(prefix = "w"): { acked: string[]; failed: string[]; stop(): Promise<void> } {
    const acked: string[] = [];
    const failed: string[] = [];
    let writing = true;
    const done = (async () => {
      for (let i = 0; writing; i++) {
        const name = `${prefix}-${i}`;
        let ok = false;
        for (const m of this.masters)
          try {
            await this.kube(m).create("/api/v1/namespaces/default/configmaps", {
              apiVersion: "v1",
              kind: "ConfigMap",
              metadata: { name },
              data: { i: String(i) },
            });
            ok = true;
            break;
          } catch (e) {
            // 409: an earlier attempt went through after all — acknowledged by the API.
            if ((e as { status?: number }).status === 409) {
              ok = true;
              break;
            }
          }
        (ok ? acked : failed).push(name);
        await Bun.sleep(50);
      }
    })();
    return {
      acked,
      failed,
      stop: async () => {
        writing = false;
        await done;
      },
    };
  }

  /** Masters together (etcd waits for a quorum before it says ready), then the nodes. */
  async startAll(): Promise<void> {
    const check = (h: FleetHost, r: Ran) => {
      if (r.exitCode !== 0) throw new Error(`start ${h.name}: ${r.stderr.slice(-1500)}`);
    };
    const masters = await Promise.all(this.masters.map((m) => this.start(m)));
    for (const [i, m] of this.masters.entries()) check(m, masters[i] as Ran);
    for (const n of this.nodes) check(n, await this.start(n));
  }

  stop(h: FleetHost): Ran {
    return planet("stop", "--rootfs", this.rootfs(h));
  }

  /** Every Node Ready. */
  async ready(timeoutMs = 240_000): Promise<void> {
    const want = this.o.hosts.map((h) => h.name).sort();
    await waitFor(
      `Nodes ${want.join(", ")} Ready`,
      async () => {
        for (const m of this.masters)
          try {
            const nodes = await this.kube(m).get<{
              items: { metadata: { name: string }; status: { conditions?: { type: string; status: string }[] } }[];
            }>("/api/v1/nodes");
            const ready = nodes.items
              .filter((n) => n.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
              .map((n) => n.metadata.name)
              .sort();
            return JSON.stringify(ready) === JSON.stringify(want);
          } catch {
            // this master is down: ask the next
          }
        return false;
      },
      timeoutMs,
      2000,
    );
  }

  /** The agents' leader, as `planet status` on `h` reports it. */
  leader(h: FleetHost): string | null {
    const r = planet("status", "--rootfs", this.rootfs(h), "--json");
    try {
      return (JSON.parse(r.stdout) as { leader?: { leader: string | null } }).leader?.leader ?? null;
    } catch {
      return null;
    }
  }

  /**
   * Keeps what each running host's systemd logged and its checks in `dir` (outside the work folder,
   * which down() removes): the evidence of a failed run.
   */
  saveLogs(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const h of this.o.hosts) {
      if (!existsSync(this.rootfs(h))) continue;
      const journal = planet(
        "exec",
        "--rootfs",
        this.rootfs(h),
        "--",
        "journalctl",
        "--no-pager",
        "-o",
        "short-precise",
        "-n",
        "20000",
      );
      writeFileSync(join(dir, `${h.name}.journal`), journal.stdout + journal.stderr);
      const status = planet("status", "--rootfs", this.rootfs(h), "--local", "--json");
      writeFileSync(join(dir, `${h.name}.status.json`), status.stdout + status.stderr);
    }
  }

  /** Stops every bubble, removes the test hosts and the work folder. */
  down(): void {
    for (const h of this.o.hosts) if (existsSync(this.rootfs(h))) planet("stop", "--rootfs", this.rootfs(h));
    for (const h of this.o.hosts) planet("dev-host", "down", h.host);
    rmSync(this.o.work, { recursive: true, force: true });
  }
}
