/**
 * Health checks are data (from the image manifest); this runs them. Each check has a one-shot
 * *ready* gate (retried every second until it first passes) and then a periodic *health* probe,
 * and keeps its last three results — k0s's Ready()/Healthy() split.
 */

import { existsSync, readFileSync, statfsSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { CheckDef, Role, Severity } from "../plugin.ts";
import { checkKind } from "../plugin.ts";
import { run } from "../proc.ts";
import { readSysctl } from "../util.ts";

export type CheckState = "pending" | "ok" | "failed";

export interface CheckResult {
  ok: boolean;
  /** ISO time of the probe. */
  at: string;
  ms: number;
  error?: string;
}

/** A check as the agent knows it: its definition, where it comes from, and how it went. */
export interface CheckStatus {
  name: string;
  plugin: string;
  kind: string;
  severity: Severity;
  state: CheckState;
  /** True once the ready gate passed. */
  ready: boolean;
  /** The last three results, newest first. */
  results: CheckResult[];
}

export type RunnableCheck = (CheckDef & { plugin: string; roles?: Role[] }) | HostCheck;

/** A check implemented in code (host properties the original planet checked). */
export interface HostCheck {
  name: string;
  plugin: string;
  severity?: Severity;
  /** Per-attempt deadline in ms (default 5000). */
  timeoutMs?: number;
  probe: () => Promise<void> | void;
}

export interface ProbeContext {
  /** Folder of the certificates (`/var/state`). */
  secretsDir: string;
}

/** `p`, or a rejection "timeout: …" after `ms` (`onTimeout` releases what `p` holds). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new Error(`timeout: ${what}: no answer within ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * What a secrets dir trusts — `client-ca.pem` (the cluster CA and the masters' signer, which signs
 * the certificates of hosts that joined with a token), or `root.cert` where there is no bundle — and
 * the named key pair when given (`<name>.cert` / `<name>.key`).
 */
export function tlsFiles(dir: string, name?: string): { ca: string; cert?: string; key?: string } {
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  const ca = existsSync(join(dir, "client-ca.pem")) ? read("client-ca.pem") : read("root.cert");
  return { ca, ...(name ? { cert: read(`${name}.cert`), key: read(`${name}.key`) } : {}) };
}

/** Per-attempt deadline of a check that does not set its own. */
export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * Runs one probe; throws with a one-line reason when unhealthy. Every kind has a deadline
 * (`timeoutMs`): a command's whole process group is killed, a socket destroyed, a request aborted.
 */
export async function probe(check: RunnableCheck, ctx: ProbeContext): Promise<void> {
  const timeoutMs = check.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if ("probe" in check) return void (await withTimeout(Promise.resolve(check.probe()), timeoutMs, check.name));
  switch (checkKind(check)) {
    case "http": {
      const c = check as Extract<CheckDef, { http: string }>;
      const tls = c.http.startsWith("https:") ? tlsFiles(ctx.secretsDir, c.tls) : undefined;
      const res = await withTimeout(fetch(c.http, { tls, signal: AbortSignal.timeout(timeoutMs) }), timeoutMs, c.http);
      const body = await res.text();
      if (!res.ok) throw new Error(`${c.http}: HTTP ${res.status} ${body.trim().slice(0, 120)}`);
      if (c.expect && !body.includes(c.expect)) throw new Error(`${c.http}: body lacks ${JSON.stringify(c.expect)}`);
      return;
    }
    case "tcp": {
      const c = check as Extract<CheckDef, { tcp: string }>;
      const i = c.tcp.lastIndexOf(":");
      const host = c.tcp.slice(0, i);
      const port = Number(c.tcp.slice(i + 1));
      let s: ReturnType<typeof connect> | undefined;
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          s = connect({ host, port }, () => {
            s?.end();
            resolve();
          });
          s.on("error", (e) => reject(new Error(`${c.tcp}: ${e.message}`)));
        }),
        timeoutMs,
        c.tcp,
        () => s?.destroy(),
      );
      return;
    }
    case "unit": {
      const c = check as Extract<CheckDef, { unit: string }>;
      const res = await run(["systemctl", "is-active", c.unit], { timeoutMs });
      if (res.exitCode === 124) throw new Error(`timeout: systemctl is-active ${c.unit}: no answer within ${timeoutMs} ms`);
      const state = res.stdout.trim();
      if (state !== "active") throw new Error(`${c.unit} is ${state || "unknown"}`);
      return;
    }
    case "command": {
      const c = check as Extract<CheckDef, { command: string[] }>;
      const res = await run(c.command, { timeoutMs });
      if (res.exitCode === 124 && res.stderr.endsWith(`timed out after ${timeoutMs} ms\n`))
        throw new Error(`timeout: ${c.command.join(" ")}: killed after ${timeoutMs} ms`);
      if (res.exitCode !== 0) {
        // The probe's own last word, on stderr or else stdout, says why.
        const why = (res.stderr.trim() || res.stdout.trim()).split("\n").at(-1);
        throw new Error(`${c.command.join(" ")} exited ${res.exitCode}${why ? `: ${why}` : ""}`);
      }
      return;
    }
  }
}

/** Host checks the original planet ran (satellite): forwarding, bridge netfilter, inotify, disk. */
export function hostChecks(opts: { volumes: string[]; diskWarn?: number; diskCritical?: number }): HostCheck[] {
  const warn = opts.diskWarn ?? 0.8;
  const critical = opts.diskCritical ?? 0.9;
  const checks: HostCheck[] = [
    {
      name: "host-ip-forward",
      plugin: "host",
      probe: () => {
        if (readSysctl("net.ipv4.ip_forward") !== "1") throw new Error("net.ipv4.ip_forward is 0: pods cannot reach services");
      },
    },
    {
      name: "host-br-netfilter",
      plugin: "host",
      probe: () => {
        const v = readSysctl("net.bridge.bridge-nf-call-iptables");
        if (v !== "1")
          throw new Error(
            v === null ? "br_netfilter is not loaded (modprobe br_netfilter)" : "net.bridge.bridge-nf-call-iptables is 0",
          );
      },
    },
    {
      name: "host-inotify-watches",
      plugin: "host",
      severity: "warning",
      probe: () => {
        const v = Number(readSysctl("fs.inotify.max_user_watches") ?? 0);
        if (v < 8192) throw new Error(`fs.inotify.max_user_watches is ${v}, below 8192`);
      },
    },
  ];
  for (const volume of opts.volumes)
    for (const [level, limit] of [
      ["warning", warn],
      ["critical", critical],
    ] as const)
      checks.push({
        name: `host-disk-${volume.split("/").filter(Boolean).join("-") || "root"}-${level}`,
        plugin: "host",
        severity: level,
        probe: () => {
          if (!existsSync(volume)) return;
          const s = statfsSync(volume);
          const used = 1 - s.bavail / s.blocks;
          if (used > limit) throw new Error(`${volume} is ${Math.round(used * 100)} % full (limit ${Math.round(limit * 100)} %)`);
        },
      });
  return checks;
}

/** Validates a manifest check; a malformed one is named and skipped, not fatal. */
export function validateCheck(c: unknown): string | null {
  if (!c || typeof c !== "object") return "not an object";
  const o = c as Record<string, unknown>;
  if (typeof o.name !== "string" || !o.name) return "no name";
  const kinds = ["http", "tcp", "unit", "command"].filter((k) => k in o);
  if (kinds.length !== 1) return `needs exactly one of http, tcp, unit, command (has ${kinds.join(",") || "none"})`;
  if ("http" in o && (typeof o.http !== "string" || !/^https?:\/\//.test(o.http))) return "http must be an http(s) URL";
  if ("tcp" in o && (typeof o.tcp !== "string" || !/^.+:\d+$/.test(o.tcp))) return "tcp must be host:port";
  if ("unit" in o && typeof o.unit !== "string") return "unit must be a unit name";
  if ("command" in o && (!Array.isArray(o.command) || o.command.length === 0)) return "command must be a non-empty list";
  return null;
}

/**
 * The manifest's checks for these roles; a malformed one is named and skipped (reported by the
 * agent), never fatal.
 */
export function manifestChecks(
  checks: unknown[],
  roles: Role[],
): { checks: RunnableCheck[]; skipped: { name: string; reason: string }[] } {
  const out: RunnableCheck[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const c of checks) {
    const reason = validateCheck(c);
    const name = String((c as { name?: unknown } | null)?.name ?? "?");
    if (reason) skipped.push({ name, reason });
    else {
      const check = c as CheckDef & { plugin: string; roles?: Role[] };
      if ((check.roles ?? roles).some((r) => roles.includes(r))) out.push(check);
    }
  }
  return { checks: out, skipped };
}

/** Schedules every check: ready gate each `readyEveryMs` until it passes, then health each `healthEveryMs`. */
export class CheckRunner {
  readonly status = new Map<string, CheckStatus>();
  private timers = new Map<string, ReturnType<typeof setTimeout>>();
  private stopped = false;

  constructor(
    private checks: RunnableCheck[],
    private ctx: ProbeContext,
    private timing = { readyEveryMs: 1000, healthEveryMs: 10_000 },
  ) {
    for (const c of checks)
      this.status.set(c.name, {
        name: c.name,
        plugin: c.plugin,
        kind: "probe" in c ? "host" : checkKind(c),
        severity: c.severity ?? "critical",
        state: "pending",
        ready: false,
        results: [],
      });
  }

  start(): void {
    for (const c of this.checks) void this.tick(c);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
  }

  /** Runs one check now and records the result. */
  async runOnce(c: RunnableCheck): Promise<CheckResult> {
    const t0 = performance.now();
    let result: CheckResult;
    try {
      // A last deadline above the probe's own: whatever hangs, the schedule goes on.
      await withTimeout(probe(c, this.ctx), (c.timeoutMs ?? DEFAULT_TIMEOUT_MS) + 2000, c.name);
      result = { ok: true, at: new Date().toISOString(), ms: Math.round(performance.now() - t0) };
    } catch (e) {
      result = { ok: false, at: new Date().toISOString(), ms: Math.round(performance.now() - t0), error: (e as Error).message };
    }
    const st = this.status.get(c.name);
    if (st) {
      st.results = [result, ...st.results].slice(0, 3);
      st.state = result.ok ? "ok" : "failed";
      if (result.ok) st.ready = true;
    }
    return result;
  }

  private async tick(c: RunnableCheck): Promise<void> {
    if (this.stopped) return;
    await this.runOnce(c);
    if (this.stopped) return;
    const ready = this.status.get(c.name)?.ready;
    this.timers.set(
      c.name,
      setTimeout(() => void this.tick(c), ready ? this.timing.healthEveryMs : this.timing.readyEveryMs),
    );
  }

  /** Healthy when no critical check failed; pending checks count as not yet healthy. */
  summary(): { status: "healthy" | "degraded"; failed: string[]; pending: string[] } {
    const all = [...this.status.values()];
    const failed = all.filter((s) => s.state === "failed" && s.severity === "critical").map((s) => s.name);
    const pending = all.filter((s) => s.state === "pending").map((s) => s.name);
    return { status: failed.length || pending.length ? "degraded" : "healthy", failed, pending };
  }
}
