import { defineCommand } from "citty";
import { PlanetError } from "../../errors.ts";
import { checkKind } from "../../plugin.ts";
import { debugArg, multi } from "../_args.ts";
import { resolveTarget, targets } from "../_project.ts";

const shared = {
  ...debugArg,
  target: { type: "string", description: "dev | master | node", default: "dev" },
  plugin: { type: "string", description: "out-of-tree plugin folder (repeatable)" },
  without: { type: "string", description: "leave a plugin out (repeatable)" },
  json: { type: "boolean", description: "machine-readable output" },
} as const;

const list = defineCommand({
  meta: { name: "list", description: "the plugins of a target, in dependency order" },
  args: shared,
  async run({ args, rawArgs }) {
    const res = await resolveTarget(args.target, multi(rawArgs, "plugin"), multi(rawArgs, "without"));
    if (args.json) {
      process.stdout.write(
        `${JSON.stringify(res.plugins.map((p) => ({ name: p.def.name, roles: p.def.roles, external: p.external })))}\n`,
      );
      return;
    }
    const width = Math.max(...res.plugins.map((p) => p.def.name.length));
    const lines = res.plugins.map(
      (p) =>
        `${p.def.name.padEnd(width)}  ${p.def.roles.join(",").padEnd(11)} ${p.external ? "(external) " : ""}${p.def.description}`,
    );
    process.stdout.write(`target ${args.target} — ${targets[args.target]?.description}\n${lines.join("\n")}\n`);
  },
});

const show = defineCommand({
  meta: { name: "show", description: "what each plugin contributes: units per role, files, env, certs, checks, assets" },
  args: { ...shared, name: { type: "positional", description: "one plugin (default all)", required: false } },
  async run({ args, rawArgs }) {
    const res = await resolveTarget(args.target, multi(rawArgs, "plugin"), multi(rawArgs, "without"));
    const chosen = res.plugins.filter((p) => !args.name || p.def.name === args.name);
    if (args.name && chosen.length === 0)
      throw new PlanetError(
        "UNKNOWN_PLUGIN",
        `plugin ${args.name} is not in target ${args.target}; its plugins: ${res.plugins.map((p) => p.def.name).join(", ")}`,
      );
    const view = chosen.map((p) => ({
      name: p.def.name,
      description: p.def.description,
      requires: p.def.requires ?? [],
      roles: p.def.roles,
      assets: p.def.assets ?? [],
      packages: p.def.packages ?? [],
      units: p.units,
      files: p.def.files ?? {},
      env: p.def.env ?? {},
      certs: (p.def.certs ?? []).map((c) => c.name),
      checks: (p.def.checks ?? []).map((c) => `${c.name} (${checkKind(c)})`),
      images: (p.def.images ?? []).map((i) => i.ref),
    }));
    if (args.json) {
      process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
      return;
    }
    const out: string[] = [];
    for (const v of view) {
      out.push(`${v.name} — ${v.description}`);
      for (const [k, val] of Object.entries(v)) {
        if (k === "name" || k === "description") continue;
        const text =
          k === "units"
            ? v.units.map((u) => `${u.name}${u.enabled ? ` [${u.roles.join(",")}]` : " [not enabled]"}`).join(", ")
            : Array.isArray(val)
              ? val.join(", ")
              : Object.entries(val as Record<string, string>)
                  .map(([a, b]) => `${a}=${b}`)
                  .join(" ");
        if (text) out.push(`  ${k.padEnd(9)} ${text}`);
      }
    }
    process.stdout.write(`${out.join("\n")}\n`);
  },
});

export default defineCommand({
  meta: { name: "plugins", description: "list plugins or show their resolved contributions" },
  args: debugArg,
  subCommands: { list, show },
  default: "list",
});
