/**
 * The upgrade's health gate: the new bubble passes once every critical check stayed green through a
 * whole window with no unit restarting, and fails on a crash loop, a dead bubble or the deadline.
 */
import type { CheckStatus } from "../agent/checks.ts";
import { agentSocket, ask } from "../agent/client.ts";
import { execRun } from "../bubble/exec.ts";
import type { Slot } from "../bubble/slot-root.ts";
import { ownerAlive, readState } from "../bubble/state.ts";
import { readManifest } from "../manifest.ts";
import type { Journal } from "./journal.ts";

const critical = (checks: CheckStatus[]) => checks.filter((c) => c.severity !== "warning");

/**
 * The running bubble's critical checks that are not ok, or (with `since`) not probed since then, or
 * (with `redSince`) red at any of their last probes since then — each with what it said (agent
 * unreachable → one entry).
 */
export async function failingChecks(rootfs: string, since = 0, redSince = 0): Promise<string[]> {
  try {
    const checks = critical(await ask<CheckStatus[]>(agentSocket(rootfs), "/checks"));
    // A green older than `since` is no evidence: the host may have changed since it was probed.
    const flapped = (c: CheckStatus) => !!redSince && c.results.some((r) => !r.ok && Date.parse(r.at) >= redSince);
    const bad = checks.filter((c) => c.state !== "ok" || Date.parse(c.results[0]?.at ?? "") < since || flapped(c));
    return checks.length
      ? bad.map(
          (c) =>
            `${c.name} (${c.state !== "ok" ? (c.results[0]?.error ?? c.state) : flapped(c) ? "red at a probe since the window began" : "not probed again yet"})`,
        )
      : ["no checks yet"];
  } catch (e) {
    return [`agent: ${(e as Error).message}`];
  }
}

/** How long every critical check must stay green, with no unit restarting, before the gate passes. */
const GATE_WINDOW_MS = Number(process.env.PLANET_GATE_WINDOW_MS ?? 15_000);
/** Restarts of one unit while the gate watches that make it a crash loop: the gate fails at once. */
const CRASH_LOOP_RESTARTS = 2;

/** The image's service units and how often systemd restarted each (`NRestarts`), in the running bubble. */
async function unitRestarts(rootfs: string): Promise<Map<string, number>> {
  const units = [...new Set(Object.values(readManifest(rootfs)?.manifest.units ?? {}).flat())].filter((u) =>
    u.endsWith(".service"),
  );
  const out = new Map<string, number>();
  if (!units.length) return out;
  const res = await execRun(rootfs, ["systemctl", "show", "--property=Id,NRestarts", ...units]).catch(() => null);
  for (const block of (res?.stdout ?? "").split("\n\n")) {
    const id = /^Id=(.+)$/m.exec(block)?.[1];
    const n = Number(/^NRestarts=(\d+)$/m.exec(block)?.[1] ?? Number.NaN);
    if (id && Number.isFinite(n)) out.set(id, n);
  }
  return out;
}

/**
 * Watches the new bubble until every critical check has stayed green through a whole window
 * (`GATE_WINDOW_MS`, each check probed again within it) with no unit restarting: a check that caught a
 * crash-looping unit in a green instant does not pass it. A unit systemd restarts during the window
 * starts the window again; one restarted `CRASH_LOOP_RESTARTS` times fails the gate at once. Fails too
 * when the bubble dies, or at the deadline.
 */
export async function gate(j: Journal, slot: Slot, seconds: number): Promise<string | null> {
  const end = Date.now() + seconds * 1000;
  const base = await unitRestarts(slot.rootfs);
  let last = base;
  let failing: string[] = [];
  let greenSince = 0;
  while (Date.now() < end) {
    const st = readState(j.box);
    if (!st || !ownerAlive(st)) return "the new bubble stopped while its checks ran";
    const now = await unitRestarts(slot.rootfs);
    const looping = [...now].filter(([u, n]) => n - (base.get(u) ?? n) >= CRASH_LOOP_RESTARTS);
    if (looping.length)
      return `crash-looping: ${looping.map(([u, n]) => `${u} restarted ${n - (base.get(u) ?? 0)} times`).join(", ")} while the gate watched`;
    const restarted = [...now].filter(([u, n]) => n > (last.get(u) ?? n)).map(([u]) => `${u} restarted`);
    last = now;
    // Red now, or red at any probe since the window began: the window starts again.
    failing = [...restarted, ...(await failingChecks(slot.rootfs, 0, greenSince))];
    if (failing.length) greenSince = 0;
    else if (!greenSince) greenSince = Date.now();
    // The window is whole once it lasted and every check was probed again inside it.
    else if (Date.now() - greenSince >= GATE_WINDOW_MS && !(await failingChecks(slot.rootfs, greenSince)).length) return null;
    await Bun.sleep(1000);
  }
  return `checks not passing after ${seconds}s: ${failing.slice(0, 4).join("; ")}`;
}
