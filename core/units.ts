/**
 * A reader for systemd unit files, strict enough to catch what `systemd-analyze verify` would
 * reject at parse level (no section, no `=`, unknown section for the unit type) and to list the
 * units a file depends on.
 */

export interface UnitFile {
  /** Section → key → values (a key may repeat). */
  sections: Map<string, Map<string, string[]>>;
}

export class UnitParseError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const TYPE_SECTIONS: Record<string, string> = {
  service: "Service",
  socket: "Socket",
  timer: "Timer",
  mount: "Mount",
  automount: "Automount",
  path: "Path",
  slice: "Slice",
  scope: "Scope",
  swap: "Swap",
  target: "",
  device: "",
};

export function unitType(name: string): string {
  return name.slice(name.lastIndexOf(".") + 1);
}

export function parseUnit(text: string, name: string): UnitFile {
  const type = unitType(name);
  if (!(type in TYPE_SECTIONS)) throw new UnitParseError(0, `unknown unit type ".${type}"`);
  const allowed = new Set(["Unit", "Install", TYPE_SECTIONS[type]].filter(Boolean));
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] ?? "").trim();
    const lineNo = i + 1;
    // Continuation lines: a trailing backslash joins the next line.
    while (line.endsWith("\\") && i + 1 < lines.length) {
      i++;
      line = `${line.slice(0, -1)} ${(lines[i] ?? "").trim()}`;
    }
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    if (line.startsWith("[")) {
      const m = /^\[([A-Za-z0-9-]+)\]$/.exec(line);
      if (!m?.[1]) throw new UnitParseError(lineNo, `malformed section header ${line}`);
      const sec = m[1];
      if (!allowed.has(sec) && !sec.startsWith("X-"))
        throw new UnitParseError(lineNo, `section [${sec}] does not belong in a .${type} unit`);
      current = sections.get(sec) ?? new Map();
      sections.set(sec, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new UnitParseError(lineNo, `expected Key=Value, got "${line}"`);
    if (!current) throw new UnitParseError(lineNo, "assignment outside of any section");
    const key = line.slice(0, eq).trim();
    // Keys of our own start with X- (systemd ignores them), as sections may.
    if (!/^(X-[A-Za-z0-9-]+|[A-Za-z][A-Za-z0-9]*)$/.test(key)) throw new UnitParseError(lineNo, `invalid key "${key}"`);
    const values = current.get(key) ?? [];
    values.push(line.slice(eq + 1).trim());
    current.set(key, values);
  }
  if (type === "service" && !sections.get("Service")?.has("ExecStart")) {
    const st = sections.get("Service")?.get("Type")?.at(-1);
    if (st !== "oneshot") throw new UnitParseError(0, "service has no ExecStart=");
  }
  return { sections };
}

/** Dependency keys whose targets must exist in the image. */
export const REFERENCE_KEYS = ["After", "Before", "Wants", "Requires", "BindsTo", "PartOf", "Requisite"] as const;

/** Units named in `[Unit]` dependency keys (space-separated lists, empty resets ignored). */
export function referencedUnits(unit: UnitFile): string[] {
  const sec = unit.sections.get("Unit");
  if (!sec) return [];
  const out = new Set<string>();
  for (const key of REFERENCE_KEYS)
    for (const value of sec.get(key) ?? []) for (const name of value.split(/\s+/)) if (name) out.add(name);
  return [...out];
}

/**
 * Units that a Debian bookworm base with systemd always has; a plugin may refer to them without
 * shipping them.
 */
export const BASE_UNITS = new Set([
  "basic.target",
  "dbus.service",
  "dbus.socket",
  "default.target",
  "local-fs.target",
  "multi-user.target",
  "network-online.target",
  "network-pre.target",
  "network.target",
  "nss-lookup.target",
  "paths.target",
  "remote-fs.target",
  "shutdown.target",
  "slices.target",
  "sockets.target",
  "sysinit.target",
  "system.slice",
  "systemd-journald.service",
  "systemd-journald.socket",
  "systemd-tmpfiles-setup.service",
  "time-sync.target",
  "timers.target",
]);
