/**
 * The OCI runtime spec of a bubble, generated from typed code. runc runs it: systemd as PID 1 with
 * private mount, pid, uts, ipc and cgroup namespaces, the host's network (or a named netns), every
 * capability the host can give, and the mounts systemd and the kubelet need.
 */
import { existsSync, readFileSync } from "node:fs";

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<"bounding" | "effective" | "permitted" | "inheritable" | "ambient", string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    cgroupsPath: string;
    resources: { devices: { allow: boolean; access: string }[] };
    rootfsPropagation: string;
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

/** Linux capability names by bit number (include/uapi/linux/capability.h). */
const CAPS = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
  "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
  "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
  "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
  "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
  "CHECKPOINT_RESTORE",
]; // biome-ignore format: a table

/** Capabilities in this process's bounding set — what the host can hand on (some VMs lack SYS_RESOURCE). */
export function hostCapabilities(status = readFileSync("/proc/self/status", "utf8")): string[] {
  const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? "0";
  const mask = BigInt(`0x${hex}`);
  return CAPS.flatMap((name, bit) => ((mask >> BigInt(bit)) & 1n ? [`CAP_${name}`] : []));
}

/** The host's hard limit on open files: the bubble cannot raise it without CAP_SYS_RESOURCE. */
export function hostNofile(limits = readFileSync("/proc/self/limits", "utf8")): number {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
  const hard = m?.[2];
  return !hard || hard === "unlimited" ? 1048576 : Number(hard);
}

export interface Volume {
  source: string;
  destination: string;
  readonly: boolean;
}

export interface SpecInput {
  rootfs: string;
  hostname: string;
  /** Environment of PID 1 (systemd's CONTAINER_INTERFACE variables). */
  env: Record<string, string>;
  /** cgroup path of the bubble on the host, e.g. `/planet/planet-dev`. */
  cgroupsPath: string;
  /** Join this network namespace (a path such as /run/netns/x); host network when absent. */
  netns?: string;
  volumes: Volume[];
  capabilities?: string[];
  nofile?: number;
  /** Extra arguments for systemd (e.g. `--log-level=debug`). */
  initArgs?: string[];
  /**
   * Host folder where `planet start` listens for systemd's notifications (`notify.sock`), bound at
   * /run/host/notify. Not runc's NOTIFY_SOCKET proxy: runc stops reading after READY=1, and with
   * the kernel's queue of 10 datagrams the 11th later message from systemd would block PID 1.
   */
  notifyDir?: string;
}

/** Where systemd inside finds the notify socket of `planet start`. */
export const NOTIFY_DIR_INSIDE = "/run/host/notify";

const tmpfs = (destination: string, options: string[]): OciMount => ({ destination, type: "tmpfs", source: "tmpfs", options });

export function bubbleSpec(input: SpecInput): OciSpec {
  const caps = input.capabilities ?? hostCapabilities();
  const nofile = input.nofile ?? hostNofile();
  const mounts: OciMount[] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    tmpfs("/dev/shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    // The kubelet's OOM watcher reads the kernel log.
    { destination: "/dev/kmsg", type: "bind", source: "/dev/kmsg", options: ["bind", "rw"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "rw"] },
    // With the cgroup namespace this is a real per-controller cgroupfs rooted at the bubble's own
    // cgroup: kubelet, cadvisor and systemd agree on paths, and the host's hierarchies stay untouched.
    { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "rw"] },
    tmpfs("/run", ["nosuid", "nodev", "mode=755"]),
    tmpfs("/run/lock", ["nosuid", "nodev", "noexec", "mode=1777"]),
    tmpfs("/tmp", ["nosuid", "nodev", "mode=1777"]),
  ];
  if (existsSync("/lib/modules"))
    mounts.push({ destination: "/lib/modules", type: "bind", source: "/lib/modules", options: ["rbind", "ro"] });
  for (const v of input.volumes)
    mounts.push({ destination: v.destination, type: "bind", source: v.source, options: ["rbind", v.readonly ? "ro" : "rw"] });
  if (input.notifyDir)
    mounts.push({ destination: NOTIFY_DIR_INSIDE, type: "bind", source: input.notifyDir, options: ["bind", "rw"] });

  const namespaces: OciSpec["linux"]["namespaces"] = ["pid", "mount", "uts", "ipc", "cgroup"].map((type) => ({ type }));
  if (input.netns) namespaces.push({ type: "network", path: input.netns });

  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ["/sbin/init", ...(input.initArgs ?? [])],
      env: [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ...Object.entries(input.env).map(([k, v]) => `${k}=${v}`),
        ...(input.notifyDir ? [`NOTIFY_SOCKET=${NOTIFY_DIR_INSIDE}/notify.sock`] : []),
      ],
      cwd: "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: caps, ambient: caps },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: nofile, soft: nofile }],
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: input.hostname,
    mounts,
    linux: {
      namespaces,
      cgroupsPath: input.cgroupsPath,
      resources: { devices: [{ allow: true, access: "rwm" }] },
      rootfsPropagation: "rprivate",
      // The kubelet and kube-proxy write /proc/sys; systemd needs /sys writable.
      maskedPaths: [],
      readonlyPaths: [],
    },
  };
}
