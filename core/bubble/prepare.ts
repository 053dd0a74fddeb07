/**
 * Everything `planet start` decides before it writes anything — flags checked, environment, volumes,
 * the OCI spec — and the files it then writes into the rootfs.
 */

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, symlinkSync, unlinkSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { loadRecord } from "../../secrets/record.ts";
import type { JoinToken } from "../../secrets/token.ts";
import { expandEnv, formatEnvFile } from "../environment.ts";
import { PlanetError } from "../errors.ts";
import { type Manifest, readManifest } from "../manifest.ts";
import { type Cidr, firstIp, nthIp, overlaps, parseCidr, requireIp } from "../net.ts";
import { ROLES, type Role } from "../plugin.ts";
import { isSymlink } from "../proc.ts";
import { writeDurably } from "../util.ts";
import { initialCluster, type Member, parseDnsList, parseVolume } from "./flags.ts";
import { preflightNetns } from "./preflight.ts";
import { bubbleSpec, type Volume } from "./spec.ts";
import { bubbleDir } from "./state.ts";

export interface StartOptions {
  rootfs: string;
  roles?: Role[];
  publicIp?: string;
  masterIp?: string;
  /** `--join <master> --token <t>`: a fresh host gets its secrets from the masters (secrets/join.ts). */
  join?: { master: string; token: JoinToken };
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
  /** The command line's flags, less --rootfs and --detach, kept in the bubble's state. */
  args?: string[];
}

/** The bubble's name (runc id, cgroup, state dir): one per cluster on a host, one per test host. */
export function bubbleId(clusterId: string, netns?: string): string {
  return netns ? `planet-${clusterId}-${netns}` : `planet-${clusterId}`;
}

/**
 * `--disable <plugin>`: a plugin of the image, and none that another plugin left in requires (its
 * units would start without it). Returns the names.
 */
function checkDisabled(manifest: Manifest, roles: Role[], disable: string[]): string[] {
  const names = manifest.plugins.map((p) => p.name);
  for (const d of disable) {
    if (!names.includes(d))
      throw new PlanetError(
        "UNKNOWN_PLUGIN",
        `--disable ${d}: image target ${manifest.target} has no plugin ${d} (it has ${names.join(", ")})`,
      );
    const needs = manifest.plugins.find(
      (p) => !disable.includes(p.name) && p.requires.includes(d) && p.roles.some((r) => roles.includes(r)),
    );
    if (needs)
      throw new PlanetError(
        "BAD_FLAG",
        `--disable ${d}: plugin ${needs.name} requires it (disable ${needs.name} too, or keep ${d})`,
      );
  }
  return [...new Set(disable)];
}

/** The masters a join learned (`name:ip,…`), kept in the host's secrets record; undefined without. */
function mastersFromJoin(secretsDir: string | undefined): string | undefined {
  if (!secretsDir || !existsSync(secretsDir)) return undefined;
  const masters = loadRecord(secretsDir)?.host?.masters;
  return masters?.length ? masters.join(",") : undefined;
}

/** Writes a file inside the rootfs whole or not at all (a handful, once a start: the fsyncs cost little). */
function writeRootfsFile(rootfs: string, path: string, text: string): void {
  const dest = join(rootfs, path);
  mkdirSync(dirname(dest), { recursive: true });
  writeDurably(dest, text);
}

/** Stable UUID for systemd's machine-id (`container_uuid=`), from cluster and node. */
function stableUuid(seed: string): string {
  const h = createHash("sha256").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface Prepared {
  id: string;
  env: Record<string, string>;
  roles: Role[];
  manifest: Manifest;
  spec: ReturnType<typeof bubbleSpec>;
  netnsPath?: string;
  /** Host folder of the data volumes, and the volumes' folders, created at start. */
  dataDir: string;
  dataDirs: string[];
  /** The host's resolv.conf as the bubble sees it (loopback resolvers dropped in a network namespace). */
  resolvConf: string;
  /** The typed values the environment was made from: what the start's own steps use. */
  publicIp: string;
  nodeName: string;
  /** The masters (`--initial-cluster`, a join's record, or `--master-ip`), and the one to ask first. */
  masters: Member[];
  masterIp: string;
  /** Plugins of the image left out of this start. */
  disabled: string[];
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
  // Without --initial-cluster, a host that joined with a token knows the masters from its join.
  const joinedMasters = opts.initialCluster ? undefined : mastersFromJoin(opts.secretsDir);
  const masters = initialCluster(opts.initialCluster ?? joinedMasters, roles, nodeName, publicIp, opts.masterIp);
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
  const disabled = checkDisabled(manifest, roles, opts.disable ?? []);
  const dnsHosts = parseDnsList(opts.dnsHosts, "--dns-hosts", "domain/ip");
  const dnsZones = parseDnsList(opts.dnsZones, "--dns-zones", "zone/nameserver");
  const resolvConf = hostResolvConf(opts.netns);
  // Links a plugin's units make themselves (PLANET_OWN_LINKS_<plugin>: the overlay's, the pod bridge)
  // are a killed bubble's leftovers, not the host's networks: its units clean them at boot.
  const own = Object.entries(manifest.env)
    .filter(([k]) => k.startsWith("PLANET_OWN_LINKS_"))
    .flatMap(([, v]) => v.split(",").filter(Boolean));
  for (const net of hostNetworks(opts.netns, own))
    if (overlaps(net, pod))
      throw new PlanetError(
        "BAD_CIDR",
        `--pod-subnet ${pod.text} overlaps the host's network ${net.text}; choose a pod subnet the host does not use`,
      );
  const id = bubbleId(opts.clusterId, opts.netns);

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
    // `existing` for a master that joined a running cluster (etcd took it in as a learner), else `new`.
    PLANET_CLUSTER_STATE: joinedMasters && roles.includes("master") ? "existing" : "new",
  };
  // A plugin left out takes its defaults along (e.g. planet-master on a load balancer that is not there).
  const defaults = Object.fromEntries(
    Object.entries(manifest.env).filter(([k]) => !disabled.includes(manifest.envOwners?.[k] ?? "")),
  );
  const env = expandEnv({ ...defaults, ...flags, ...opts.env });
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
    // With --join the folder is made by the join, before the bubble starts.
    if (!existsSync(opts.secretsDir) && !opts.join)
      throw new PlanetError(
        "NO_SECRETS",
        `--secrets-dir ${opts.secretsDir} does not exist (create it: planet secrets init --domain D ${opts.secretsDir})`,
      );
    const source = existsSync(opts.secretsDir) ? realpathSync(opts.secretsDir) : resolve(opts.secretsDir);
    volumes.push({ source, destination: "/var/state", readonly: true });
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
    notifyDir: join(bubbleDir(id), "notify"),
  });
  const dataDirs = volumes.filter((v) => v.source.startsWith(`${dataDir}/`)).map((v) => v.source);
  return {
    id,
    env,
    roles,
    manifest,
    spec,
    netnsPath,
    dataDir,
    dataDirs,
    resolvConf,
    publicIp,
    nodeName,
    masters,
    masterIp,
    disabled,
  };
}

/** The first IPv4 address of a network namespace (the test host's own address). */
function netnsAddress(name: string): string | undefined {
  const res = Bun.spawnSync(["ip", "-n", name, "-4", "-o", "addr", "show", "scope", "global"]);
  return /inet (\d+\.\d+\.\d+\.\d+)/.exec(res.stdout.toString())?.[1];
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
function hostNetworks(netns: string | undefined, ownLinks: string[]): Cidr[] {
  const res = Bun.spawnSync(["ip", ...(netns ? ["-n", netns] : []), "-4", "-o", "addr", "show"]);
  if (res.exitCode !== 0) return [];
  return (
    res.stdout
      .toString()
      .split("\n")
      // `2: eth0    inet 10.0.0.5/24 …`: the link's name is the second field.
      .filter((l) => !ownLinks.includes(l.split(/\s+/)[1] ?? ""))
      .map((l) => /\sinet\s+(\d+\.\d+\.\d+\.\d+\/\d+)/.exec(l)?.[1])
      .filter((c): c is string => !!c && !c.startsWith("127."))
      .flatMap((c) => {
        try {
          return [parseCidr(c.replace(/\/(31|32)$/, "/30"), "address")];
        } catch {
          return [];
        }
      })
  );
}

/** Writes the files `start` owns inside the rootfs: environment, hostname, hosts, role target. */
export function writeRootfs(rootfs: string, p: Prepared): void {
  // The host's resolvers: the bubble's own until a DNS plugin takes over, and its upstreams.
  writeRootfsFile(rootfs, "etc/planet/host-resolv.conf", p.resolvConf);
  writeRootfsFile(rootfs, "etc/resolv.conf", p.resolvConf);
  writeRootfsFile(rootfs, "etc/container-environment", formatEnvFile(p.env));
  writeRootfsFile(rootfs, "etc/hostname", `${p.spec.hostname}\n`);
  const hosts = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    `${p.publicIp}\t${p.spec.hostname}${p.nodeName !== p.spec.hostname ? ` ${p.nodeName}` : ""}`,
    // A node-local load balancer in front of every master (a plugin's PLANET_MASTER_LB), else a master.
    `${p.env.PLANET_MASTER_LB || p.masterIp}\tplanet-master`,
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
export function disabledUnits(p: Prepared): string[] {
  const off = p.disabled;
  return Object.entries(p.manifest.unitOwners)
    .filter(([, owner]) => off.includes(owner))
    .map(([u]) => u);
}
