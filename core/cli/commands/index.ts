import type { CommandDef } from "citty";

/** Subcommands, loaded lazily so `planet exec` never pays for the build code. */
export const commands: Record<string, () => Promise<CommandDef>> = {
  version: () => import("./version.ts").then((m) => m.default as CommandDef),
  build: () => import("./build.ts").then((m) => m.default as CommandDef),
  plugins: () => import("./plugins.ts").then((m) => m.default as CommandDef),
};
