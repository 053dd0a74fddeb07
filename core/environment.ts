import { PlanetError } from "./errors.ts";

/**
 * Expands `${NAME}` references between variables (plugin defaults refer to flag values, e.g.
 * `ETCD_INITIAL_CLUSTER: "${PLANET_ETCD_MEMBER_NAME}=https://${PLANET_PUBLIC_IP}:2380"`), because
 * systemd's EnvironmentFile= does not. Unknown names expand to "", a cycle is an error.
 */
export function expandEnv(vars: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  const visiting = new Set<string>();
  const resolve = (name: string): string => {
    if (name in out) return out[name] as string;
    const raw = vars[name];
    if (raw === undefined) return "";
    if (visiting.has(name))
      throw new PlanetError("ENV_CYCLE", `environment variable ${name} refers to itself`, { phase: "start" });
    visiting.add(name);
    const value = raw.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, ref: string) => resolve(ref));
    visiting.delete(name);
    out[name] = value;
    return value;
  };
  for (const name of Object.keys(vars)) resolve(name);
  return out;
}

/** `NAME="value"` lines as systemd's EnvironmentFile= and shells both read them. */
export function formatEnvFile(vars: Record<string, string>): string {
  return Object.entries(vars)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$/g, "\\$").replace(/`/g, "\\`")}"`)
    .join("\n")
    .concat("\n");
}

/** Parses what formatEnvFile wrote. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2].replace(/\\(.)/g, "$1");
  }
  return out;
}

/** `name=value` from `--env`; a missing `=` is a usage error. */
export function parseEnvPair(pair: string): [string, string] {
  const eq = pair.indexOf("=");
  if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(pair.slice(0, eq)))
    throw new PlanetError("BAD_FLAG", `--env ${pair}: expected NAME=value`);
  return [pair.slice(0, eq), pair.slice(eq + 1)];
}
