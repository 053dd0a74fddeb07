/** The plugin contract, checked over every in-tree plugin and example (rollup's sample folders). */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { recipeNames, targets } from "../build.assets/index.ts";
import { validateCheck } from "../core/agent/checks.ts";
import { BASE_OVERLAY_UNITS } from "../core/cli/_project.ts";
import { loadPluginDir, resolvePlugins, validateShape } from "../core/resolve.ts";
import { parseUnit } from "../core/units.ts";
import { plugins, pluginsDir } from "./index.ts";

const UNIT_FILE = /\.(service|timer|socket|target|path|mount)$/;

describe.each(plugins.map((p) => [p.name, p] as const))("plugin %s", (name, def) => {
  const dir = join(pluginsDir, name);

  test("name = folder, and its index.ts exports this very definition", async () => {
    expect(existsSync(join(dir, "index.ts"))).toBe(true);
    const loaded = await loadPluginDir(dir);
    expect(loaded.def).toBe(def);
    validateShape(def, name);
  });

  test("every unit file beside it is listed and parses; every listed unit exists", () => {
    const listed = (def.units ?? []).map((u) => (typeof u === "string" ? u : u.name)).sort();
    const onDisk = readdirSync(dir)
      .filter((f) => UNIT_FILE.test(f))
      .sort();
    expect(onDisk).toEqual(listed);
    for (const u of listed) {
      const unit = parseUnit(readFileSync(join(dir, u), "utf8"), u);
      expect(unit.sections.get("Unit")?.get("Description")?.[0]).toBeTruthy();
    }
  });

  test("checks and certs are well formed", () => {
    // The agent's own validation: a check it would skip at run time fails here.
    for (const c of def.checks ?? [])
      expect({ check: c.name, problem: validateCheck(c) }).toEqual({ check: c.name, problem: null });
    for (const c of def.certs ?? []) {
      expect(c.name).toMatch(/^[a-z][a-z0-9-]*$/);
      // A trust bundle is made of CAs; everything else says what it is for.
      if ("bundle" in c) expect(c.bundle.length).toBeGreaterThan(0);
      if ("usage" in c) expect(c.usage.length).toBeGreaterThan(0);
    }
    for (const a of def.assets ?? []) expect(recipeNames).toContain(a);
  });

  test("belongs to a target", () => {
    expect(Object.values(targets).some((t) => t.plugins.includes(name))).toBe(true);
  });
});

describe.each(Object.keys(targets))("target %s", (target) => {
  test("resolves: requirements, references, no conflicts", async () => {
    const res = await resolvePlugins({
      target,
      targets,
      registry: plugins,
      pluginsDir,
      assets: recipeNames,
      baseUnits: BASE_OVERLAY_UNITS,
    });
    expect(res.plugins.map((p) => p.def.name).sort()).toEqual([...(targets[target]?.plugins ?? [])].sort());
  });
});

describe("examples", () => {
  const examples = join(import.meta.dir, "../examples");
  test.each(readdirSync(examples))("%s is a valid out-of-tree plugin for the dev target", async (ex) => {
    const res = await resolvePlugins({
      target: "dev",
      targets,
      registry: plugins,
      pluginsDir,
      assets: recipeNames,
      baseUnits: BASE_OVERLAY_UNITS,
      external: [join(examples, ex)],
    });
    expect(res.plugins.find((p) => p.def.name === ex)?.external).toBe(true);
  });
});
