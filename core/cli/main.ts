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

/** Finds the (sub)command `rawArgs` names, for `--help`. */
async function locate(rawArgs: string[]): Promise<[CommandDef, CommandDef | undefined]> {
  let cmd: CommandDef = main as CommandDef;
  let parent: CommandDef | undefined;
  for (const arg of rawArgs.filter((a) => !a.startsWith("-"))) {
    const subs = typeof cmd.subCommands === "function" ? await cmd.subCommands() : await cmd.subCommands;
    const next = subs?.[arg];
    if (!next) break;
    parent = cmd;
    cmd = (typeof next === "function" ? await (next as () => Promise<CommandDef>)() : await next) as CommandDef;
  }
  return [cmd, parent];
}

export async function cli(rawArgs: string[]): Promise<void> {
  const debug = rawArgs.includes("--debug") || !!process.env.PLANET_DEBUG;
  setDebug(debug);
  try {
    if (rawArgs.includes("--help") || rawArgs.includes("-h") || rawArgs.length === 0) {
      const [cmd, parent] = await locate(rawArgs);
      await showUsage(cmd, parent);
      process.exit(0);
    }
    if (rawArgs.length === 1 && rawArgs[0] === "--version") {
      process.stdout.write(`${VERSION}\n`);
      return;
    }
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
