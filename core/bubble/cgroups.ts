/**
 * The host's cgroup layout, detected once: `v2` (unified: one cgroup2 tree at /sys/fs/cgroup, stock
 * Debian 12 and Ubuntu 22.04+), `v1` (a tmpfs with one hierarchy per controller; "hybrid" adds a
 * cgroup2 tree at /sys/fs/cgroup/unified). Every cgroup path the box and the benches use comes
 * from here.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { walkTree } from "../util.ts";

export type CgroupMode = "v1" | "v2";
const CGROUP2_SUPER_MAGIC = 0x63677270;

let detected: CgroupMode | undefined;

export function cgroupMode(base = "/sys/fs/cgroup"): CgroupMode {
  if (base !== "/sys/fs/cgroup") return statfsSync(base).type === CGROUP2_SUPER_MAGIC ? "v2" : "v1";
  detected ??= existsSync(base) && statfsSync(base).type === CGROUP2_SUPER_MAGIC ? "v2" : "v1";
  return detected;
}

/** The hierarchies a bubble's cgroup appears in: the one tree (v2), or each controller's (v1). */
export function cgroupRoots(mode: CgroupMode, base = "/sys/fs/cgroup"): string[] {
  if (mode === "v2") return [base];
  if (!existsSync(base)) return [];
  return readdirSync(base, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(base, e.name));
}

/** Removes `name`'s cgroup and everything under it (deepest first) in every hierarchy; returns what stayed. */
export function removeCgroupTree(name: string, mode: CgroupMode, base = "/sys/fs/cgroup"): string[] {
  const stayed: string[] = [];
  for (const root of cgroupRoots(mode, base)) {
    const top = join(root, name);
    if (!existsSync(top)) continue;
    for (const d of walkTree(top).dirs)
      try {
        rmdirSync(d);
      } catch {
        stayed.push(d);
      }
  }
  return stayed;
}

/** Controllers the kernel offers: v2's cgroup.controllers, or v1's enabled lines of /proc/cgroups. */
export function availableControllers(mode: CgroupMode, base = "/sys/fs/cgroup"): string[] {
  if (mode === "v2") return readFileSync(join(base, "cgroup.controllers"), "utf8").trim().split(/\s+/);
  return readFileSync("/proc/cgroups", "utf8")
    .split("\n")
    .filter((l) => /^\w+\s+\d+\s+\d+\s+1$/.test(l))
    .map((l) => l.split(/\s+/)[0] as string);
}

/** A cgroup's memory in use, less the page cache the kernel can drop at once (inactive files). */
export function memoryInUse(name: string, mode = cgroupMode(), base = "/sys/fs/cgroup"): number {
  const dir = mode === "v2" ? join(base, name) : join(base, "memory", name);
  const stat = Object.fromEntries(
    readFileSync(join(dir, "memory.stat"), "utf8")
      .trim()
      .split("\n")
      .map((l) => [l.split(" ")[0], Number(l.split(" ")[1])]),
  ) as Record<string, number>;
  if (mode === "v2") return Number(readFileSync(join(dir, "memory.current"), "utf8")) - (stat.inactive_file ?? 0);
  return Number(readFileSync(join(dir, "memory.usage_in_bytes"), "utf8")) - (stat.total_inactive_file ?? 0);
}
