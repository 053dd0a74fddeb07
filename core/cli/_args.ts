import { PlanetError } from "../errors.ts";

/** Values of a repeatable flag: `--name a --name=b --name c,d` → [a, b, c, d] (comma-split optional). */
export function multi(rawArgs: string[], name: string, opts: { split?: boolean; alias?: string } = {}): string[] {
  const out: string[] = [];
  const flags = [`--${name}`, ...(opts.alias ? [`-${opts.alias}`] : [])];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i] ?? "";
    if (a === "--") break;
    let value: string | undefined;
    if (flags.includes(a)) {
      value = rawArgs[i + 1];
      if (value === undefined || value.startsWith("--")) throw new PlanetError("BAD_FLAG", `--${name} needs a value`);
      i++;
    } else if (a.startsWith(`--${name}=`)) value = a.slice(name.length + 3);
    if (value !== undefined) out.push(...(opts.split ? value.split(",").filter(Boolean) : [value]));
  }
  return out;
}

/** `--debug` is accepted by every command. */
export const debugArg = { debug: { type: "boolean", description: "debug logging and stack traces" } } as const;

/** A validity in days: `365`, or `30d`, `12h`, `10m` (short ones are for tests of renewal). */
export function parseValidity(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(d|h|m)?$/.exec(text.trim());
  const days = m ? Number(m[1]) / { d: 1, h: 24, m: 1440 }[(m[2] ?? "d") as "d"] : Number.NaN;
  if (!(days >= 1 / 1440))
    throw new PlanetError(
      "BAD_FLAG",
      `--validity ${text}: expected days (365) or a duration such as 30d, 12h or 10m (at least 1m)`,
    );
  return days;
}
