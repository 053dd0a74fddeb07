import { spawnSync } from "node:child_process";
import pkg from "../package.json" with { type: "json" };

/** Replaced by `bun build --compile --define` when the image is built. */
declare const PLANET_COMMIT: string | undefined;

export const VERSION: string = pkg.version;

export function commit(): string {
  if (typeof PLANET_COMMIT !== "undefined") return PLANET_COMMIT;
  const res = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: import.meta.dir, encoding: "utf8" });
  const sha = res.status === 0 ? res.stdout.trim() : "unknown";
  const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: import.meta.dir, encoding: "utf8" });
  return dirty.status === 0 && dirty.stdout.trim() ? `${sha}-dirty` : sha;
}
