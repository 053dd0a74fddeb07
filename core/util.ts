/** Small pieces several rooms of the core share: one poll, one directory walk, one sysctl reader, durable writes, JSON read back. */
import {
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";

/**
 * Calls `probe` every `stepMs` until it returns something truthy or `timeoutMs` passes; a probe
 * that throws counts as "not yet". Returns that value, or `undefined` with the last error.
 */
export async function poll<T>(
  probe: () => T | Promise<T>,
  timeoutMs: number,
  stepMs = 50,
): Promise<{ value?: NonNullable<T>; error?: unknown }> {
  const end = Date.now() + timeoutMs;
  let error: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return { value: v as NonNullable<T> };
    } catch (e) {
      error = e;
    }
    if (Date.now() >= end) return { error };
    await Bun.sleep(Math.min(stepMs, Math.max(0, end - Date.now())));
  }
}

/** Every file and directory under `root`: files in walk order, directories deepest first. */
export function walkTree(root: string): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (dir: string) => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.isFile()) files.push(p);
    }
    dirs.push(dir);
  };
  if (existsSync(root)) walk(root);
  return { files, dirs };
}

/** `/proc/sys` path of a dotted sysctl name (`net.ipv4.ip_forward`). */
export function sysctlPath(name: string): string {
  return `/proc/sys/${name.replace(/\./g, "/")}`;
}

/** A sysctl's value, or null where this kernel has no such setting. */
export function readSysctl(name: string): string | null {
  const p = sysctlPath(name);
  return existsSync(p) ? readFileSync(p, "utf8").trim() : null;
}

type Kind = "string" | "number" | "boolean" | "object" | "array";

/**
 * The JSON in `path` as it parses (unchecked: `T` is what the caller expects), or null when there is
 * no such file. A file that is there but does not parse throws JSON.parse's error, and so does one
 * that holds just `null`, so that null always means "missing": what a corrupt file means (start over,
 * refuse, rebuild) is the caller's to say.
 */
export function readJsonOrNull<T>(path: string): T | null {
  if (!existsSync(path)) return null;
  const value: unknown = JSON.parse(readFileSync(path, "utf8"));
  if (value === null) throw new SyntaxError(`${path} holds null`);
  return value as T;
}

/**
 * The first way `value` differs from `shape` (field → kind; a trailing `?` makes it optional), or
 * null when it fits. For JSON read back from disk: a file that parses is not yet the file we wrote.
 */
export function shapeProblem(value: unknown, shape: Record<string, `${Kind}` | `${Kind}?`>): string | null {
  if (!value || typeof value !== "object" || Array.isArray(value)) return "not a JSON object";
  const o = value as Record<string, unknown>;
  for (const [key, want] of Object.entries(shape)) {
    const optional = want.endsWith("?");
    const kind = want.replace("?", "") as Kind;
    const v = o[key];
    if (v === undefined) {
      if (optional) continue;
      return `${key} is missing`;
    }
    const is = Array.isArray(v) ? "array" : v === null ? "null" : typeof v;
    if (is !== kind) return `${key} is ${is}, not ${kind}`;
  }
  return null;
}

/** Bytes free to an unprivileged writer on the filesystem that holds `path` (or would: its nearest existing parent). */
export function freeBytes(path: string): number {
  let p = resolve(path);
  while (!existsSync(p)) p = dirname(p);
  const s = statfsSync(p);
  return s.bavail * s.bsize;
}

/** Flushes a file's or a folder's contents to disk (a rename is durable once its folder is). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Copies a file to `dest` through a temp name in the same folder, fsynced, then renamed. */
export function copyDurably(src: string, dest: string): void {
  const tmp = `${dest}.tmp-${process.pid}`;
  try {
    copyFileSync(src, tmp);
    fsyncPath(tmp);
    renameSync(tmp, dest);
    fsyncPath(join(dest, ".."));
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Writes `text` to `path` whole or not at all: a temp name in the same folder, fsynced, renamed over
 * it, the folder fsynced (a crash leaves the old file or the new, never half of one).
 */
export function writeDurably(path: string, text: string, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode });
    fsyncPath(tmp);
    renameSync(tmp, path);
    fsyncPath(join(path, ".."));
  } finally {
    rmSync(tmp, { force: true });
  }
}
