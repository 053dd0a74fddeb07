import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { defineCommand } from "citty";
import { parseToken } from "../../../secrets/token.ts";
import { bubbleId, start, stop } from "../../bubble/bubble.ts";
import { execIn } from "../../bubble/exec.ts";
import { detachLog, listStates, ownerAlive, pidAlive, pruneStateRoot, readState } from "../../bubble/state.ts";
import { parseEnvPair } from "../../environment.ts";
import { PlanetError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { ownImageRootfs } from "../../manifest.ts";
import { requireIp } from "../../net.ts";
import type { Role } from "../../plugin.ts";
import { selfCommand } from "../../proc.ts";
import { pointer } from "../../upgrade/slots.ts";
import { debugArg, multi } from "../_args.ts";

const log = logger("bubble");
const env = (name: string) => process.env[name] || undefined;

/** `--rootfs`, the rootfs this binary lives in (`…/rootfs/usr/bin/planet`), or the current slot of `--data-dir`. */
export function ownRootfs(flag?: string, dataDir?: string): string {
  if (flag) return resolve(flag);
  const own = ownImageRootfs();
  if (own) return own;
  const fromEnv = env("PLANET_ROOTFS");
  if (fromEnv) return resolve(fromEnv);
  const current = dataDir ? pointer(dataDir, "current") : null;
  if (current) return current.rootfs;
  throw new PlanetError(
    "NO_ROOTFS",
    "cannot tell which rootfs to use: run <rootfs>/usr/bin/planet, pass --rootfs, or --data-dir of a host with an installed image (planet install)",
  );
}

/** The flags to start the same bubble again: all but --rootfs (and its value) and --detach. */
export function restartArgs(rawArgs: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i] as string;
    if (a === "--detach" || a.startsWith("--rootfs=")) continue;
    if (a === "--rootfs") {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

const rootfsArg = { rootfs: { type: "string", description: "image rootfs (default: the one this binary lives in)" } } as const;

/** How stop, exec and enter name a running bubble: its rootfs, or the flags that started it. */
const bubbleArgs = {
  ...rootfsArg,
  "cluster-id": { type: "string", description: "the bubble started with this --cluster-id [PLANET_CLUSTER_ID]" },
  netns: { type: "string", description: "…and this --netns [PLANET_NETNS]" },
  "data-dir": { type: "string", description: "the bubble started with this --data-dir" },
} as const;

/**
 * The rootfs of the running bubble the flags name: `--rootfs`, or the bubble started with
 * `--cluster-id` (and `--netns`), or with `--data-dir` — as `planet start --data-dir D --cluster-id C`
 * (an installed image) started it — else the image this binary lives in.
 */
export function bubbleRootfs(args: { rootfs?: string; "cluster-id"?: string; netns?: string; "data-dir"?: string }): string {
  if (args.rootfs) return resolve(args.rootfs);
  const cluster = args["cluster-id"] ?? env("PLANET_CLUSTER_ID");
  const netns = args.netns ?? env("PLANET_NETNS");
  const dataDir = args["data-dir"] ? resolve(args["data-dir"]) : undefined;
  if (cluster || dataDir) {
    const named = cluster ? readState(bubbleId(cluster, netns)) : null;
    const found = named ?? listStates().find((st) => !!dataDir && !!st.dataDir && resolve(st.dataDir) === dataDir);
    if (!found || (dataDir && found.dataDir && resolve(found.dataDir) !== dataDir))
      throw new PlanetError(
        "NOT_RUNNING",
        `no bubble runs with ${[cluster && `--cluster-id ${cluster}`, netns && `--netns ${netns}`, dataDir && `--data-dir ${dataDir}`].filter(Boolean).join(" ")} (running: ${
          listStates()
            .map((st) => st.id)
            .join(", ") || "none"
        })`,
      );
    return found.rootfs;
  }
  return ownRootfs();
}

export const startCmd = defineCommand({
  meta: { name: "start", description: "boot systemd inside the rootfs under runc; stays in the foreground until it halts" },
  args: {
    ...debugArg,
    ...rootfsArg,
    role: { type: "string", description: "master | node (repeatable; default: the image's roles) [PLANET_ROLE]" },
    "public-ip": { type: "string", description: "node address for cluster traffic [PLANET_PUBLIC_IP]" },
    "master-ip": { type: "string", description: "address of the master (default public-ip) [PLANET_MASTER_IP]" },
    join: {
      type: "string",
      description: "a master's address: get this host's certificates from it with --token (keys made here) [PLANET_JOIN]",
    },
    token: { type: "string", description: "join token from planet token create on a master [PLANET_TOKEN]" },
    "cluster-id": { type: "string", description: "cluster name; also names the bubble (default local) [PLANET_CLUSTER_ID]" },
    "secrets-dir": {
      type: "string",
      description: "host dir with certificates, mounted read-only at /var/state [PLANET_SECRETS_DIR]",
    },
    volume: { type: "string", description: "src:dst[:ro] bind mount (repeatable) [PLANET_VOLUME]" },
    env: { type: "string", description: "NAME=value for the container environment (repeatable) [PLANET_ENV]" },
    "service-subnet": { type: "string", description: "service CIDR (default 10.100.0.0/16) [PLANET_SERVICE_SUBNET]" },
    "pod-subnet": { type: "string", description: "pod CIDR (default 10.244.0.0/16) [PLANET_POD_SUBNET]" },
    "pod-subnet-size": {
      type: "string",
      description: "prefix length of each host's share of the pod subnet (default 24, at most 28) [PLANET_POD_SUBNET_SIZE]",
    },
    "vxlan-port": { type: "string", description: "UDP port of the vxlan overlay (default 8472) [PLANET_VXLAN_PORT]" },
    disable: {
      type: "string",
      description:
        "leave a plugin of the image out of this start: its units masked, its checks off (repeatable) [PLANET_DISABLE]",
    },
    "disable-flannel": {
      type: "boolean",
      description: "--disable flannel: pods use a bridge on the node's podCIDR [PLANET_DISABLE_FLANNEL]",
    },
    "dns-hosts": { type: "string", description: "domain/ip,… answered by cluster DNS [PLANET_DNS_HOSTS]" },
    "dns-zones": { type: "string", description: "zone/nameserver,… forwarded to their own servers [PLANET_DNS_ZONES]" },
    "node-name": { type: "string", description: "Kubernetes node name (default hostname) [PLANET_NODE_NAME]" },
    hostname: { type: "string", description: "hostname inside the bubble [PLANET_HOSTNAME]" },
    "initial-cluster": { type: "string", description: "peers name:ip,... [PLANET_INITIAL_CLUSTER]" },
    "kubelet-options": { type: "string", description: "extra kubelet flags [PLANET_KUBELET_OPTIONS]" },
    "apiserver-options": { type: "string", description: "extra kube-apiserver flags [PLANET_APISERVER_OPTIONS]" },
    netns: { type: "string", description: "join this network namespace instead of the host's [PLANET_NETNS]" },
    "data-dir": { type: "string", description: "host dir of the data volumes (default /var/lib/planet/<cluster-id>)" },
    "ready-timeout": { type: "string", description: "seconds to wait for systemd to finish booting", default: "120" },
    "join-timeout": {
      type: "string",
      description: "seconds a node waits for a master to answer before it refuses to start",
      default: "20",
    },
    detach: { type: "boolean", description: "return once the bubble is ready; it keeps running in the background" },
  },
  async run({ args, rawArgs }) {
    const roles = multi(rawArgs, "role", { split: true });
    const joinAt = args.join ?? env("PLANET_JOIN");
    const tokenText = args.token ?? env("PLANET_TOKEN");
    if (!!joinAt !== !!tokenText)
      throw new PlanetError(
        "BAD_FLAG",
        joinAt ? "--join needs --token (print one on a master: planet token create)" : "--token goes with --join <master>",
      );
    if (joinAt) requireIp(joinAt, "--join");
    // Checked before anything else: a malformed token writes nothing.
    const join = joinAt && tokenText ? { master: joinAt, token: parseToken(tokenText) } : undefined;
    const envPairs = [...(env("PLANET_ENV")?.split(",") ?? []), ...multi(rawArgs, "env")];
    const opts = {
      rootfs: ownRootfs(args.rootfs, args["data-dir"]),
      roles: (roles.length ? roles : (env("PLANET_ROLE")?.split(",") ?? [])) as Role[],
      publicIp: args["public-ip"] ?? env("PLANET_PUBLIC_IP"),
      masterIp: args["master-ip"] ?? env("PLANET_MASTER_IP") ?? joinAt,
      join,
      clusterId: args["cluster-id"] ?? env("PLANET_CLUSTER_ID") ?? "local",
      secretsDir: args["secrets-dir"] ?? env("PLANET_SECRETS_DIR"),
      volumes: [...(env("PLANET_VOLUME")?.split(",") ?? []), ...multi(rawArgs, "volume")],
      env: Object.fromEntries(envPairs.map(parseEnvPair)),
      serviceSubnet: args["service-subnet"] ?? env("PLANET_SERVICE_SUBNET") ?? "10.100.0.0/16",
      podSubnet: args["pod-subnet"] ?? env("PLANET_POD_SUBNET") ?? "10.244.0.0/16",
      podSubnetSize: intFlag(args["pod-subnet-size"] ?? env("PLANET_POD_SUBNET_SIZE"), "--pod-subnet-size"),
      vxlanPort: intFlag(args["vxlan-port"] ?? env("PLANET_VXLAN_PORT"), "--vxlan-port"),
      disable: [
        ...(env("PLANET_DISABLE")?.split(",").filter(Boolean) ?? []),
        ...multi(rawArgs, "disable", { split: true }),
        ...(args["disable-flannel"] || env("PLANET_DISABLE_FLANNEL") === "true" ? ["flannel"] : []),
      ],
      dnsHosts: args["dns-hosts"] ?? env("PLANET_DNS_HOSTS"),
      dnsZones: args["dns-zones"] ?? env("PLANET_DNS_ZONES"),
      nodeName: args["node-name"] ?? env("PLANET_NODE_NAME"),
      hostname: args.hostname ?? env("PLANET_HOSTNAME"),
      initialCluster: args["initial-cluster"] ?? env("PLANET_INITIAL_CLUSTER"),
      kubeletOptions: args["kubelet-options"] ?? env("PLANET_KUBELET_OPTIONS"),
      apiserverOptions: args["apiserver-options"] ?? env("PLANET_APISERVER_OPTIONS"),
      netns: args.netns ?? env("PLANET_NETNS"),
      dataDir: args["data-dir"],
      readyTimeout: Number(args["ready-timeout"]),
      joinWaitSeconds: Number(args["join-timeout"]),
      args: restartArgs(rawArgs),
    };
    if (!Number.isFinite(opts.joinWaitSeconds) || opts.joinWaitSeconds < 0)
      throw new PlanetError("BAD_FLAG", `--join-timeout ${args["join-timeout"]}: expected seconds`);
    if (!Number.isFinite(opts.readyTimeout) || opts.readyTimeout <= 0)
      throw new PlanetError("BAD_FLAG", `--ready-timeout ${args["ready-timeout"]}: expected seconds`);
    if (args.detach) {
      process.exitCode = await detach(
        bubbleId(opts.clusterId, opts.netns),
        rawArgs.filter((a) => a !== "--detach"),
        opts.readyTimeout,
      );
      return;
    }
    process.exitCode = await start(opts);
  },
});

/** A whole-number flag, or undefined when not given. */
function intFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new PlanetError("BAD_FLAG", `${flag} ${value}: expected a number`);
  return Number(value);
}

/** Runs `planet start` in the background and returns when it reports ready (or failed). */
async function detach(id: string, rawArgs: string[], timeout: number): Promise<number> {
  const logFile = detachLog(id);
  mkdirSync(dirname(logFile), { recursive: true });
  // Appended, not truncated: a second start racing this one writes its refusal after our lines.
  const from = existsSync(logFile) ? statSync(logFile).size : 0;
  const out = openSync(logFile, "a");
  const child = spawn(selfCommand()[0] as string, [...selfCommand().slice(1), "start", ...rawArgs], {
    detached: true,
    stdio: ["ignore", out, out],
  });
  child.unref();
  const pid = child.pid ?? 0;
  const end = Date.now() + (timeout + 30) * 1000;
  let shown = from;
  const show = () => {
    const text = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    process.stderr.write(text.slice(shown));
    shown = text.length;
  };
  while (Date.now() < end) {
    show();
    const st = readState(id);
    if (st?.pid === pid && st.phase === "ready") {
      show();
      log.info(`running in the background (pid ${pid}, log ${logFile}); stop with: planet stop`);
      return 0;
    }
    if (!pidAlive(pid)) {
      show();
      // The log is the bubble's: keep it while a bubble of this name runs (another start's).
      const owner = readState(id);
      if (!owner || !ownerAlive(owner)) rmSync(logFile, { force: true });
      pruneStateRoot();
      return 1;
    }
    await Bun.sleep(100);
  }
  throw new PlanetError("BOOT_FAILED", `bubble not ready after ${timeout}s; see ${logFile}`);
}

export const stopCmd = defineCommand({
  meta: { name: "stop", description: "halt the bubble cleanly (forced after --timeout) and leave the host as it was" },
  args: { ...debugArg, ...bubbleArgs, timeout: { type: "string", description: "seconds before forcing", default: "60" } },
  async run({ args }) {
    const res = await stop(bubbleRootfs(args), Number(args.timeout));
    log.success(`stopped in ${res.seconds}s${res.forced ? " (forced)" : ""}`);
  },
});

export const execCmd = defineCommand({
  meta: { name: "exec", description: "run a command inside the bubble; its exit code becomes planet's" },
  args: {
    ...debugArg,
    ...bubbleArgs,
    tty: { type: "boolean", alias: "t", description: "allocate a pseudo-TTY" },
    interactive: { type: "boolean", alias: "i", description: "keep stdin open" },
    command: { type: "positional", description: "command and arguments", required: true },
  },
  async run({ args, rawArgs }) {
    process.exitCode = await execIn({
      rootfs: bubbleRootfs(args),
      command: commandAfterFlags(rawArgs),
      tty: !!args.tty,
      interactive: !!args.interactive,
    });
  },
});

export const enterCmd = defineCommand({
  meta: { name: "enter", description: "a shell (or command) inside the bubble, with a TTY when there is one" },
  args: { ...debugArg, ...bubbleArgs, command: { type: "positional", description: "default /bin/bash", required: false } },
  async run({ args, rawArgs }) {
    const command = commandAfterFlags(rawArgs);
    process.exitCode = await execIn({
      rootfs: bubbleRootfs(args),
      command: command.length ? command : ["/bin/bash"],
      tty: true,
      interactive: true,
    });
  },
});

/**
 * Everything from the first positional on is the command, flags included; a `--` before it ends
 * planet's own flags. A `--` after the first positional belongs to the command
 * (`planet exec kubectl create deployment x --image=y -- sleep 1`).
 */
export function commandAfterFlags(rawArgs: string[]): string[] {
  const withValue = new Set(["--rootfs", "--cluster-id", "--netns", "--data-dir"]);
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i] ?? "";
    if (a === "--") return rawArgs.slice(i + 1);
    if (withValue.has(a)) i++;
    else if (!a.startsWith("-")) return rawArgs.slice(i);
  }
  return [];
}
