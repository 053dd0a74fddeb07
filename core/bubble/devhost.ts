import { existsSync, readdirSync, realpathSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { PlanetError } from "../errors.ts";
import { requireIp } from "../net.ts";
import { run, runOk } from "../proc.ts";
import { requireRoot } from "./preflight.ts";

/**
 * A "test host": a network namespace with a veth pair to the host, its own address, and no route
 * beyond the host end (which does not forward). Bubbles join it with `planet start --netns`, so an
 * apiserver can advertise a real, non-loopback address without touching the host's interfaces.
 * Test hosts given the same `bridge` share one L2 segment (a Linux bridge holding the host end,
 * .254 of the /24), so bubbles in them reach each other exactly as on separate machines.
 */
export interface DevHost {
  name: string;
  /** Address inside the namespace, e.g. 10.211.0.1. */
  ip: string;
  /** Address of the host end (the bridge's when there is one), e.g. 10.211.0.254. */
  hostIp: string;
  hostLink: string;
  peerLink: string;
  /** Bridge the host end joins (several test hosts on one segment). */
  bridge?: string;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,11}$/;

export function devHost(name: string, ip = "10.211.0.1", bridge?: string): DevHost {
  if (!NAME.test(name)) throw new PlanetError("BAD_FLAG", `dev-host name ${name}: up to 12 lowercase letters, digits, dashes`);
  if (bridge !== undefined && !NAME.test(bridge))
    throw new PlanetError("BAD_FLAG", `--bridge ${bridge}: up to 12 lowercase letters, digits, dashes`);
  requireIp(ip, "--ip");
  if (ip.endsWith(".254") || ip.endsWith(".0") || ip.endsWith(".255"))
    throw new PlanetError("BAD_FLAG", `--ip ${ip}: .0, .254 and .255 of the /24 belong to the host end`);
  const hostIp = ip.replace(/\.\d+$/, ".254");
  return { name, ip, hostIp, hostLink: `${name}-h`, peerLink: `${name}-c`, bridge };
}

export async function devHostExists(name: string): Promise<boolean> {
  return existsSync(`/run/netns/${name}`);
}

const linkExists = (name: string) => existsSync(`/sys/class/net/${name}`);
/** Says that /run/netns was made by a dev-host (`ip netns add` mounts it the first time): `down` may take it away. */
const NETNS_MARK = "/run/planet-dev-host-made-netns";

/** The bridge's address when it exists (a second host on it must be in the same /24). */
async function bridgeAddress(bridge: string): Promise<string | undefined> {
  const res = await run(["ip", "-4", "-o", "addr", "show", "dev", bridge]);
  return /inet (\d+\.\d+\.\d+\.\d+)\//.exec(res.stdout)?.[1];
}

export async function devHostUp(h: DevHost): Promise<void> {
  requireRoot("dev-host up");
  if (await devHostExists(h.name)) return;
  const opt = { phase: "dev-host" };
  const ns = (...args: string[]) => runOk(["ip", "-n", h.name, ...args], opt);
  const madeBridge = !!h.bridge && !linkExists(h.bridge);
  if (h.bridge && linkExists(h.bridge)) {
    const have = await bridgeAddress(h.bridge);
    if (have && have !== h.hostIp)
      throw new PlanetError(
        "BAD_FLAG",
        `--ip ${h.ip}: bridge ${h.bridge} is on ${have.replace(/\.\d+$/, ".0/24")}; give an address in it`,
      );
  }
  if (!existsSync("/run/netns")) writeFileSync(NETNS_MARK, "");
  try {
    if (madeBridge && h.bridge) {
      await runOk(["ip", "link", "add", h.bridge, "type", "bridge"], opt);
      // Frames between test hosts are switched, not routed: keep them out of the host's iptables.
      await runOk(["ip", "link", "set", h.bridge, "type", "bridge", "nf_call_iptables", "0"], opt);
      await runOk(["ip", "addr", "add", `${h.hostIp}/24`, "dev", h.bridge], opt);
      await runOk(["ip", "link", "set", h.bridge, "up"], opt);
    }
    await runOk(["ip", "netns", "add", h.name], opt);
    await runOk(["ip", "link", "add", h.hostLink, "type", "veth", "peer", "name", h.peerLink, "netns", h.name], opt);
    if (h.bridge) await runOk(["ip", "link", "set", h.hostLink, "master", h.bridge], opt);
    else await runOk(["ip", "addr", "add", `${h.hostIp}/24`, "dev", h.hostLink], opt);
    await runOk(["ip", "link", "set", h.hostLink, "up"], opt);
    await ns("link", "set", "lo", "up");
    await ns("addr", "add", `${h.ip}/24`, "dev", h.peerLink);
    await ns("link", "set", h.peerLink, "up");
    await ns("route", "add", "default", "via", h.hostIp);
    // The kubelet probes the cloud metadata address at start; fail fast instead of timing out.
    await ns("route", "add", "unreachable", "169.254.0.0/16");
    await runOk(["ip", "netns", "exec", h.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], opt);
  } catch (e) {
    await devHostDown(h);
    throw e;
  }
}

/**
 * Removes the namespace (and with it every link, route and rule inside), the veth, the bridge once
 * no test host is left on it, and /run/netns if empty.
 */
export async function devHostDown(h: DevHost): Promise<void> {
  requireRoot("dev-host down");
  // The bridge the host end is on, whether or not `down` was told.
  const master = `/sys/class/net/${h.hostLink}/master`;
  const bridge = existsSync(master) ? basename(realpathSync(master)) : h.bridge;
  if (await devHostExists(h.name)) await run(["ip", "netns", "del", h.name]);
  if (linkExists(h.hostLink)) await run(["ip", "link", "del", h.hostLink]);
  if (bridge && linkExists(bridge) && readdirSync(`/sys/class/net/${bridge}/brif`).length === 0)
    await run(["ip", "link", "del", bridge]);
  // /run/netns goes only when a dev-host made it and it is empty: anything else may use it.
  if (existsSync(NETNS_MARK) && existsSync("/run/netns") && readdirSync("/run/netns").length === 0) {
    // `ip netns add` bind-mounts /run/netns onto itself the first time.
    await run(["umount", "/run/netns"]);
    try {
      rmdirSync("/run/netns");
      rmSync(NETNS_MARK, { force: true });
    } catch {
      // still in use
    }
  } else if (!existsSync("/run/netns")) rmSync(NETNS_MARK, { force: true });
}
