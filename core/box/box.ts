import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statfsSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { isIP } from "node:net";
import { hostname as osHostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { filesOf, loadRecord } from "../../secrets/store.ts";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { type Manifest, readManifest } from "../manifest.ts";
import { type Cidr, firstIp, nthIp, overlaps, parseCidr, requireIp } from "../net.ts";
import { ROLES, type Role } from "../plugin.ts";
import { isSymlink, run } from "../proc.ts";
import { poll, readSysctl, sysctlPath } from "../util.ts";
import { cgroupMode, removeCgroupTree } from "./cgroups.ts";
import { expandEnv, formatEnvFile } from "./environment.ts";
import { canProbe, probeJoinIn } from "./join.ts";
import { listenNotify } from "./notify.ts";
import { preflightHost, preflightNetns, preflightRootfs } from "./preflight.ts";
import { bubbleSpec, type Volume } from "./spec.ts";
import {
  type BoxState,
  boxDir,
  detachLog,
  findByRootfs,
  HOST_SYSCTLS_FILE,
  listStates,
  pidAlive,
  pruneStateRoot,
  RUNC_ROOT,
  readState,
  runcStatus,
  STATE_ROOT,
  writeState,
} from "./state.ts";

const log = logger("box");

export interface StartOptions {
  rootfs: string;
  roles?: Role[];
  publicIp?: string;
  masterIp?: string;
  clusterId: string;
  secretsDir?: string;
  volumes: string[];
  env: Record<string, string>;
  serviceSubnet: string;
  podSubnet: string;
  /** Prefix length of each host's share of the pod subnet (flannel's SubnetLen), default 24. */
  podSubnetSize?: number;
  /** UDP port of the vxlan overlay, default 8472. */
  vxlanPort?: number;
  /** Plugins of the image left out of this start: their units masked, their checks not run. */
  disable?: string[];
  /** `domain/ip,…` answered by cluster DNS (`--dns-hosts`). */
  dnsHosts?: string;
  /** `zone/nameserver,…` forwarded by cluster DNS to their own servers (`--dns-zones`). */
  dnsZones?: string;
  nodeName?: string;
  hostname?: string;
  initialCluster?: string;
  kubeletOptions?: string;
  apiserverOptions?: string;
  netns?: string;
  /** Host folder for the data volumes (default /var/lib/planet/<cluster-id>). */
  dataDir?: string;
  /** Seconds to wait for READY=1. */
  readyTimeout: number;
  /** Seconds a node waits for a master to answer before it refuses to start (default 20). */
  joinWaitSeconds?: number;
}

/** Kernel settings that are not per network namespace, which components in a bubble may change. */
const HOST_SYSCTLS = [
  "kernel.panic",
  "kernel.panic_on_oops",
  "vm.overcommit_memory",
  "vm.panic_on_oom",
  "kernel.keys.root_maxkeys",
  "kernel.keys.root_maxbytes",
  "fs.inotify.max_user_watches",
  "fs.inotify.max_user_instances",
];
/** Per-netns settings, shared with the host only when the bubble uses the host network. */
const NET_SYSCTLS = ["net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet", "net.bridge.bridge-nf-call-iptables"];

/**
 * Records the host's sysctls before the first bubble changes them (the host network's own, also
 * when this bubble lives in a network namespace: another may not). Later bubbles keep that record.
 */
function snapshotSysctls(): void {
  if (existsSync(HOST_SYSCTLS_FILE)) return;
  const out: Record<string, string> = {};
  for (const name of [...HOST_SYSCTLS, ...NET_SYSCTLS]) {
    const value = readSysctl(name);
    if (value !== null) out[name] = value;
  }
  mkdirSync(dirname(HOST_SYSCTLS_FILE), { recursive: true });
  writeFileSync(`${HOST_SYSCTLS_FILE}.tmp`, `${JSON.stringify(out, null, 2)}\n`);
  renameSync(`${HOST_SYSCTLS_FILE}.tmp`, HOST_SYSCTLS_FILE);
}

/** Restores the host's sysctls once no other bubble runs: they belong to all of them until then. */
function restoreSysctlsIfLast(id: string): void {
  if (!existsSync(HOST_SYSCTLS_FILE)) return;
  const others = listStates().filter((s) => s.id !== id && pidAlive(s.pid));
  if (others.length) {
    log.debug(`host sysctls stay as they are: ${others.map((s) => s.id).join(", ")} still running`);
    return;
  }
  let saved: Record<string, string> = {};
  try {
    saved = JSON.parse(readFileSync(HOST_SYSCTLS_FILE, "utf8")) as Record<string, string>;
  } catch (e) {
    log.warn(`${HOST_SYSCTLS_FILE} does not parse (${(e as Error).message}): host sysctls not restored`);
  }
  restoreSysctls(saved);
  rmSync(HOST_SYSCTLS_FILE, { force: true });
}

function restoreSysctls(saved: Record<string, string>): void {
  for (const [name, value] of Object.entries(saved)) {
    try {
      if (readSysctl(name) !== value) {
        writeFileSync(sysctlPath(name), value);
        log.debug(`restored ${name}=${value}`);
      }
    } catch (e) {
      log.warn(`could not restore ${name}=${value}: ${(e as Error).message}`);
    }
  }
}

/** The bubble's name (runc id, cgroup, state dir): one per cluster on a host, one per test host. */
export function boxId(clusterId: string, netns?: string): string {
  return netns ? `planet-${clusterId}-${netns}` : `planet-${clusterId}`;
}

export interface Member {
  name: string;
  ip: string;
}

/**
 * The masters from `--initial-cluster name:ip,…`. A master must be in it under its node name and
 * public IP (etcd refuses a member missing from its initial cluster); without the flag a master is
 * alone and a node follows `--master-ip` (default: its own address, as in the original).
 */
export function initialCluster(
  text: string | undefined,
  roles: Role[],
  nodeName: string,
  publicIp: string,
  masterIp?: string,
): Member[] {
  const members: Member[] = [];
  for (const entry of (text ?? "")
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [name, ip, extra] = entry.split(":");
    if (!name || !ip || extra !== undefined || !/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/.test(name) || isIP(ip) !== 4)
      throw new PlanetError("BAD_FLAG", `--initial-cluster ${entry}: expected name:ip (e.g. master-1:10.0.0.1)`);
    if (members.some((m) => m.name === name || m.ip === ip))
      throw new PlanetError("BAD_FLAG", `--initial-cluster names ${name} or ${ip} twice`);
    members.push({ name, ip });
  }
  const master = roles.includes("master");
  if (!members.length) {
    if (master) return [{ name: nodeName, ip: publicIp }];
    // The original's default: --master-ip is the public IP (a node's join check then says no master answers).
    return [{ name: "master", ip: masterIp ?? publicIp }];
  }
  if (master) {
    const self = members.find((m) => m.name === nodeName);
    if (!self || self.ip !== publicIp)
      throw new PlanetError(
        "BAD_FLAG",
        `--initial-cluster ${text} does not include this master as ${nodeName}:${publicIp}; add it (every master lists all masters)`,
      );
  }
  return members;
}

/** Writes a file inside the rootfs atomically (temp + rename). */
function writeRootfsFile(rootfs: string, path: string, text: string): void {
  const dest = join(rootfs, path);
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = `${dest}.planet-tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, dest);
}

function parseVolume(spec: string): Volume {
  const [source, destination, opt, ...rest] = spec.split(":");
  if (!source || !destination?.startsWith("/") || rest.length > 0 || (opt && !["ro", "rw"].includes(opt)))
    throw new PlanetError("BAD_FLAG", `--volume ${spec}: expected /host/path:/path/in/bubble[:ro]`);
  if (!existsSync(source)) throw new PlanetError("BAD_VOLUME", `--volume ${spec}: ${source} does not exist on the host`);
  return { source: realpathSync(source), destination, readonly: opt === "ro" };
}

/** Stable UUID for systemd's machine-id (`container_uuid=`), from cluster and node. */
function stableUuid(seed: string): string {
  const h = createHash("sha256").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface Prepared {
  id: string;
  env: Record<string, string>;
  roles: Role[];
  manifest: Manifest;
  spec: ReturnType<typeof bubbleSpec>;
  netnsPath?: string;
  /** Host folders of the data volumes, created at start. */
  dataDirs: string[];
  /** The host's resolv.conf as the bubble sees it (loopback resolvers dropped in a network namespace). */
  resolvConf: string;
}

/** Validates flags and computes everything `start` writes, without writing anything. */
export function prepare(opts: StartOptions): Prepared {
  const image = readManifest(opts.rootfs);
  if (!image) throw new PlanetError("NOT_AN_IMAGE", `${opts.rootfs} has no manifest`, { phase: "preflight" });
  const manifest = image.manifest;
  const roles = opts.roles?.length ? opts.roles : manifest.roles;
  for (const r of roles) {
    if (!ROLES.includes(r)) throw new PlanetError("BAD_FLAG", `--role ${r}: expected master or node`);
    if (!manifest.roles.includes(r))
      throw new PlanetError("BAD_ROLE", `--role ${r}: image target ${manifest.target} is built for ${manifest.roles.join(",")}`);
  }
  if (!/^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$/.test(opts.clusterId))
    throw new PlanetError("BAD_FLAG", `--cluster-id ${opts.clusterId}: use lowercase letters, digits and dashes`);
  const netnsPath = opts.netns ? preflightNetns(opts.netns) : undefined;
  const publicIp = opts.publicIp ?? (opts.netns ? netnsAddress(opts.netns) : undefined);
  if (!publicIp) throw new PlanetError("BAD_FLAG", "--public-ip is not set (the node's address for cluster traffic)");
  requireIp(publicIp, "--public-ip");
  const hostname = opts.hostname ?? osHostname();
  const nodeName = opts.nodeName ?? hostname;
  const masters = initialCluster(opts.initialCluster, roles, nodeName, publicIp, opts.masterIp);
  // Where planet-master points until the agents' leader says otherwise: a master's own apiserver.
  const masterIp = requireIp(
    opts.masterIp ?? (roles.includes("master") ? publicIp : (masters[0]?.ip ?? publicIp)),
    "--master-ip",
  );
  const service = parseCidr(opts.serviceSubnet, "--service-subnet");
  const pod = parseCidr(opts.podSubnet, "--pod-subnet");
  if (overlaps(service, pod))
    throw new PlanetError("BAD_CIDR", `--service-subnet ${service.text} overlaps --pod-subnet ${pod.text}`);
  const subnetSize = opts.podSubnetSize ?? 24;
  if (!Number.isInteger(subnetSize) || subnetSize < pod.prefix + 1 || subnetSize > 28)
    throw new PlanetError(
      "BAD_FLAG",
      `--pod-subnet-size ${opts.podSubnetSize}: expected ${pod.prefix + 1}..28 (each host's share of --pod-subnet ${pod.text})`,
    );
  const vxlanPort = opts.vxlanPort ?? 8472;
  if (!Number.isInteger(vxlanPort) || vxlanPort < 1 || vxlanPort > 65535)
    throw new PlanetError("BAD_FLAG", `--vxlan-port ${opts.vxlanPort}: expected a UDP port 1..65535`);
  const disabled = (opts.disable ?? []).filter((d) => manifest.plugins.some((pl) => pl.name === d));
  const dnsHosts = parseDnsList(opts.dnsHosts, "--dns-hosts", "domain/ip");
  const dnsZones = parseDnsList(opts.dnsZones, "--dns-zones", "zone/nameserver");
  const resolvConf = hostResolvConf(opts.netns);
  for (const net of hostNetworks(opts.netns))
    if (overlaps(net, pod))
      throw new PlanetError(
        "BAD_CIDR",
        `--pod-subnet ${pod.text} overlaps the host's network ${net.text}; choose a pod subnet the host does not use`,
      );
  const id = boxId(opts.clusterId, opts.netns);

  const flags: Record<string, string> = {
    PLANET_ROLE: roles.join(","),
    PLANET_PUBLIC_IP: publicIp,
    KUBE_MASTER_IP: masterIp,
    KUBE_CLUSTER_ID: opts.clusterId,
    KUBE_SERVICE_SUBNET: service.text,
    KUBE_SERVICE_IP: firstIp(service),
    // Cluster DNS sits at the 10th address of the service subnet (the kubeadm and k3s convention).
    KUBE_DNS_IP: nthIp(service, 10),
    PLANET_DNS_HOSTS: dnsHosts,
    PLANET_DNS_ZONES: dnsZones,
    KUBE_POD_SUBNET: pod.text,
    KUBE_POD_SUBNET_SIZE: String(subnetSize),
    PLANET_VXLAN_PORT: String(vxlanPort),
    PLANET_DISABLE_FLANNEL: String(disabled.includes("flannel")),
    PLANET_DISABLED_PLUGINS: disabled.join(","),
    KUBE_NODE_NAME: nodeName,
    PLANET_HOSTNAME: hostname,
    // The masters: etcd's members, serf's seeds, the etcd endpoints of every client.
    PLANET_INITIAL_CLUSTER: masters.map((m) => `${m.name}:${m.ip}`).join(","),
    PLANET_ETCD_INITIAL_CLUSTER: masters.map((m) => `${m.name}=https://${m.ip}:2380`).join(","),
    PLANET_ETCD_ENDPOINTS: masters.map((m) => `https://${m.ip}:2379`).join(","),
  };
  const env = expandEnv({ ...manifest.env, ...flags, ...opts.env });
  // Options append to what plugins default to, like the original's KUBE_*_FLAGS.
  if (opts.kubeletOptions) env.KUBE_KUBELET_FLAGS = `${env.KUBE_KUBELET_FLAGS ?? ""} ${opts.kubeletOptions}`.trim();
  if (opts.apiserverOptions) env.KUBE_APISERVER_FLAGS = `${env.KUBE_APISERVER_FLAGS ?? ""} ${opts.apiserverOptions}`.trim();

  const dataDir = resolve(opts.dataDir ?? `/var/lib/planet/${id.replace(/^planet-/, "")}`);
  // The plugins' data volumes on this bubble's roles, and the core's own state volume.
  const declared = [
    ...(manifest.volumes ?? []).filter((v) => v.roles.some((r) => roles.includes(r)) && !disabled.includes(v.plugin)),
    { name: "state", path: "/ext/state" },
  ];
  const volumes: Volume[] = declared.map((v) => ({ source: join(dataDir, v.name), destination: v.path, readonly: false }));
  env.PLANET_VOLUMES = declared.map((v) => v.path).join(",");
  if (opts.secretsDir) {
    if (!existsSync(opts.secretsDir))
      throw new PlanetError(
        "NO_SECRETS",
        `--secrets-dir ${opts.secretsDir} does not exist (create it: planet secrets init --domain D ${opts.secretsDir})`,
      );
    volumes.push({ source: realpathSync(opts.secretsDir), destination: "/var/state", readonly: true });
  }
  for (const v of opts.volumes) {
    const vol = parseVolume(v);
    const i = volumes.findIndex((x) => x.destination === vol.destination);
    if (i >= 0) volumes[i] = vol;
    else volumes.push(vol);
  }
  const spec = bubbleSpec({
    rootfs: realpathSync(opts.rootfs),
    hostname,
    env: { container: "planet", container_uuid: stableUuid(`${opts.clusterId}/${nodeName}`) },
    cgroupsPath: `/${id}`,
    netns: netnsPath,
    volumes,
  });
  const dataDirs = volumes.filter((v) => v.source.startsWith(`${dataDir}/`)).map((v) => v.source);
  return { id, env, roles, manifest, spec, netnsPath, dataDirs, resolvConf };
}

/** The first IPv4 address of a network namespace (the test host's own address). */
function netnsAddress(name: string): string | undefined {
  const res = Bun.spawnSync(["ip", "-n", name, "-4", "-o", "addr", "show", "scope", "global"]);
  return /inet (\d+\.\d+\.\d+\.\d+)/.exec(res.stdout.toString())?.[1];
}

/** `a/b,c/d` of `--dns-hosts`/`--dns-zones`: names and addresses checked, normalised. */
export function parseDnsList(text: string | undefined, flag: string, shape: string): string {
  if (!text) return "";
  const name = /^(?=.{1,253}$)([a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?\.)*[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?\.?$/i;
  return text
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean)
    .map((entry) => {
      const [left, right, extra] = entry.split("/");
      const [host, port] = (right ?? "").split(":");
      if (
        extra !== undefined ||
        !left ||
        !right ||
        !name.test(left) ||
        isIP(host ?? "") !== 4 ||
        (port !== undefined && !/^\d{1,5}$/.test(port))
      )
        throw new PlanetError(
          "BAD_FLAG",
          `${flag} ${entry}: expected ${shape} (e.g. ${flag === "--dns-hosts" ? "registry.example/10.0.0.5" : "corp.example/10.0.0.53"})`,
        );
      return `${left.toLowerCase().replace(/\.$/, "")}/${right}`;
    })
    .join(",");
}

/**
 * The resolv.conf the bubble's resolvers come from: `ip netns exec`'s convention for a network
 * namespace (/etc/netns/<name>/resolv.conf), else the host's. In a namespace, loopback nameservers
 * are the namespace's own and answer nothing: they are dropped.
 */
function hostResolvConf(netns?: string): string {
  const own = netns ? `/etc/netns/${netns}/resolv.conf` : "";
  const path = own && existsSync(own) ? own : "/etc/resolv.conf";
  const text = existsSync(path) ? readFileSync(path, "utf8") : "";
  return text
    .split("\n")
    .filter((l) => !(netns && /^\s*nameserver\s+(127\.|::1)/.test(l)))
    .join("\n");
}

/** IPv4 networks on the host's (or the namespace's) interfaces, loopback aside. */
function hostNetworks(netns?: string): Cidr[] {
  const res = Bun.spawnSync(["ip", ...(netns ? ["-n", netns] : []), "-4", "-o", "addr", "show"]);
  if (res.exitCode !== 0) return [];
  return res.stdout
    .toString()
    .split("\n")
    .map((l) => /\sinet\s+(\d+\.\d+\.\d+\.\d+\/\d+)/.exec(l)?.[1])
    .filter((c): c is string => !!c && !c.startsWith("127."))
    .flatMap((c) => {
      try {
        return [parseCidr(c.replace(/\/(31|32)$/, "/30"), "address")];
      } catch {
        return [];
      }
    });
}

/** Writes the files `start` owns inside the rootfs: environment, hostname, hosts, role target. */
function writeRootfs(rootfs: string, p: Prepared): void {
  // The host's resolvers: the bubble's own until a DNS plugin takes over, and its upstreams.
  writeRootfsFile(rootfs, "etc/planet/host-resolv.conf", p.resolvConf);
  writeRootfsFile(rootfs, "etc/resolv.conf", p.resolvConf);
  writeRootfsFile(rootfs, "etc/container-environment", formatEnvFile(p.env));
  writeRootfsFile(rootfs, "etc/hostname", `${p.spec.hostname}\n`);
  const hosts = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    `${p.env.PLANET_PUBLIC_IP}\t${p.spec.hostname}${p.env.KUBE_NODE_NAME !== p.spec.hostname ? ` ${p.env.KUBE_NODE_NAME}` : ""}`,
    `${p.env.KUBE_MASTER_IP}\tplanet-master`,
  ];
  writeRootfsFile(rootfs, "etc/hosts", `${hosts.join("\n")}\n`);
  // Units of plugins left out of this start are masked where systemd looks first; last start's go.
  const control = join(rootfs, "etc/systemd/system.control");
  mkdirSync(control, { recursive: true });
  for (const f of readdirSync(control))
    if (isSymlink(join(control, f)) && readlinkSync(join(control, f)) === "/dev/null") unlinkSync(join(control, f));
  for (const u of disabledUnits(p)) symlinkSync("/dev/null", join(control, u));
  const wants = join(rootfs, "etc/systemd/system/multi-user.target.wants");
  mkdirSync(wants, { recursive: true });
  for (const role of ROLES) {
    const link = join(wants, `planet-${role}.target`);
    if (existsSync(link) || isSymlink(link)) unlinkSync(link);
    if (p.roles.includes(role)) symlinkSync(`../planet-${role}.target`, link);
  }
}

/** Units owned by the plugins `--disable-*` left out. */
function disabledUnits(p: Prepared): string[] {
  const off = (p.env.PLANET_DISABLED_PLUGINS ?? "").split(",").filter(Boolean);
  return Object.entries(p.manifest.unitOwners)
    .filter(([, owner]) => off.includes(owner))
    .map(([u]) => u);
}

/** Removes everything a bubble left on the host: runc state, cgroups, state dir; restores sysctls. */
export async function cleanup(id: string, state: BoxState | null): Promise<void> {
  const rs = await runcStatus(id);
  if (rs) {
    if (rs.status === "running" || rs.status === "paused") await run(["runc", "--root", RUNC_ROOT, "kill", id, "KILL"]);
    for (let i = 0; i < 50; i++) {
      const res = await run(["runc", "--root", RUNC_ROOT, "delete", "--force", id]);
      if (res.exitCode === 0 || !(await runcStatus(id))) break;
      await Bun.sleep(100);
    }
  }
  removeCgroups(id);
  // A start killed with -9 may leave its READY=1 listener behind.
  if (state?.notifyPid && pidAlive(state.notifyPid) && /socat/.test(readComm(state.notifyPid)))
    process.kill(state.notifyPid, "SIGKILL");
  restoreSysctlsIfLast(id);
  rmSync(boxDir(id), { recursive: true, force: true });
  pruneStateRoot();
}

function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8");
  } catch {
    return "";
  }
}

/** runc deletes the bubble's cgroups; this catches any a crash left behind (deepest first). */
function removeCgroups(id: string): void {
  for (const d of removeCgroupTree(id, cgroupMode())) log.warn(`cgroup ${d} not removed (processes left in it?)`);
}

/** Everything the image's plugins need from the host, checked before anything is written. */
async function preflightImage(p: Prepared, opts: StartOptions): Promise<void> {
  const active = (roles: Role[]) => roles.some((r) => p.roles.includes(r));
  const certs = p.manifest.certs.filter((c) => {
    const plugin = p.manifest.plugins.find((x) => x.name === c.plugin);
    return !plugin || active(plugin.roles);
  });
  if (certs.length && !opts.secretsDir)
    throw new PlanetError(
      "NO_SECRETS",
      `this image's plugins request ${certs.length} certificates: issue them with planet secrets init --domain D <dir> and pass --secrets-dir <dir>`,
      { phase: "preflight" },
    );
  if (opts.secretsDir) {
    const record = loadRecord(opts.secretsDir);
    const env = p.env;
    if (record?.host && record.nodeName !== env.KUBE_NODE_NAME)
      throw new PlanetError(
        "SECRETS_OTHER_HOST",
        `${opts.secretsDir} holds the secrets of host ${record.nodeName}, not --node-name ${env.KUBE_NODE_NAME}; issue this host's: planet secrets host <cluster-dir> <dir> --node-name ${env.KUBE_NODE_NAME} --ip ${env.PLANET_PUBLIC_IP} --role ${p.roles.join(",")}`,
        { phase: "preflight" },
      );
    if (record?.host && !record.ips.includes(env.PLANET_PUBLIC_IP as string))
      throw new PlanetError(
        "SECRETS_OTHER_HOST",
        `${opts.secretsDir} was issued for ${record.ips.join(", ")}, not --public-ip ${env.PLANET_PUBLIC_IP}; reissue it: planet secrets host <cluster-dir> ${opts.secretsDir} --node-name ${record.nodeName} --ip ${env.PLANET_PUBLIC_IP} --role ${p.roles.join(",")}`,
        { phase: "preflight" },
      );
    for (const c of certs)
      for (const f of filesOf(c, record?.host ? p.roles : undefined))
        if (!existsSync(join(opts.secretsDir, f)))
          throw new PlanetError(
            "MISSING_SECRET",
            `${join(opts.secretsDir, f)} is missing (requested by plugin ${c.plugin}); add it with: planet secrets init --domain D ${opts.secretsDir}`,
            { phase: "preflight" },
          );
    const wanted = parseCidr(opts.serviceSubnet, "--service-subnet").text;
    if (record && record.serviceSubnet !== wanted)
      throw new PlanetError(
        "SUBNET_MISMATCH",
        `the certificates in ${opts.secretsDir} were issued for service subnet ${record.serviceSubnet} (service IP ${record.serviceIp}), not --service-subnet ${wanted}; reissue: planet secrets init --service-subnet ${wanted} --force …`,
        { phase: "preflight" },
      );
  }
  for (const { port, plugin, roles } of p.manifest.ports ?? []) {
    if (!active(roles)) continue;
    const ss = ["ss", "-Htlnp", `sport = :${port}`];
    const res = await run(opts.netns ? ["ip", "netns", "exec", opts.netns, ...ss] : ss);
    const line = res.stdout.trim();
    if (line) {
      const who = /users:\(\("([^"]+)",pid=(\d+)/.exec(line);
      throw new PlanetError(
        "PORT_IN_USE",
        `port ${port} (plugin ${plugin}) is taken by ${who ? `${who[1]} (pid ${who[2]})` : "another process"} in ${opts.netns ? `network namespace ${opts.netns}` : "the host network"}`,
        { phase: "preflight" },
      );
    }
  }
  // A node joins a running cluster: ask a master before anything is written.
  const kubelet = certs.some((c) => c.name === "kubelet");
  if (!p.roles.includes("master") && kubelet && opts.secretsDir && canProbe(opts.secretsDir)) {
    const masters = (p.env.PLANET_INITIAL_CLUSTER ?? "").split(",").map((m) => m.split(":")[1] ?? "");
    const first = p.env.KUBE_MASTER_IP as string;
    const via = await probeJoinIn(opts.netns, {
      masters: [first, ...masters.filter((m) => m && m !== first)],
      port: Number(p.env.KUBE_APISERVER_PORT ?? 6443),
      secretsDir: realpathSync(opts.secretsDir),
      nodeName: p.env.KUBE_NODE_NAME as string,
      publicIp: p.env.PLANET_PUBLIC_IP as string,
      waitSeconds: opts.joinWaitSeconds ?? 20,
    });
    log.info(`joining the cluster through master ${via}`);
  }
  for (const dir of p.dataDirs) {
    let probe = dir;
    while (!existsSync(probe)) probe = dirname(probe);
    if (statfsSync(probe).type === OVERLAYFS_MAGIC)
      throw new PlanetError(
        "BAD_VOLUME",
        `data volume ${dir} is on overlayfs, which cannot hold the bubble's own overlay mounts; use --data-dir on a plain filesystem (ext4, xfs)`,
        { phase: "preflight" },
      );
  }
}

const OVERLAYFS_MAGIC = 0x794c7630;

/** Refuses a second bubble for the same cluster or rootfs; cleans up after a crashed one. */
async function claim(id: string, rootfs: string): Promise<void> {
  const other = findByRootfs(rootfs);
  if (other && other.id !== id && pidAlive(other.pid))
    throw new PlanetError(
      "ALREADY_RUNNING",
      `${rootfs} already runs as bubble ${other.id} (planet start pid ${other.pid}); stop it first: planet stop`,
    );
  const state = readState(id);
  const rs = await runcStatus(id);
  if (state && pidAlive(state.pid) && state.pid !== process.pid)
    throw new PlanetError(
      "ALREADY_RUNNING",
      `bubble ${id} is already running (planet start pid ${state.pid}, phase ${state.phase}); stop it first: planet stop`,
    );
  if (state || rs) {
    log.warn(`bubble ${id}: cleaning up after a planet start that died (pid ${state?.pid ?? "unknown"})`);
    await cleanup(id, state);
  }
}

/** True once `cond` holds, false after `timeoutMs`. */
async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  return (await poll(cond, timeoutMs, stepMs)).value === true;
}

/** `systemctl is-active` of the role's units, printed like the original's `[OK] unit`. */
async function reportUnits(id: string, p: Prepared): Promise<string[]> {
  const off = disabledUnits(p);
  const units = [...new Set(p.roles.flatMap((r) => p.manifest.units[r]))].filter(
    (u) => !u.endsWith(".timer") && !off.includes(u),
  );
  if (units.length === 0) return [];
  const res = await run(["runc", "--root", RUNC_ROOT, "exec", id, "systemctl", "is-active", ...units]);
  const states = res.stdout.trim().split("\n");
  const failed: string[] = [];
  units.forEach((u, i) => {
    const st = states[i] ?? "unknown";
    const owner = p.manifest.unitOwners[u] ?? "?";
    if (st === "active" || st === "activating") log.info(`[OK] ${u} (${owner}) ${st}`);
    else {
      failed.push(u);
      log.warn(`[${st.toUpperCase()}] ${u} (${owner})`);
    }
  });
  return failed;
}

/**
 * Boots the bubble and stays in the foreground until it halts, like the original: SIGINT/SIGTERM
 * become a clean halt (SIGRTMIN+3 to systemd). Returns the exit code for the CLI.
 */
export async function start(opts: StartOptions): Promise<number> {
  preflightHost();
  preflightRootfs(opts.rootfs);
  const rootfs = realpathSync(opts.rootfs);
  const p = prepare({ ...opts, rootfs });
  try {
    await claim(p.id, rootfs);
    await preflightImage(p, opts);
  } catch (e) {
    pruneStateRoot(); // `runc state` creates its root; a refused start leaves nothing behind
    throw e;
  }
  const dir = boxDir(p.id);
  // The state dir is the lock: of two starts racing past claim(), one creates it, the other stops.
  mkdirSync(STATE_ROOT, { recursive: true });
  try {
    mkdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    throw new PlanetError("ALREADY_RUNNING", `another planet start of bubble ${p.id} is under way; stop it first: planet stop`);
  }
  const state: BoxState = {
    id: p.id,
    rootfs,
    clusterId: opts.clusterId,
    pid: process.pid,
    phase: "booting",
    startedAt: new Date().toISOString(),
    netns: opts.netns,
  };
  writeState(state);
  // Another cluster id on the same rootfs, claimed at the same moment: the later one steps back.
  const first = (o: BoxState) => o.startedAt < state.startedAt || (o.startedAt === state.startedAt && o.id < p.id);
  const twin = listStates().find((o) => o.rootfs === rootfs && o.id !== p.id && pidAlive(o.pid) && first(o));
  if (twin) {
    rmSync(dir, { recursive: true, force: true });
    pruneStateRoot();
    throw new PlanetError(
      "ALREADY_RUNNING",
      `${rootfs} is being started as bubble ${twin.id} (pid ${twin.pid}); stop it first: planet stop`,
    );
  }
  snapshotSysctls();
  let runc: ChildProcess | undefined;
  let notify: ChildProcess | undefined;
  try {
    for (const d of p.dataDirs) mkdirSync(d, { recursive: true });
    writeRootfs(rootfs, p);
    writeFileSync(join(dir, "config.json"), `${JSON.stringify(p.spec, null, 2)}\n`);

    let ready = false;
    let status = "";
    const sock = join(dir, "notify.sock");
    notify = listenNotify(sock, (f) => {
      if (f.STATUS && f.STATUS !== status) {
        status = f.STATUS;
        log.debug(`systemd: ${status}`);
      }
      if (f.READY === "1") ready = true;
    });
    if (!(await waitFor(() => existsSync(sock), 5000)))
      throw new PlanetError("NOTIFY_SOCKET", `socat did not create ${sock}`, { phase: "start" });
    state.notifyPid = notify.pid;
    writeState(state);

    const t0 = performance.now();
    log.start(`booting ${p.id}: ${rootfs} as ${p.roles.join("+")}${opts.netns ? ` in network namespace ${opts.netns}` : ""}`);
    const console = openSync(join(dir, "console.log"), "a");
    mkdirSync(RUNC_ROOT, { recursive: true });
    runc = spawn("runc", ["--root", RUNC_ROOT, "run", "--bundle", dir, p.id], {
      detached: true, // its own session: a terminal's Ctrl-C reaches planet, which halts systemd cleanly
      stdio: ["ignore", console, console],
      env: { ...process.env, NOTIFY_SOCKET: sock },
    });
    let exited: number | null = null;
    const exitedP = new Promise<number>((resolve) =>
      runc?.on("exit", (code, signal) => {
        exited = code ?? (signal ? 128 : 1);
        resolve(exited);
      }),
    );

    let stopping = false;
    const halt = async (why: string) => {
      if (stopping) {
        log.warn(`${why} again: forcing the bubble down`);
        await run(["runc", "--root", RUNC_ROOT, "kill", p.id, "KILL"]);
        return;
      }
      stopping = true;
      state.phase = "stopping";
      writeState(state);
      log.info(`${why}: halting ${p.id}`);
      await run(["runc", "--root", RUNC_ROOT, "kill", p.id, "37"]); // SIGRTMIN+3 = halt
    };
    const onSignal = (sig: string) => void halt(sig);
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("SIGHUP", () => {});

    const booted = await waitFor(() => ready || exited !== null, opts.readyTimeout * 1000, 10);
    if (exited !== null || !booted) {
      const tail = readFileSync(join(dir, "console.log"), "utf8").trim().split("\n").slice(-3).join(" / ");
      if (!booted) await halt("boot timeout");
      throw new PlanetError(
        "BOOT_FAILED",
        exited !== null
          ? `runc exited ${exited} before systemd was ready: ${tail}`
          : `systemd not ready after ${opts.readyTimeout}s`,
        { phase: "start" },
      );
    }
    const bootSeconds = Math.round(performance.now() - t0) / 1000;
    const failed = await reportUnits(p.id, p);
    // Logged before the state says ready: `start --detach` returns as soon as it reads that.
    log.success(`${p.id} ready in ${bootSeconds}s${failed.length ? ` (${failed.length} units not active)` : ""}`);
    state.phase = "ready";
    state.readyAt = new Date().toISOString();
    state.bootSeconds = bootSeconds;
    if (failed.length) state.error = `units not active: ${failed.join(", ")}`;
    writeState(state);

    const code = await exitedP;
    log.info(`${p.id} halted (runc exit ${code})`);
    return stopping ? 0 : code === 0 ? 0 : 1;
  } catch (err) {
    state.phase = "failed";
    state.error = err instanceof Error ? err.message : String(err);
    throw err;
  } finally {
    if (runc && runc.exitCode === null) await run(["runc", "--root", RUNC_ROOT, "kill", p.id, "KILL"]);
    notify?.kill();
    await cleanup(p.id, state);
  }
}

/** Finds the bubble booted from `rootfs`. */
export function findBubble(rootfs: string): BoxState {
  const real = existsSync(rootfs) ? realpathSync(rootfs) : rootfs;
  const state = findByRootfs(real);
  if (!state) throw new PlanetError("NOT_RUNNING", `no bubble runs from ${real} (start it: planet start)`);
  return state;
}

/**
 * Halts the bubble: SIGRTMIN+3 to systemd, waits for `planet start` to finish its cleanup, and
 * forces it down after `timeoutSec`. Afterwards the host holds nothing of the bubble.
 */
export async function stop(rootfs: string, timeoutSec: number): Promise<{ forced: boolean; seconds: number }> {
  const t0 = performance.now();
  const state = findBubble(rootfs);
  const id = state.id;
  let forced = false;
  if (pidAlive(state.pid)) {
    await run(["runc", "--root", RUNC_ROOT, "kill", id, "37"]);
    const done = await waitFor(() => !pidAlive(state.pid), timeoutSec * 1000, 50);
    if (!done) {
      forced = true;
      log.warn(`${id} did not halt within ${timeoutSec}s: killing it`);
      await run(["runc", "--root", RUNC_ROOT, "kill", id, "KILL"]);
      if (!(await waitFor(() => !pidAlive(state.pid), 10_000, 50))) {
        process.kill(state.pid, "SIGKILL");
        await cleanup(id, state);
      }
    }
  } else {
    // planet start is gone (crashed or killed): clean up in its place.
    await cleanup(id, state);
  }
  rmSync(detachLog(id), { force: true });
  pruneStateRoot();
  return { forced, seconds: Math.round(performance.now() - t0) / 1000 };
}
