/**
 * A cluster upgrade from one place: `planet upgrade --plan plan.json` runs `planet upgrade` on
 * every host of the plan — masters one at a time, each only while every other master is healthy
 * (etcd keeps its quorum), then nodes `concurrency` at a time — and halts on the first host that
 * rolled back, leaving the cluster healthy and mixed. Its state file (beside the plan) records each
 * host's outcome, so `--resume` after a fix carries on with the hosts not yet upgraded.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pidAlive } from "../bubble/state.ts";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { run, selfCommand } from "../proc.ts";
import { poll, readJsonOrNull, shapeProblem, writeDurably } from "../util.ts";

const log = logger("upgrade");

export interface PlanHost {
  name: string;
  role: "master" | "node";
  /** How `planet` runs on that host, e.g. `["ssh", "root@10.0.0.2", "planet"]` (default: this planet, here). */
  planet?: string[];
  clusterId?: string;
  /** The host's network namespace, for test hosts on one machine. */
  netns?: string;
  dataDir?: string;
  /** Extra environment for the commands run for this host. */
  env?: Record<string, string>;
}

export interface Plan {
  /** Image per role: a build folder, rootfs or planet.tar.gz as each host sees it. */
  images: { master: string; node: string };
  hosts: PlanHost[];
  /** Nodes upgraded at once (default 1). */
  concurrency?: number;
  /** Admin kubeconfig, for the nodes' drain, as each host sees it. */
  kubeconfig?: string;
  gateTimeout?: number;
}

/** `refused`: the host's preflight said no, nothing on it was stopped. */
type HostOutcome = "pending" | "running" | "committed" | "rolled-back" | "refused";

export interface RollState {
  pid: number;
  plan: string;
  startedAt: string;
  /** The owner of the cluster's upgrade lock while the roll runs, halted or not: every host's upgrade runs under it. */
  lockOwner: string;
  /** Per host: its outcome, when it began and when it ended (or the roll began, while pending). */
  hosts: Record<string, { outcome: HostOutcome; startedAt?: string; at: string; reason?: string }>;
  phase: "running" | "halted" | "done";
}

export function readPlan(file: string): Plan {
  if (!existsSync(file)) throw new PlanetError("BAD_FLAG", `--plan ${file} does not exist`);
  let plan: unknown;
  try {
    plan = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new PlanetError("BAD_FLAG", `--plan ${file} is not JSON: ${(e as Error).message}`);
  }
  const problem = shapeProblem(plan, { images: "object", hosts: "array" });
  if (problem) throw new PlanetError("BAD_FLAG", `--plan ${file}: ${problem}`);
  const p = plan as Plan;
  if (typeof p.images.master !== "string" || typeof p.images.node !== "string")
    throw new PlanetError("BAD_FLAG", `--plan ${file}: images needs master and node`);
  const names = new Set<string>();
  for (const h of p.hosts) {
    if (typeof h.name !== "string" || !["master", "node"].includes(h.role))
      throw new PlanetError("BAD_FLAG", `--plan ${file}: every host needs a name and role master or node`);
    if (names.has(h.name)) throw new PlanetError("BAD_FLAG", `--plan ${file}: host ${h.name} is listed twice`);
    names.add(h.name);
  }
  if (!p.hosts.some((h) => h.role === "master")) throw new PlanetError("BAD_FLAG", `--plan ${file}: no master in hosts`);
  return p;
}

export const stateFile = (plan: string) => `${resolve(plan)}.state.json`;

function writeRollState(s: RollState): void {
  writeDurably(stateFile(s.plan), `${JSON.stringify(s, null, 2)}\n`);
}

function hostArgs(h: PlanHost): string[] {
  return [
    ...(h.clusterId ? ["--cluster-id", h.clusterId] : []),
    ...(h.netns ? ["--netns", h.netns] : []),
    ...(h.dataDir ? ["--data-dir", h.dataDir] : []),
  ];
}

function planetOn(h: PlanHost, args: string[]) {
  return run([...(h.planet ?? selfCommand()), ...args], { env: { ...process.env, ...h.env } as Record<string, string> });
}

/**
 * One host's health as its own agent reports it (`planet status --local`): green once within three
 * minutes (a cluster whose host just restarted settles for a while on two loaded cores).
 */
async function healthy(h: PlanHost): Promise<string | null> {
  let res = { exitCode: 1, stdout: "", stderr: "" };
  const ask = async () => {
    res = await planetOn(h, ["status", "--local", "--json", ...(h.dataDir ? ["--data-dir", h.dataDir] : [])]);
    return res.exitCode === 0;
  };
  if ((await poll(ask, 180_000, 3000)).value) return null;
  try {
    const st = JSON.parse(res.stdout) as {
      members: { health?: { failed: string[] }; checks?: { name: string; results: { error?: string }[] }[] }[];
    };
    const me = st.members[0];
    // Each failing check with what it last said.
    const why = (me?.health?.failed ?? []).map((name) => {
      const said = me?.checks?.find((c) => c.name === name)?.results[0]?.error;
      return said ? `${name}: ${said.trim().split("\n").at(-1)}` : name;
    });
    return `failing ${why.join("; ") || "checks"}`;
  } catch {
    return res.stderr.trim().split("\n").at(-1) ?? `status exited ${res.exitCode}`;
  }
}

async function upgradeHost(plan: Plan, h: PlanHost, state: RollState): Promise<boolean> {
  const startedAt = new Date().toISOString();
  state.hosts[h.name] = { outcome: "running", startedAt, at: startedAt };
  writeRollState(state);
  log.start(`${h.name} (${h.role}): upgrading`);
  const image = h.role === "master" ? plan.images.master : plan.images.node;
  const own = await planetOn(h, ["upgrade", "--status", ...(h.dataDir ? ["--data-dir", h.dataDir] : [])]);
  const open = (JSON.parse(own.stdout || "{}") as { upgrade?: { phase: string; endedAt?: string } }).upgrade;
  const resumeIt = open && !open.endedAt;
  const res = await planetOn(h, [
    "upgrade",
    ...(resumeIt ? ["--resume"] : [image]),
    ...hostArgs(h),
    ...(plan.kubeconfig ? ["--kubeconfig", plan.kubeconfig] : []),
    "--gate-timeout",
    String(plan.gateTimeout ?? 300),
    "--lock-owner",
    state.lockOwner,
  ]);
  const last = res.stderr.trim().split("\n").at(-1) ?? "";
  // Already running the image: nothing to do for this host.
  const ok = res.exitCode === 0 || /is the image this host runs/.test(res.stderr);
  const refused = /^(UPGRADE_REFUSED|UPGRADE_LOCKED|UPGRADE_RUNNING|CLUSTER_UNHEALTHY|NO_SPACE|NOT_AN_IMAGE|NOT_RUNNING): /.test(
    last,
  );
  state.hosts[h.name] = {
    outcome: ok ? "committed" : refused ? "refused" : "rolled-back",
    startedAt,
    at: new Date().toISOString(),
    ...(ok ? {} : { reason: last }),
  };
  writeRollState(state);
  if (ok) log.success(`${h.name}: upgraded`);
  else log.error(`${h.name}: ${last}`);
  return ok;
}

/** Runs (or resumes) the plan; throws when a host rolled back, naming it and how to go on. */
export async function roll(planFile: string, o: { resume?: boolean; concurrency?: number }): Promise<void> {
  const plan = readPlan(planFile);
  const file = stateFile(planFile);
  let state = readJsonOrNull<RollState>(file);
  if (state && state.phase === "running" && pidAlive(state.pid) && state.pid !== process.pid)
    throw new PlanetError("UPGRADE_RUNNING", `the cluster upgrade of ${planFile} is running (pid ${state.pid})`);
  if (state && state.phase !== "done" && !o.resume)
    throw new PlanetError(
      "UPGRADE_RUNNING",
      `the cluster upgrade of ${planFile} stopped (${state.phase}): carry on with --resume`,
    );
  if (!state || state.phase === "done" || !o.resume) {
    const startedAt = new Date().toISOString();
    const lockOwner = `roll-${startedAt.replace(/[:.]/g, "-")}`;
    state = { pid: process.pid, plan: resolve(planFile), startedAt, lockOwner, hosts: {}, phase: "running" };
  }
  state.pid = process.pid;
  state.phase = "running";
  state.lockOwner ??= `roll-${state.startedAt.replace(/[:.]/g, "-")}`;
  for (const h of plan.hosts) state.hosts[h.name] ??= { outcome: "pending", at: state.startedAt };
  writeRollState(state);

  const halt = (h: PlanHost, why: string): never => {
    (state as RollState).phase = "halted";
    writeRollState(state as RollState);
    const done = plan.hosts.filter((x) => (state as RollState).hosts[x.name]?.outcome === "committed").map((x) => x.name);
    throw new PlanetError(
      "UPGRADE_FAILED",
      `${h.name}: ${why}; halted with ${done.length ? `${done.join(", ")} upgraded` : "no host upgraded"}, the cluster's upgrade lock kept: fix it, then planet upgrade --plan ${planFile} --resume`,
    );
  };
  const failure = (h: PlanHost) => {
    const st = (state as RollState).hosts[h.name];
    return `${st?.outcome === "refused" ? "refused" : "rolled back"} (${st?.reason})`;
  };
  const todo = (role: PlanHost["role"]) =>
    plan.hosts.filter((h) => h.role === role && (state as RollState).hosts[h.name]?.outcome !== "committed");

  // Before anything: every host healthy.
  for (const h of plan.hosts) {
    const bad = await healthy(h);
    if (bad) halt(h, `not healthy, so nothing was upgraded (${bad})`);
  }
  const masters = plan.hosts.filter((h) => h.role === "master");
  for (const m of todo("master")) {
    // Stopping m must leave etcd a quorum: every other master healthy first.
    for (const other of masters.filter((x) => x !== m)) {
      const bad = await healthy(other);
      if (bad) halt(m, `master ${other.name} is not healthy (${bad}): upgrading ${m.name} now could lose etcd's quorum`);
    }
    if (!(await upgradeHost(plan, m, state))) halt(m, failure(m));
  }
  const nodes = todo("node");
  const width = Math.max(1, o.concurrency ?? plan.concurrency ?? 1);
  for (let i = 0; i < nodes.length; i += width) {
    const batch = nodes.slice(i, i + width);
    const results = await Promise.all(batch.map((n) => upgradeHost(plan, n, state as RollState)));
    const failed = batch.find((_, k) => !results[k]);
    if (failed) halt(failed, failure(failed));
  }
  state.phase = "done";
  writeRollState(state);
  // Done: the cluster's lock goes (a halted roll keeps it, so nothing else upgrades in between).
  const m0 = masters[0] as PlanHost;
  const unlock = await planetOn(m0, ["upgrade", "--unlock", "--lock-owner", state.lockOwner, ...hostArgs(m0)]);
  if (unlock.exitCode !== 0)
    log.warn(
      `the cluster's upgrade lock stays held (${unlock.stderr.trim().split("\n").at(-1)}): planet upgrade --unlock on a master`,
    );
  log.success(`cluster upgraded: ${plan.hosts.map((h) => h.name).join(", ")}`);
}
