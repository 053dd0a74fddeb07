/**
 * Host sysctls a bubble may change: recorded before the first bubble starts, restored when the
 * last one stops (they belong to every bubble on the host until then).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { logger } from "../log.ts";
import { readSysctl, sysctlPath, writeDurably } from "../util.ts";
import { HOST_SYSCTLS_FILE, listStates, ownerAlive } from "./state.ts";

const log = logger("bubble");

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
export function snapshotSysctls(): void {
  if (existsSync(HOST_SYSCTLS_FILE)) return;
  const out: Record<string, string> = {};
  for (const name of [...HOST_SYSCTLS, ...NET_SYSCTLS]) {
    const value = readSysctl(name);
    if (value !== null) out[name] = value;
  }
  mkdirSync(dirname(HOST_SYSCTLS_FILE), { recursive: true });
  writeDurably(HOST_SYSCTLS_FILE, `${JSON.stringify(out, null, 2)}\n`);
}

/** Restores the host's sysctls once no other bubble runs: they belong to all of them until then. */
export function restoreSysctlsIfLast(id: string): void {
  if (!existsSync(HOST_SYSCTLS_FILE)) return;
  const others = listStates().filter((s) => s.id !== id && ownerAlive(s));
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
