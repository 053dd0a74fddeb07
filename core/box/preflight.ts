import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PlanetError } from "../errors.ts";
import { MANIFEST_PATH } from "../manifest.ts";
import { have } from "../proc.ts";
import { availableControllers, cgroupMode } from "./cgroups.ts";

const phase = "preflight";

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
