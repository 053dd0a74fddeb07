import { existsSync, readdirSync, rmdirSync } from "node:fs";
import { PlanetError } from "../errors.ts";
import { requireIp } from "../net.ts";
import { run, runOk } from "../proc.ts";
import { requireRoot } from "./preflight.ts";

/**
 * A "test host": a network namespace with a veth pair to the host, its own address, and no route
 * beyond the host end (which does not forward). Bubbles join it with `planet start --netns`, so an
 * apiserver can advertise a real, non-loopback address without touching the host's interfaces.
 */
export interface DevHost {
  name: string;
  /** Address inside the namespace, e.g. 10.211.0.1. */
  ip: string;
  /** Address of the host end, e.g. 10.211.0.254. */
  hostIp: string;
  hostLink: string;
  peerLink: string;
}

export function devHost(name: string, ip = "10.211.0.1"): DevHost {
  if (!/^[a-z0-9][a-z0-9-]{0,11}$/.test(name))
    throw new PlanetError("BAD_FLAG", `test host name ${name}: up to 12 lowercase letters, digits, dashes`);
  requireIp(ip, "--ip");
  const hostIp = ip.replace(/\.\d+$/, ".254");
  return { name, ip, hostIp, hostLink: `${name}-h`, peerLink: `${name}-c` };
}

export async function devHostExists(name: string): Promise<boolean> {
  return existsSync(`/run/netns/${name}`);
}

export async function devHostUp(h: DevHost): Promise<void> {
  requireRoot("dev-host up");
  if (await devHostExists(h.name)) return;
  const ns = (...args: string[]) => runOk(["ip", "-n", h.name, ...args], { phase: "dev-host" });
  try {
    await runOk(["ip", "netns", "add", h.name], { phase: "dev-host" });
    await runOk(["ip", "link", "add", h.hostLink, "type", "veth", "peer", "name", h.peerLink, "netns", h.name], {
      phase: "dev-host",
    });
    await runOk(["ip", "addr", "add", `${h.hostIp}/24`, "dev", h.hostLink], { phase: "dev-host" });
    await runOk(["ip", "link", "set", h.hostLink, "up"], { phase: "dev-host" });
    await ns("link", "set", "lo", "up");
    await ns("addr", "add", `${h.ip}/24`, "dev", h.peerLink);
    await ns("link", "set", h.peerLink, "up");
    await ns("route", "add", "default", "via", h.hostIp);
    // The kubelet probes the cloud metadata address at start; fail fast instead of timing out.
    await ns("route", "add", "unreachable", "169.254.0.0/16");
    await runOk(["ip", "netns", "exec", h.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], { phase: "dev-host" });
  } catch (e) {
    await devHostDown(h);
    throw e;
  }
}

/** Removes the namespace (and with it every link, route and rule inside), the veth, and /run/netns if empty. */
export async function devHostDown(h: DevHost): Promise<void> {
  requireRoot("dev-host down");
  if (await devHostExists(h.name)) await run(["ip", "netns", "del", h.name]);
  await run(["ip", "link", "del", h.hostLink]);
  if (existsSync("/run/netns") && readdirSync("/run/netns").length === 0) {
    // `ip netns add` bind-mounts /run/netns onto itself the first time.
    await run(["umount", "/run/netns"]);
    try {
      rmdirSync("/run/netns");
    } catch {
      // still in use
    }
  }
}
