/** Shared pieces of the integration tests: build once, boot in a test host, snapshot the host. */

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { type Agent, type AgentOptions, createAgent } from "../core/agent/agent.ts";
import { RUNC_ROOT } from "../core/bubble/state.ts";
import { certRequests } from "../core/cli/commands/secrets.ts";
import type { Kube } from "../core/kube/client.ts";
import { poll } from "../core/util.ts";
import { initSecrets } from "../secrets/init.ts";

export const REPO = resolve(import.meta.dir, "..");
export const CLI = [process.execPath, join(REPO, "core/cli/main.ts")];

/** Booting needs root, runc, socat and mmdebstrap; without them the tests show as skipped. */
export const canBoot =
  process.getuid?.() === 0 &&
  ["runc", "socat", "setpriv", "mmdebstrap", "ip"].every((t) => Bun.which(t) !== null) &&
  existsSync("/proc/self/ns/cgroup");

export interface Ran {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (never throws on non-zero). */
export function sh(cmd: string[], opts: { env?: Record<string, string>; cwd?: string; stdin?: string } = {}): Ran {
  const res = Bun.spawnSync(cmd, {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...opts.env },
    stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
  });
  return { exitCode: res.exitCode ?? -1, stdout: res.stdout.toString(), stderr: res.stderr.toString() };
}

/** `planet …` from the checkout. */
export function planet(...args: string[]): Ran {
  return sh([...CLI, ...args]);
}

export async function planetAsync(args: string[], env?: Record<string, string>): Promise<Ran> {
  const proc = Bun.spawn([...CLI, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, stdout, stderr };
}

/**
 * The small image of the bubble test and the boot bench: the node target with nothing that needs the
 * kubelet or the masters (its volumes and policies go with kube-node, the load balancer with the
 * masters a node reaches), and the example plugin.
 */
export const SMALL_IMAGE = [
  "--target",
  "node",
  ...["kube-node", "flannel", "dns", "storage", "netpol", "apilb"].flatMap((p) => ["--without", p]),
  "--plugin",
  "./examples/hello",
];

/** Builds a target into build/test-<name> (warm cache: seconds) and returns its folder. */
export function buildTest(name: string, args: string[]): string {
  const out = join(REPO, "build", `test-${name}`);
  const res = planet("build", ...args, "--out", out);
  if (res.exitCode !== 0) throw new Error(`build ${name} failed: ${res.stderr.slice(-2000)}`);
  return out;
}

/**
 * Another image made from a built one (`build` holds rootfs/): its manifest says `version`, and
 * `files` are written into it. Hard links, with every written file replaced (never written
 * through), so the build stays as it was.
 */
export function derivedImage(
  build: string,
  dest: string,
  version: string,
  files: Record<string, string> = {},
  editManifest: (m: { version: string; assets: { name: string; version: string }[] }) => void = () => {},
): string {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  const cp = sh(["cp", "-al", join(build, "rootfs"), join(dest, "rootfs")]);
  if (cp.exitCode !== 0) throw new Error(`copy ${build}: ${cp.stderr}`);
  const manifestPath = join(dest, "rootfs/etc/planet/manifest.json");
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  manifest.version = version;
  editManifest(manifest);
  for (const [path, text] of Object.entries({ "etc/planet/manifest.json": JSON.stringify(manifest, null, 2), ...files })) {
    const file = join(dest, "rootfs", path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  }
  return dest;
}

/**
 * The PKI of a dev bubble (master and node) at `ip`, valid a year: what most tests boot with. (Not less
 * than the renewal window: the renew timer, 2 minutes after boot, would renew everything and restart
 * every unit under a test.)
 */
export async function devSecrets(dir: string, o: { domain: string; ips: string[]; node: string }): Promise<void> {
  await initSecrets(dir, certRequests("dev").requests, {
    domain: o.domain,
    serviceSubnet: "10.100.0.0/16",
    ips: o.ips,
    hosts: [],
    nodeName: o.node,
    validityDays: 365,
  });
}

/**
 * Creates ConfigMaps `<prefix>-N` in `default`, one after another, until stopped: `acked` are those
 * the API acknowledged. `kubeFor(i)` picks the apiserver of the i-th write.
 */
export function startWriter(kubeFor: (i: number) => Kube, prefix: string) {
  const acked: string[] = [];
  let writing = true;
  const loop = (async () => {
    for (let i = 0; writing; i++) {
      const name = `${prefix}-${i}`;
      try {
        await kubeFor(i).create("/api/v1/namespaces/default/configmaps", { metadata: { name }, data: { n: String(i) } });
        acked.push(name);
      } catch {
        await Bun.sleep(200);
      }
      await Bun.sleep(50);
    }
  })();
  return {
    acked,
    async stop(): Promise<string[]> {
      writing = false;
      await loop;
      return acked;
    },
    /** The acknowledged writes `kube` does not have. */
    async lost(kube: Kube): Promise<string[]> {
      const list = await kube.get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces/default/configmaps");
      const names = new Set(list.items.map((c) => c.metadata.name));
      return acked.filter((a) => !names.has(a));
    },
  };
}

/** Polls `probe` until it returns something truthy (the core's poll); throws naming `what` and the last error. */
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs: number,
  stepMs = 200,
): Promise<NonNullable<T>> {
  const { value, error } = await poll(probe, timeoutMs, stepMs);
  if (value !== undefined) return value;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${error ? `: ${error}` : ""}`);
}

/** A bubble in a test host, as `planet start` is told of it; without `rootfs` the data dir's current slot boots. */
export interface StartFlags {
  rootfs?: string;
  host: string;
  cluster: string;
  node?: string;
  secrets?: string;
  data?: string;
}

/** The arguments of `planet start … --detach` for `o`, with `extra` flags before --detach. */
export function startArgs(o: StartFlags, ...extra: string[]): string[] {
  const flag = (name: string, value?: string) => (value === undefined ? [] : [name, value]);
  return [
    "start",
    ...flag("--rootfs", o.rootfs),
    "--netns",
    o.host,
    "--cluster-id",
    o.cluster,
    ...flag("--node-name", o.node),
    ...flag("--secrets-dir", o.secrets),
    ...flag("--data-dir", o.data),
    ...extra,
    "--detach",
  ];
}

/** `planet start … --detach` of a bubble in a test host; secrets and data live in the test's `work` folder. */
export function startBubble(
  o: { rootfs: string; host: string; cluster: string; node: string; work: string },
  ...extra: string[]
): Promise<Ran> {
  const { work, ...rest } = o;
  return planetAsync(startArgs({ ...rest, secrets: join(work, "secrets"), data: join(work, "data") }, ...extra));
}

/** A pod's container `main` running `command` in the bundled busybox, with any more fields of `extra`. */
export function busybox(command: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: "main", image: "docker.io/library/busybox:latest", imagePullPolicy: "IfNotPresent", command, ...extra };
}

/** Creates a busybox pod that sleeps (once the namespace's default service account exists); returns its IP. */
export async function sleeperPod(kube: Kube, name: string, ns = "default"): Promise<string> {
  await waitFor("default service account", () => kube.get(`/api/v1/namespaces/${ns}/serviceaccounts/default`), 60_000);
  await kube.create(`/api/v1/namespaces/${ns}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [busybox(["sleep", "3600"])],
    },
  });
  return waitFor(
    `pod ${name} IP`,
    async () => (await kube.get<{ status: { podIP?: string } }>(`/api/v1/namespaces/${ns}/pods/${name}`)).status.podIP,
    90_000,
  );
}

/** A test host (netns + veth) for the duration of a `using` block. */
export function testHost(name: string, ip: string): { name: string; ip: string } & Disposable {
  const up = planet("dev-host", "up", name, "--ip", ip);
  if (up.exitCode !== 0) throw new Error(`dev-host up: ${up.stderr}`);
  return {
    name,
    ip,
    [Symbol.dispose]() {
      planet("dev-host", "down", name, "--ip", ip);
    },
  };
}

const SYSCTLS = [
  "kernel/panic",
  "kernel/panic_on_oops",
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
  "net/ipv4/ip_forward",
  "net/ipv4/conf/all/route_localnet",
  "net/bridge/bridge-nf-call-iptables",
  "fs/inotify/max_user_watches",
];

/** What a bubble must leave as it found it on the host. */
export function hostSnapshot(): Record<string, unknown> {
  const cgroupDirs: Record<string, string[]> = {};
  for (const ctrl of readdirSync("/sys/fs/cgroup"))
    try {
      cgroupDirs[ctrl] = readdirSync(join("/sys/fs/cgroup", ctrl), { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
    } catch {
      // a file, not a hierarchy
    }
  const procs = readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .flatMap((pid) => {
      try {
        const cg = readFileSync(`/proc/${pid}/cgroup`, "utf8");
        return /planet-/.test(cg) ? [`${pid}:${readFileSync(`/proc/${pid}/comm`, "utf8").trim()}`] : [];
      } catch {
        return [];
      }
    });
  return {
    mounts: readFileSync("/proc/mounts", "utf8"),
    // hierarchy ids only: num_cgroups moves with everything else running on the machine
    cgroupHierarchies: readFileSync("/proc/cgroups", "utf8")
      .split("\n")
      .map((l) => l.split("\t").slice(0, 2).join("\t")),
    cgroupDirs,
    sysctls: Object.fromEntries(
      SYSCTLS.filter((s) => existsSync(`/proc/sys/${s}`)).map((s) => [s, readFileSync(`/proc/sys/${s}`, "utf8").trim()]),
    ),
    runcDefault: sh(["runc", "list", "-q"]).stdout,
    runcPlanet: existsSync(RUNC_ROOT) ? sh(["runc", "--root", RUNC_ROOT, "list", "-q"]).stdout : "",
    planetState: existsSync("/run/planet") ? readdirSync("/run/planet") : null,
    processesInBubbleCgroups: procs,
    links: sh(["ip", "-o", "link", "show"])
      .stdout.replace(/\s+link\/\S+.*$/gm, "")
      .replace(/^\d+: /gm, ""),
    netns: existsSync("/run/netns") ? readdirSync("/run/netns") : null,
  };
}

/** A TCP port free on loopback right now. */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** A master's agent on 127.0.0.1 (no etcd) with `secretsDir`'s certificates and its mTLS API on a free port. */
export async function loopbackMaster(
  secretsDir: string,
  extra: Partial<AgentOptions> = {},
): Promise<{ agent: Agent; port: number }> {
  const port = freePort();
  const agent = await createAgent({
    node: "m1",
    ip: "127.0.0.1",
    roles: ["master"],
    checks: [],
    secretsDir,
    leaderKey: "/planet/test/leader",
    termSeconds: 5,
    rpcAddrs: [`127.0.0.1:${port}`],
    rpcPort: port,
    members: [],
    ...extra,
  });
  return { agent, port };
}
