#!/usr/bin/env bun
/**
 * Before `make bench`: whether this machine can boot bubbles at all. One line naming what is missing
 * and exit 1 when it cannot (not root, a tool missing, no cgroup namespaces); silent otherwise.
 */
import { existsSync } from "node:fs";

const missing = [
  ...(process.getuid?.() === 0 ? [] : ["root (run make bench as root)"]),
  ...["runc", "socat", "setpriv", "mmdebstrap", "ip"]
    .filter((t) => Bun.which(t) === null)
    .map((t) => `${t} (make deps installs it)`),
  ...(existsSync("/proc/self/ns/cgroup") ? [] : ["cgroup namespaces (/proc/self/ns/cgroup)"]),
];
if (missing.length) {
  process.stderr.write(`BENCH_CANNOT_BOOT: the benches boot bubbles; this machine lacks ${missing.join(", ")}\n`);
  process.exit(1);
}
