/**
 * What a start checks before it writes anything: the host (root, tools, cgroups, overlayfs), the
 * rootfs, the network namespace, and what the image's plugins need (secrets, ports, volumes).
 */
import { existsSync, readFileSync, realpathSync, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { filesOf, loadRecord } from "../../secrets/record.ts";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { certsFor, MANIFEST_PATH } from "../manifest.ts";
import { parseCidr } from "../net.ts";
import { have, run } from "../proc.ts";
import { availableControllers, cgroupMode } from "./cgroups.ts";
import { canProbe, probeJoinIn } from "./join.ts";
import type { Prepared, StartOptions } from "./prepare.ts";

const phase = "preflight";
const log = logger("bubble");

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new PlanetError("NOT_ROOT", `planet ${what} must run as root`, { phase });
}

/** Host features a bubble needs; each missing one is one clear line. */
export function preflightHost(): void {
  requireRoot("start");
  if (!have("runc")) throw new PlanetError("MISSING_TOOL", "runc is not installed (apt-get install runc)", { phase });
  if (!have("socat")) throw new PlanetError("MISSING_TOOL", "socat is not installed (apt-get install socat)", { phase });
  if (!have("setpriv")) throw new PlanetError("MISSING_TOOL", "setpriv is not installed (apt-get install util-linux)", { phase });
  const mode = cgroupMode();
  const controllers = availableControllers(mode);
  // cgroup v2 has no devices controller: runc confines devices with eBPF there.
  for (const ctrl of mode === "v2" ? ["cpu", "memory", "pids"] : ["cpu", "memory", "devices", "pids"])
    if (!controllers.includes(ctrl))
      throw new PlanetError("KERNEL_FEATURE", `cgroup controller ${ctrl} is not enabled on this host (cgroup ${mode})`, {
        phase,
      });
  if (!existsSync("/sys/fs/cgroup") || !existsSync("/proc/self/ns/cgroup"))
    throw new PlanetError("KERNEL_FEATURE", "cgroups or cgroup namespaces are not available (/proc/self/ns/cgroup)", { phase });
  if (!/\toverlay$/m.test(readFileSync("/proc/filesystems", "utf8")))
    throw new PlanetError("KERNEL_FEATURE", "the kernel has no overlay filesystem (modprobe overlay)", { phase });
}

/** The rootfs must be a built planet image: systemd and a manifest. */
export function preflightRootfs(rootfs: string): void {
  if (!existsSync(rootfs)) throw new PlanetError("NO_ROOTFS", `rootfs ${rootfs} does not exist (build it: make dev)`, { phase });
  if (!existsSync(join(rootfs, MANIFEST_PATH)) || !existsSync(join(rootfs, "sbin/init")))
    throw new PlanetError("NOT_AN_IMAGE", `${rootfs} is not a planet image (no ${MANIFEST_PATH} or /sbin/init)`, { phase });
}

export function preflightNetns(name: string): string {
  const path = name.startsWith("/") ? name : `/run/netns/${name}`;
  if (!existsSync(path))
    throw new PlanetError("NO_NETNS", `network namespace ${name} does not exist (create it: planet dev-host up ${name})`, {
      phase,
    });
  return path;
}

/** Everything the image's plugins need from the host, checked before anything is written. */
export async function preflightImage(p: Prepared, opts: StartOptions): Promise<void> {
  const certs = certsFor(p.manifest, p.roles);
  if (certs.length && !opts.secretsDir)
    throw new PlanetError(
      "NO_SECRETS",
      `this image's plugins request ${certs.length} certificates: issue them with planet secrets init --domain D <dir> and pass --secrets-dir <dir>`,
      { phase: "preflight" },
    );
  if (opts.secretsDir) {
    const record = loadRecord(opts.secretsDir);
    if (record?.host && record.nodeName !== p.nodeName)
      throw new PlanetError(
        "SECRETS_OTHER_HOST",
        `${opts.secretsDir} holds the secrets of host ${record.nodeName}, not --node-name ${p.nodeName}; issue this host's: planet secrets host <cluster-dir> <dir> --node-name ${p.nodeName} --ip ${p.publicIp} --role ${p.roles.join(",")}`,
        { phase: "preflight" },
      );
    if (record?.host && !record.ips.includes(p.publicIp))
      throw new PlanetError(
        "SECRETS_OTHER_HOST",
        `${opts.secretsDir} was issued for ${record.ips.join(", ")}, not --public-ip ${p.publicIp}; reissue it: planet secrets host <cluster-dir> ${opts.secretsDir} --node-name ${record.nodeName} --ip ${p.publicIp} --role ${p.roles.join(",")}`,
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
    if (!roles.some((r) => p.roles.includes(r))) continue;
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
    const masters = p.masters.map((m) => m.ip);
    const first = p.masterIp;
    const via = await probeJoinIn(opts.netns, {
      masters: [first, ...masters.filter((m) => m && m !== first)],
      port: Number(p.env.KUBE_APISERVER_PORT ?? 6443),
      secretsDir: realpathSync(opts.secretsDir),
      nodeName: p.nodeName,
      publicIp: p.publicIp,
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
