#!/usr/bin/env bun
import { type CommandDef, defineCommand, runCommand, showUsage } from "citty";
import { PlanetError, toPlanetError } from "../errors.ts";
import { setDebug } from "../log.ts";
import { VERSION } from "../version.ts";
import { commands } from "./commands/index.ts";

export const main = defineCommand({
  meta: { name: "planet", version: VERSION, description: "Kubernetes in one Debian rootfs that containerizes itself" },
  subCommands: commands,
});

/** Finds the (sub)command `rawArgs` names, its parent (for `--help`) and the arguments after its name. */
async function locate(rawArgs: string[]): Promise<[CommandDef, CommandDef | undefined, string[]]> {
  let cmd: CommandDef = main as CommandDef;
  let parent: CommandDef | undefined;
  let rest = [...rawArgs];
  for (;;) {
    const i = rest.findIndex((a) => !a.startsWith("-"));
    if (i < 0) break;
    const subs = typeof cmd.subCommands === "function" ? await cmd.subCommands() : await cmd.subCommands;
    const next = subs?.[rest[i] as string];
    if (!next) break;
    parent = cmd;
    cmd = (typeof next === "function" ? await (next as () => Promise<CommandDef>)() : await next) as CommandDef;
    rest = [...rest.slice(0, i), ...rest.slice(i + 1)];
  }
  return [cmd, parent, rest];
}

/** Commands whose first positional starts a command line of its own (its flags are not planet's). */
const PASSTHROUGH = new Set(["exec", "enter"]);

/** The first flag `cmd` does not declare, if any (citty would silently ignore it). */
async function unknownFlag(cmd: CommandDef, args: string[]): Promise<string | undefined> {
  const defs = (typeof cmd.args === "function" ? await cmd.args() : await cmd.args) ?? {};
  const meta = (typeof cmd.meta === "function" ? await cmd.meta() : await cmd.meta) ?? {};
  const find = (name: string) =>
    Object.entries(defs).find(([k, d]) => {
      const alias = (d as { alias?: string | string[] }).alias;
      return k === name || (Array.isArray(alias) ? alias.includes(name) : alias === name);
    })?.[1] as { type?: string } | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "--") return undefined;
    if (!a.startsWith("-") || a === "-") {
      if (PASSTHROUGH.has(meta.name ?? "")) return undefined;
      continue;
    }
    const name = a.replace(/^--?/, "").split("=")[0] as string;
    const def =
      find(name) ?? (name.startsWith("no-") && find(name.slice(3))?.type === "boolean" ? { type: "boolean" } : undefined);
    if (!def) return a.split("=")[0];
    if (def.type !== "boolean" && !a.includes("=")) i++; // its value
  }
  return undefined;
}

export async function cli(rawArgs: string[]): Promise<void> {
  const debug = rawArgs.includes("--debug") || !!process.env.PLANET_DEBUG;
  setDebug(debug);
  try {
    if (rawArgs.includes("--help") || rawArgs.includes("-h") || rawArgs.length === 0) {
      const [cmd, parent, rest] = await locate(rawArgs);
      // `planet bogus --help`: a word where a subcommand goes is the unknown-command error, not the parent's help.
      const stray = cmd.subCommands ? rest.find((a) => !a.startsWith("-")) : undefined;
      if (stray) throw new PlanetError("USAGE", `Unknown command ${stray} (see planet --help)`);
      await showUsage(cmd, parent);
      process.exit(0);
    }
    if (rawArgs.length === 1 && rawArgs[0] === "--version") {
      process.stdout.write(`${VERSION}\n`);
      return;
    }
    const [cmd, , rest] = await locate(rawArgs);
    const unknown = cmd.run ? await unknownFlag(cmd, rest) : undefined;
    if (unknown)
      throw new PlanetError(
        "USAGE",
        `unknown flag ${unknown} for planet ${rawArgs
          .filter((a) => !a.startsWith("-"))
          .slice(0, 2)
          .join(" ")} (see --help)`,
      );
    await runCommand(main, { rawArgs });
  } catch (err) {
    const e =
      err instanceof Error && err.name === "CLIError"
        ? new PlanetError("USAGE", `${err.message.replace(/\u001b\[[0-9;]*m/g, "")} (see planet --help)`)
        : toPlanetError(err);
    process.stderr.write(`${e.toLine()}\n`);
    if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exit(e.exitCode);
  }
}

if (import.meta.main) await cli(process.argv.slice(2));
