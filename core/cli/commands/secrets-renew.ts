/**
 * `planet secrets renew`: a directory's leaves reissued before they expire, here where the directory
 * holds the CA keys (the cluster's, a master's) or through the masters for a node's; inside a bubble,
 * the units that use a renewed file are then restarted one at a time.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { renewSecrets } from "../../../secrets/check.ts";
import { loadRecord } from "../../../secrets/record.ts";
import { renewThroughMasters } from "../../../secrets/renew.ts";
import { PlanetError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { requireIp } from "../../net.ts";
import { run } from "../../proc.ts";
import { debugArg, parseValidity } from "../_args.ts";

const log = logger("secrets");

/** Masters' addresses from `name:ip,…` or `ip,…`. */
function mastersOf(text?: string): string[] {
  const ips = (text ?? "")
    .split(",")
    .filter(Boolean)
    .map((m) => m.split(":").pop() as string);
  if (!ips.length)
    throw new PlanetError(
      "BAD_FLAG",
      "a host's certificates are renewed by the masters: pass --masters ip,… (or run it inside the bubble)",
    );
  for (const ip of ips) requireIp(ip, "--masters");
  return ips;
}

/** When a unit's main process started, from systemd (microseconds), or null when it does not run. */
async function startedAt(unit: string): Promise<number | null> {
  const res = await run(["systemctl", "show", "--timestamp=us+utc", "-p", "ExecMainStartTimestamp", "--value", unit]);
  const m = /(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+)? UTC/.exec(res.stdout);
  return m ? Date.parse(`${m[1]}T${m[2]}${m[3] ?? ""}Z`) : null;
}

/**
 * Restarts, one at a time, every running unit that uses a file of `dir` (/var/state) written after
 * it started: components read their certificates, kubeconfigs and trust when they start. What uses
 * what is read from the unit's file and the config files and scripts it names (kube-proxy.yaml,
 * coredns-config…); the agent reads its API's certificates and the trust through --secrets-dir.
 */
async function restartStale(dir = "/var/state"): Promise<void> {
  const units = existsSync(UNIT_DIR) ? readdirSync(UNIT_DIR).filter((f) => f.endsWith(".service")) : [];
  const textOf = (unit: string) => {
    const text = readFileSync(join(UNIT_DIR, unit), "utf8");
    // The container environment names every host's kubeconfig (KUBECONFIG): it says nothing of the unit.
    const named = [...text.matchAll(/(\/(?:etc|usr\/lib\/planet)\/[\w./-]+)/g)]
      .map((m) => m[1] as string)
      .filter((f) => f !== "/etc/container-environment");
    const files = named.filter((f) => existsSync(f) && statSync(f).isFile());
    return [text, ...files.map((f) => readFileSync(f, "utf8"))].join("\n");
  };
  const mtime = (f: string) => (existsSync(join(dir, f)) ? statSync(join(dir, f)).mtimeMs : 0);
  const ours = readdirSync(dir).filter((f) => !f.startsWith("."));
  for (const unit of units) {
    const text = textOf(unit);
    const used = ours.filter(
      (f) =>
        text.includes(`/var/state/${f}`) ||
        (unit === "planet-agent.service" && (f.startsWith("planet-rpc") || ["root.cert", "client-ca.pem"].includes(f))),
    );
    if (!used.length) continue;
    const since = await startedAt(unit);
    const newer = since === null ? [] : used.filter((f) => mtime(f) > since);
    // A unit may say which files it reads again by itself (`X-Planet-Reloads=` in its unit file).
    const reloads = /^X-Planet-Reloads=(.*)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
    if (newer.every((f) => reloads.includes(f))) {
      if (newer.length) log.info(`${unit} reads ${newer.join(", ")} again by itself: not restarted`);
      continue;
    }
    const res = await run(["systemctl", "try-restart", unit], { timeoutMs: 120_000 });
    if (res.exitCode !== 0) log.warn(`${unit} did not restart: ${res.stderr.trim()}`);
    else log.info(`restarted ${unit} (${newer.join(", ")} changed)`);
  }
}

const UNIT_DIR = "/etc/systemd/system";

export const renewCmd = defineCommand({
  meta: { name: "renew", description: "reissue, with the same keys, leaf certificates expiring within --warn-days" },
  args: {
    ...debugArg,
    dir: { type: "positional", description: "secrets directory", required: true },
    "warn-days": { type: "string", description: "renew what expires within this many days", default: "30" },
    validity: { type: "string", description: "new validity in days (default: as issued, at least a year)" },
    masters: {
      type: "string",
      description: "a host's directory: the masters that renew it, name:ip,… or ip,… (default PLANET_INITIAL_CLUSTER)",
    },
    "restart-units": {
      type: "boolean",
      description: "inside a bubble: restart, one at a time, the units using a file of <dir> written since they started",
    },
  },
  async run({ args }) {
    if (!existsSync(join(args.dir))) throw new PlanetError("NO_SECRETS", `${args.dir} does not exist`);
    const warnDays = Number(args["warn-days"]);
    if (!Number.isFinite(warnDays) || warnDays < 0)
      throw new PlanetError("BAD_FLAG", `--warn-days ${args["warn-days"]}: expected days`);
    // A node's own directory holds no CA key: its certificates are renewed by a master. A master's
    // (and the cluster's) holds every CA's key: renewed here.
    const host = loadRecord(args.dir)?.host;
    const renewed =
      host && !host.roles.includes("master")
        ? await renewThroughMasters({
            dir: args.dir,
            masters: mastersOf(args.masters ?? process.env.PLANET_INITIAL_CLUSTER),
            port: Number(process.env.PLANET_AGENT_PORT ?? 7575),
            warnDays,
          })
        : await renewSecrets(args.dir, warnDays, args.validity ? parseValidity(args.validity) : undefined);
    log.success(renewed.length ? `renewed ${renewed.join(", ")}` : "nothing to renew");
    if (args["restart-units"]) await restartStale(args.dir);
  },
});
