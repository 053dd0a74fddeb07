import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve as resolvePath } from "node:path";
import { type ChartInfo, HELM_ASSET, loadPluginCharts } from "./charts.ts";
import { type ErrorCode, PlanetError } from "./errors.ts";
import { parseRef } from "./image-ref.ts";
import { checkObjects, loadPluginManifests, type ManifestFile } from "./kube/apply.ts";
import { isCertificate, type PluginDef, ROLES, type Role, type UnitDef } from "./plugin.ts";
import { BASE_UNITS, parseUnit, referencedUnits, UnitParseError } from "./units.ts";

/** A build target: which plugins an image carries and which roles it can start as. */
export interface TargetDef {
  description: string;
  /** Roles the image starts as by default (`dev` is both on one host). */
  roles: Role[];
  plugins: string[];
  /**
   * A bundle for the host instead of a bubble image (`build/<target>/`: `bundle.json`, the plugins'
   * images as OCI layouts under `images/`, and the files of these assets): e.g. the conformance
   * bundle, whose images `planet test --conformance` imports into a running cluster.
   */
  bundle?: { assets: string[] };
}

export interface ResolveInput {
  target: string;
  targets: Record<string, TargetDef>;
  /** The in-tree registry (`plugins/index.ts`). */
  registry: readonly PluginDef[];
  /** Folder holding the in-tree plugin folders. */
  pluginsDir: string;
  /** Out-of-tree plugin folders (`--plugin ./dir`). */
  external?: string[];
  /** Plugin names left out (`--without name`). */
  without?: string[];
  /** Asset recipe names known to the build. */
  assets: readonly string[];
  /** Units the base rootfs overlay ships (so plugins may refer to them). */
  baseUnits?: readonly string[];
}

/** A plugin after resolution: normalised units, known folder. */
export interface ResolvedPlugin {
  def: PluginDef;
  /** Absolute folder of the plugin. */
  dir: string;
  /** `true` for `--plugin ./dir` plugins. */
  external: boolean;
  units: Required<UnitDef>[];
  /** Its validated `manifests/` files, when it ships any. */
  manifests: ManifestFile[];
  /** Its validated `charts/`, when it ships any. */
  charts: ChartInfo[];
}

export interface Resolution {
  target: string;
  roles: Role[];
  /** In dependency order (requirements first). */
  plugins: ResolvedPlugin[];
  /** Set for a bundle target (see TargetDef.bundle). */
  bundle?: { assets: string[] };
}

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const PHASE = "resolve";

function err(code: ErrorCode, message: string, plugin?: string): PlanetError {
  return new PlanetError(code, message, { plugin, phase: PHASE });
}

const contractFor = new Set<string>();

/**
 * Makes `planet/plugin` resolve to this checkout's contract in a plugin folder anywhere on disk
 * (it has no node_modules of its own; inside the checkout package.json's `exports` does it). Bun's
 * runtime plugins do not resolve bare specifiers, so the folder's TypeScript is loaded with the
 * specifier pointed at the contract's file.
 */
function shareContract(dir: string): void {
  if (contractFor.has(dir)) return;
  contractFor.add(dir);
  const contract = join(import.meta.dir, "plugin.ts");
  const filter = new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/.*\\.ts$`);
  Bun.plugin({
    name: `planet-plugin-contract:${dir}`,
    setup(build) {
      build.onLoad({ filter }, async ({ path }) => ({
        contents: (await Bun.file(path).text()).replace(/(["'])planet\/plugin\1/g, JSON.stringify(contract)),
        loader: "ts",
      }));
    },
  });
}

/** Loads an out-of-tree plugin folder: `index.ts` default-exporting `definePlugin({...})`. */
export async function loadPluginDir(dir: string): Promise<{ def: PluginDef; dir: string }> {
  const abs = resolvePath(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw err("PLUGIN_NOT_FOUND", `plugin folder ${abs} does not exist`);
  const index = join(abs, "index.ts");
  if (!existsSync(index)) throw err("PLUGIN_NO_INDEX", `plugin folder ${abs} has no index.ts`);
  let mod: { default?: unknown };
  shareContract(abs);
  try {
    mod = await import(index);
  } catch (e) {
    throw err("PLUGIN_INVALID", `${index} does not load: ${(e as Error).message}`, basename(abs));
  }
  if (!mod.default || typeof mod.default !== "object")
    throw err("PLUGIN_INVALID", `${index} must default-export definePlugin({...})`, basename(abs));
  return { def: mod.default as PluginDef, dir: abs };
}

/** Shape checks a type system cannot make for plugins loaded at run time. */
export function validateShape(def: PluginDef, folder: string): void {
  const name = typeof def.name === "string" ? def.name : folder;
  if (typeof def.name !== "string" || !NAME.test(def.name))
    throw err("PLUGIN_INVALID", `name ${JSON.stringify(def.name)} is not kebab-case`, name);
  if (def.name !== folder) throw err("PLUGIN_INVALID", `name "${def.name}" must equal its folder "${folder}"`, name);
  if (typeof def.description !== "string" || !def.description) throw err("PLUGIN_INVALID", "description is required", name);
  if (!Array.isArray(def.roles) || def.roles.length === 0 || def.roles.some((r) => !ROLES.includes(r)))
    throw err("PLUGIN_INVALID", `roles must be a non-empty list of ${ROLES.join("|")}`, name);
  for (const key of ["requires", "assets", "packages", "units", "certs", "checks", "images", "ports"] as const)
    if (def[key] !== undefined && !Array.isArray(def[key])) throw err("PLUGIN_INVALID", `${key} must be a list`, name);
  for (const key of ["files", "env", "volumes"] as const)
    if (def[key] !== undefined && (typeof def[key] !== "object" || Array.isArray(def[key])))
      throw err("PLUGIN_INVALID", `${key} must be an object`, name);
  for (const [k, v] of Object.entries(def.env ?? {}))
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k) || typeof v !== "string")
      throw err("PLUGIN_INVALID", `env ${k} must be UPPER_SNAKE with a string value`, name);
  for (const [v, path] of Object.entries(def.volumes ?? {}))
    if (!NAME.test(v) || v === "state" || typeof path !== "string" || !path.startsWith("/") || path.includes(".."))
      throw err("PLUGIN_INVALID", `volume ${v}: a kebab-case name (not "state", the core's) and an absolute path`, name);
  for (const img of def.images ?? []) {
    for (const ref of [img.ref, ...(img.aliases ?? [])])
      try {
        parseRef(ref);
      } catch (e) {
        throw err("PLUGIN_INVALID", (e as Error).message, name);
      }
    if (typeof img.path !== "string" || !img.path.startsWith("/"))
      throw err("PLUGIN_INVALID", `image ${img.ref}: path must be an absolute folder in the image`, name);
  }
  for (const c of def.checks ?? []) {
    if (!c.name || !NAME.test(c.name))
      throw err("PLUGIN_INVALID", `check name ${JSON.stringify(c.name)} is not kebab-case`, name);
    // `planet status` groups checks by plugin; `host-*` belongs to the agent's own host checks.
    if (!c.name.startsWith(`${name}-`)) throw err("PLUGIN_INVALID", `check ${c.name}: its name must start with "${name}-"`, name);
  }
}

function normaliseUnits(def: PluginDef): Required<UnitDef>[] {
  return (def.units ?? []).map((u) => {
    const unit = typeof u === "string" ? { name: u } : u;
    return { name: unit.name, roles: unit.roles ?? def.roles, enabled: unit.enabled ?? true };
  });
}

/** Destination paths of a plugin's overlay folders, relative to `/`. */
export function overlayPaths(plugin: { def: PluginDef; dir: string }): Map<string, string> {
  const out = new Map<string, string>();
  for (const [from, to] of Object.entries(plugin.def.files ?? {})) {
    const src = join(plugin.dir, from);
    if (!existsSync(src)) throw err("PLUGIN_INVALID", `files: ${from} does not exist in ${plugin.dir}`, plugin.def.name);
    const walk = (dir: string, dest: string) => {
      for (const ent of readdirSync(dir, { withFileTypes: true })) {
        const s = join(dir, ent.name);
        const d = join(dest, ent.name);
        if (ent.isDirectory()) walk(s, d);
        else out.set(d, s);
      }
    };
    if (statSync(src).isDirectory()) walk(src, to);
    else out.set(to, src);
  }
  return out;
}

/** Where plugin units are installed in the rootfs: the admin dir, so they override (never clobber) units of Debian packages. */
export const UNIT_DIR = "/etc/systemd/system";

/**
 * Resolves a target's plugin set and validates the whole graph before anything is written:
 * unknown target/plugin/asset, missing requirement, requirement cycle, file conflicts, duplicate
 * unit/check/cert names, unit files that do not parse or refer to units nobody ships.
 */
export async function resolvePlugins(input: ResolveInput): Promise<Resolution> {
  const target = input.targets[input.target];
  if (!target)
    throw new PlanetError(
      "UNKNOWN_TARGET",
      `unknown target "${input.target}" (known: ${Object.keys(input.targets).join(", ")})`,
      { phase: PHASE },
    );
  const registry = new Map(input.registry.map((d) => [d.name, d]));
  for (const w of input.without ?? [])
    if (!registry.has(w) && !target.plugins.includes(w))
      throw err("UNKNOWN_PLUGIN", `--without ${w}: no such plugin (known: ${[...registry.keys()].join(", ")})`);

  const chosen = new Map<string, { def: PluginDef; dir: string; external: boolean }>();
  for (const name of target.plugins) {
    if ((input.without ?? []).includes(name)) continue;
    const def = registry.get(name);
    if (!def) throw err("UNKNOWN_PLUGIN", `target "${input.target}" lists unknown plugin "${name}"`);
    chosen.set(name, { def, dir: join(input.pluginsDir, name), external: false });
  }
  for (const dir of input.external ?? []) {
    const loaded = await loadPluginDir(dir);
    validateShape(loaded.def, basename(loaded.dir));
    if (chosen.has(loaded.def.name))
      throw err("DUPLICATE_PLUGIN", `plugin "${loaded.def.name}" is already in the image`, loaded.def.name);
    chosen.set(loaded.def.name, { ...loaded, external: true });
  }
  for (const p of chosen.values()) {
    validateShape(p.def, basename(p.dir));
    if (!existsSync(p.dir)) throw err("PLUGIN_NOT_FOUND", `plugin folder ${p.dir} does not exist`, p.def.name);
  }

  // Requirements: present, and acyclic. Order = depth-first, requirements first.
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, path: string[]) => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting")
      throw err("REQUIREMENT_CYCLE", `requirement cycle: ${[...path.slice(path.indexOf(name)), name].join(" → ")}`, name);
    state.set(name, "visiting");
    const p = chosen.get(name);
    for (const req of p?.def.requires ?? []) {
      if (!chosen.has(req))
        throw err(
          "MISSING_REQUIREMENT",
          `requires "${req}", which is not in the image${input.without?.includes(req) ? " (left out by --without)" : ""}`,
          name,
        );
      visit(req, [...path, name]);
    }
    state.set(name, "done");
    order.push(name);
  };
  for (const name of [...chosen.keys()].sort()) visit(name, []);

  const plugins: ResolvedPlugin[] = order.map((name) => {
    const p = chosen.get(name);
    if (!p) throw err("INTERNAL", `lost plugin ${name}`);
    return { ...p, units: normaliseUnits(p.def), manifests: [], charts: [] };
  });

  const assets = new Set(input.assets);
  const owner = {
    unit: new Map<string, string>(),
    check: new Map<string, string>(),
    cert: new Map<string, string>(),
    path: new Map<string, string>(),
    env: new Map<string, string>(),
    volume: new Map<string, string>(),
    chart: new Map<string, string>(),
  };
  const claim = (kind: keyof typeof owner, key: string, plugin: string, code: ErrorCode, what: string) => {
    const prev = owner[kind].get(key);
    if (prev !== undefined) throw err(code, `${what} ${key} is also shipped by plugin "${prev}"`, plugin);
    owner[kind].set(key, plugin);
  };
  const parsed = new Map<string, ReturnType<typeof parseUnit>>();
  for (const p of plugins) {
    const name = p.def.name;
    for (const a of p.def.assets ?? [])
      if (!assets.has(a)) throw err("UNKNOWN_ASSET", `asset "${a}" has no recipe in build.assets/`, name);
    for (const u of p.units) {
      claim("unit", u.name, name, "DUPLICATE_UNIT", "unit");
      const file = join(p.dir, u.name);
      if (!existsSync(file)) throw err("UNIT_MISSING", `unit ${u.name} is listed but ${file} does not exist`, name);
      try {
        parsed.set(u.name, parseUnit(readFileSync(file, "utf8"), u.name));
      } catch (e) {
        if (e instanceof UnitParseError) throw err("UNIT_PARSE", `${u.name} ${e.message}`, name);
        throw e;
      }
      claim("path", join(UNIT_DIR, u.name), name, "FILE_CONFLICT", "path");
    }
    for (const dest of overlayPaths(p).keys()) claim("path", dest, name, "FILE_CONFLICT", "path");
    for (const c of p.def.checks ?? []) claim("check", c.name, name, "DUPLICATE_CHECK", "check");
    for (const c of p.def.certs ?? []) claim("cert", c.name, name, "DUPLICATE_CERT", "cert");
    // Two defaults for one variable: which wins would depend on plugin order. Users override at start (--env).
    for (const k of Object.keys(p.def.env ?? {})) claim("env", k, name, "ENV_CONFLICT", "env default");
    for (const [v, path] of Object.entries(p.def.volumes ?? {})) {
      claim("volume", v, name, "DUPLICATE_VOLUME", "volume");
      claim("path", path, name, "DUPLICATE_VOLUME", "volume path");
    }
    if (p.def.manifests) p.manifests = loadPluginManifests(name, join(p.dir, p.def.manifests));
    if (p.def.charts) {
      // Charts become releases through helm, which a plugin of the image must carry (the helm plugin).
      if (!plugins.some((q) => q.def.assets?.includes(HELM_ASSET)))
        throw err(
          "MISSING_REQUIREMENT",
          `ships charts, but no plugin of the image carries the ${HELM_ASSET} asset (add the helm plugin)`,
          name,
        );
      p.charts = loadPluginCharts(name, join(p.dir, p.def.charts));
      for (const c of p.charts) claim("chart", c.name, name, "DUPLICATE_CHART", "chart");
    }
  }
  // Every plugin's object rules over every plugin's manifests.
  const rules = plugins.flatMap((p) => p.def.validates ?? []);
  if (rules.length)
    for (const p of plugins) if (p.def.manifests) checkObjects(p.def.name, join(p.dir, p.def.manifests), p.manifests, rules);
  // Cross references, once every name is known.
  const known = new Set([...BASE_UNITS, ...(input.baseUnits ?? []), ...owner.unit.keys()]);
  for (const p of plugins) {
    for (const u of p.units)
      for (const ref of referencedUnits(parsed.get(u.name) ?? { sections: new Map() }))
        if (!known.has(ref) && !ref.includes("@"))
          throw err("UNIT_UNKNOWN_REFERENCE", `${u.name} refers to ${ref}, which no plugin ships`, p.def.name);
    for (const c of p.def.checks ?? [])
      if ("http" in c && c.tls && !owner.cert.has(c.tls))
        throw err("UNKNOWN_CERT", `check ${c.name} uses cert "${c.tls}", which no plugin requests`, p.def.name);
    for (const c of (p.def.certs ?? []).filter(isCertificate))
      if (c.issuer && c.issuer !== "root" && !owner.cert.has(c.issuer))
        throw err("UNKNOWN_CERT", `cert ${c.name} is issued by "${c.issuer}", which no plugin requests`, p.def.name);
  }
  return { target: input.target, roles: target.roles, plugins, ...(target.bundle ? { bundle: target.bundle } : {}) };
}
