import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PlanetError } from "./errors.ts";
import type { PluginDef } from "./plugin.ts";
import { loadPluginDir, type ResolveInput, resolvePlugins } from "./resolve.ts";

const root = mkdtempSync(join(tmpdir(), "planet-resolve-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SERVICE = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n";

/** Writes a plugin folder: index.ts exporting `def`, unit files, and overlay files. */
function plugin(
  base: string,
  def: Partial<PluginDef> & { name: string },
  extra: { units?: Record<string, string>; files?: Record<string, string>; noIndex?: boolean; folder?: string } = {},
): string {
  const dir = join(base, extra.folder ?? def.name);
  mkdirSync(dir, { recursive: true });
  const full = { description: `${def.name} plugin`, roles: ["master"], ...def };
  if (!extra.noIndex) writeFileSync(join(dir, "index.ts"), `export default ${JSON.stringify(full)};\n`);
  for (const [name, text] of Object.entries(extra.units ?? {})) writeFileSync(join(dir, name), text);
  for (const [path, text] of Object.entries(extra.files ?? {})) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

let n = 0;
/** A fresh in-tree registry of plugins and a `t` target holding all of them. */
function setup(defs: (Partial<PluginDef> & { name: string })[], extras: Parameters<typeof plugin>[2][] = []) {
  const dir = join(root, `case-${n++}`);
  const registry: PluginDef[] = defs.map((d, i) => {
    plugin(dir, d, extras[i]);
    return { description: `${d.name} plugin`, roles: ["master"], ...d } as PluginDef;
  });
  const input: ResolveInput = {
    target: "t",
    targets: { t: { description: "test", roles: ["master"], plugins: defs.map((d) => d.name) } },
    registry,
    pluginsDir: dir,
    assets: ["known-asset"],
  };
  return { dir, input };
}

async function code(input: ResolveInput): Promise<string> {
  try {
    await resolvePlugins(input);
  } catch (e) {
    expect(e).toBeInstanceOf(PlanetError);
    const err = e as PlanetError;
    expect(err.phase).toBe("resolve");
    return err.code;
  }
  return "OK";
}

describe("resolvePlugins", () => {
  test("orders requirements first and normalises units", async () => {
    const { input } = setup(
      [
        { name: "b", requires: ["a"], units: ["b.service"] },
        { name: "a", units: [{ name: "a.service", roles: ["node"], enabled: false }] },
      ],
      [{ units: { "b.service": SERVICE.replace("[Unit]\n", "[Unit]\nAfter=a.service\n") } }, { units: { "a.service": SERVICE } }],
    );
    const res = await resolvePlugins(input);
    expect(res.plugins.map((p) => p.def.name)).toEqual(["a", "b"]);
    expect(res.plugins[0]?.units).toEqual([{ name: "a.service", roles: ["node"], enabled: false }]);
    expect(res.plugins[1]?.units).toEqual([{ name: "b.service", roles: ["master"], enabled: true }]);
  });

  test("UNKNOWN_TARGET", async () => {
    const { input } = setup([{ name: "a" }]);
    expect(await code({ ...input, target: "nope" })).toBe("UNKNOWN_TARGET");
  });

  test("UNKNOWN_PLUGIN: target lists a plugin nobody registered", async () => {
    const { input } = setup([{ name: "a" }]);
    input.targets.t?.plugins.push("ghost");
    expect(await code(input)).toBe("UNKNOWN_PLUGIN");
  });

  test("UNKNOWN_PLUGIN: --without names nothing", async () => {
    const { input } = setup([{ name: "a" }]);
    expect(await code({ ...input, without: ["ghost"] })).toBe("UNKNOWN_PLUGIN");
  });

  test("MISSING_REQUIREMENT, also when left out with --without", async () => {
    const { input } = setup([{ name: "a", requires: ["zzz"] }]);
    expect(await code(input)).toBe("MISSING_REQUIREMENT");
    const two = setup([{ name: "a" }, { name: "b", requires: ["a"] }]);
    await expect(resolvePlugins({ ...two.input, without: ["a"] })).rejects.toThrow(/left out by --without/);
  });

  test("REQUIREMENT_CYCLE names the cycle", async () => {
    const { input } = setup([
      { name: "a", requires: ["c"] },
      { name: "b", requires: ["a"] },
      { name: "c", requires: ["b"] },
    ]);
    await expect(resolvePlugins(input)).rejects.toThrow(/cycle: a → c → b → a/);
  });

  test("FILE_CONFLICT: two plugins write one path", async () => {
    const { input } = setup(
      [
        { name: "a", files: { "files/": "/" } },
        { name: "b", files: { "files/": "/" } },
      ],
      [{ files: { "files/etc/x.conf": "a" } }, { files: { "files/etc/x.conf": "b" } }],
    );
    const err = (await resolvePlugins(input).catch((e) => e)) as PlanetError;
    expect(err.code).toBe("FILE_CONFLICT");
    expect(err.plugin).toBe("b");
    expect(err.message).toContain("/etc/x.conf");
  });

  test("volumes: a name and an absolute path each, owned by one plugin", async () => {
    const dup = setup([
      { name: "a", volumes: { data: "/ext/data" } },
      { name: "b", volumes: { data: "/ext/other" } },
    ]);
    expect(((await resolvePlugins(dup.input).catch((e) => e)) as PlanetError).code).toBe("DUPLICATE_VOLUME");
    const samePath = setup([
      { name: "a", volumes: { one: "/ext/data" } },
      { name: "b", volumes: { two: "/ext/data" } },
    ]);
    expect(((await resolvePlugins(samePath.input).catch((e) => e)) as PlanetError).message).toBe(
      'volume path /ext/data is also shipped by plugin "a"',
    );
    for (const volumes of [{ data: "relative" }, { State_: "/x" }, { state: "/ext/mine" }] as Record<string, string>[]) {
      const bad = setup([{ name: "a", volumes }]);
      expect(((await resolvePlugins(bad.input).catch((e) => e)) as PlanetError).code).toBe("PLUGIN_INVALID");
    }
  });

  test("images: every reference names its registry, the folder is absolute — refused before anything is built", async () => {
    const bad = setup([{ name: "a", images: [{ ref: "busybox:latest", path: "/usr/share/planet/images/bb" }] }]);
    const e = (await resolvePlugins(bad.input).catch((x) => x)) as PlanetError;
    expect([e.code, e.plugin]).toEqual(["PLUGIN_INVALID", "a"]);
    expect(e.message).toContain("image reference busybox:latest: expected registry/name:tag");
    const alias = setup([{ name: "a", images: [{ ref: "docker.io/library/bb:1", aliases: ["bb"], path: "/x" }] }]);
    expect(((await resolvePlugins(alias.input).catch((x) => x)) as PlanetError).message).toContain("image reference bb:");
    const rel = setup([{ name: "a", images: [{ ref: "docker.io/library/bb:1", path: "images/bb" }] }]);
    expect(((await resolvePlugins(rel.input).catch((x) => x)) as PlanetError).message).toContain("path must be an absolute");
  });

  test("ENV_CONFLICT: two plugins default one variable", async () => {
    const { input } = setup([
      { name: "a", env: { PORT_X: "1" } },
      { name: "b", env: { PORT_X: "2" } },
    ]);
    const err = (await resolvePlugins(input).catch((e) => e)) as PlanetError;
    expect(err.code).toBe("ENV_CONFLICT");
    expect(err.plugin).toBe("b");
    expect(err.message).toBe('env default PORT_X is also shipped by plugin "a"');
  });

  test("DUPLICATE_UNIT / DUPLICATE_CHECK / DUPLICATE_CERT", async () => {
    const units = setup(
      [
        { name: "a", units: ["x.service"] },
        { name: "b", units: ["x.service"] },
      ],
      [{ units: { "x.service": SERVICE } }, { units: { "x.service": SERVICE } }],
    );
    expect(await code(units.input)).toBe("DUPLICATE_UNIT");
    const checks = setup([
      {
        name: "a",
        checks: [
          { name: "a-c1", tcp: "127.0.0.1:1" },
          { name: "a-c1", unit: "x.service" },
        ],
      },
    ]);
    expect(await code(checks.input)).toBe("DUPLICATE_CHECK");
    // Another plugin cannot even name it: a check's name starts with its plugin's.
    const foreign = setup([{ name: "a" }, { name: "b", checks: [{ name: "a-c1", unit: "x.service" }] }]);
    expect(((await resolvePlugins(foreign.input).catch((e) => e)) as PlanetError).message).toBe(
      'check a-c1: its name must start with "b-"',
    );
    const certs = setup([
      { name: "a", certs: [{ name: "k", cn: "k", usage: ["client"] }] },
      { name: "b", certs: [{ name: "k", cn: "k2", usage: ["server"] }] },
    ]);
    expect(await code(certs.input)).toBe("DUPLICATE_CERT");
  });

  test("UNIT_UNKNOWN_REFERENCE, with base units allowed", async () => {
    const bad = setup(
      [{ name: "a", units: ["x.service"] }],
      [{ units: { "x.service": SERVICE.replace("[Unit]\n", "[Unit]\nWants=ghost.service\n") } }],
    );
    await expect(resolvePlugins(bad.input)).rejects.toThrow(/x.service refers to ghost.service/);
    const ok = setup(
      [{ name: "a", units: ["x.service"] }],
      [{ units: { "x.service": SERVICE.replace("[Unit]\n", "[Unit]\nAfter=network.target planet-sysctl.service\n") } }],
    );
    expect(await code({ ...ok.input, baseUnits: ["planet-sysctl.service"] })).toBe("OK");
  });

  test("UNIT_PARSE and UNIT_MISSING", async () => {
    const parse = setup([{ name: "a", units: ["x.service"] }], [{ units: { "x.service": "[Service]\nExecStart /bin/true\n" } }]);
    await expect(resolvePlugins(parse.input)).rejects.toThrow(/x.service line 2: expected Key=Value/);
    const section = setup([{ name: "a", units: ["x.service"] }], [{ units: { "x.service": "[Timer]\nOnCalendar=daily\n" } }]);
    expect(await code(section.input)).toBe("UNIT_PARSE");
    const missing = setup([{ name: "a", units: ["x.service"] }]);
    expect(await code(missing.input)).toBe("UNIT_MISSING");
  });

  test("UNKNOWN_ASSET and UNKNOWN_CERT", async () => {
    const asset = setup([{ name: "a", assets: ["nope"] }]);
    expect(await code(asset.input)).toBe("UNKNOWN_ASSET");
    const cert = setup([{ name: "a", checks: [{ name: "a-h", http: "https://127.0.0.1/", tls: "ghost" }] }]);
    expect(await code(cert.input)).toBe("UNKNOWN_CERT");
  });

  test("PLUGIN_INVALID: name must equal its folder and be kebab-case", async () => {
    const { input } = setup([{ name: "a" }]);
    const ext = plugin(join(root, "ext"), { name: "other" }, { folder: "not-other" });
    expect(await code({ ...input, external: [ext] })).toBe("PLUGIN_INVALID");
    const bad = plugin(join(root, "ext"), { name: "Bad_Name" });
    expect(await code({ ...input, external: [bad] })).toBe("PLUGIN_INVALID");
  });

  test("a plugin outside the checkout imports the contract from its published entry, planet/plugin", async () => {
    const dir = join(tmpdir(), `planet-outside-${process.pid}`, "outside");
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(
        join(dir, "index.ts"),
        'import { definePlugin } from "planet/plugin";\nexport default definePlugin({ name: "outside", description: "d", roles: ["node"] });\n',
      );
      const loaded = await loadPluginDir(dir);
      expect(loaded.def).toMatchObject({ name: "outside", roles: ["node"] });
    } finally {
      rmSync(join(dir, ".."), { recursive: true, force: true });
    }
  });

  test("external plugins: PLUGIN_NO_INDEX, PLUGIN_NOT_FOUND, DUPLICATE_PLUGIN, and success", async () => {
    const { input } = setup([{ name: "a" }]);
    const noIndex = plugin(join(root, "ext2"), { name: "empty" }, { noIndex: true });
    expect(await code({ ...input, external: [noIndex] })).toBe("PLUGIN_NO_INDEX");
    expect(await code({ ...input, external: [join(root, "nowhere")] })).toBe("PLUGIN_NOT_FOUND");
    const dup = plugin(join(root, "ext3"), { name: "a" });
    expect(await code({ ...input, external: [dup] })).toBe("DUPLICATE_PLUGIN");
    const good = plugin(
      join(root, "ext4"),
      { name: "mine", requires: ["a"], units: ["mine.service"] },
      { units: { "mine.service": SERVICE } },
    );
    const res = await resolvePlugins({ ...input, external: [good] });
    expect(res.plugins.find((p) => p.def.name === "mine")?.external).toBe(true);
  });
});
