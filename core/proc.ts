import { closeSync, lstatSync, openSync } from "node:fs";
import { type ErrorCode, PlanetError } from "./errors.ts";

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Text written to the child's stdin. */
  input?: string;
  /** Append the child's stdout+stderr to this file instead of capturing them. */
  logFile?: string;
  /** Error code used when the command exits non-zero (default COMMAND_FAILED). */
  code?: ErrorCode;
  phase?: string;
  plugin?: string;
  /**
   * Kill the command and everything it started after this many ms: it runs as the leader of its
   * own process group (setsid), and the whole group gets SIGKILL. It then exits 124 with
   * "timed out" on stderr.
   */
  timeoutMs?: number;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and returns its output; never throws on a non-zero exit. */
export async function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  let proc: ReturnType<typeof Bun.spawn>;
  const logFd = opts.logFile ? openSync(opts.logFile, "a") : undefined;
  try {
    proc = Bun.spawn(opts.timeoutMs === undefined ? cmd : ["setsid", "--wait", ...cmd], {
      cwd: opts.cwd,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdin: opts.input === undefined ? "ignore" : new Blob([opts.input]),
      stdout: logFd ?? "pipe",
      stderr: logFd ?? "pipe",
    });
  } catch (err) {
    if (logFd !== undefined) closeSync(logFd);
    throw new PlanetError("COMMAND_MISSING", `cannot run ${cmd[0]}: ${(err as Error).message}`, {
      phase: opts.phase,
      plugin: opts.plugin,
      cause: err,
    });
  }
  let timedOut = false;
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          try {
            process.kill(-proc.pid, "SIGKILL"); // setsid made the command the leader of group pid
          } catch {
            proc.kill("SIGKILL");
          }
        }, opts.timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([
    proc.stdout instanceof ReadableStream ? new Response(proc.stdout).text() : "",
    proc.stderr instanceof ReadableStream ? new Response(proc.stderr).text() : "",
    proc.exited,
  ]);
  clearTimeout(timer);
  if (logFd !== undefined) closeSync(logFd);
  if (timedOut) return { exitCode: 124, stdout, stderr: `${stderr}${cmd[0]} timed out after ${opts.timeoutMs} ms\n` };
  return { exitCode, stdout, stderr };
}

/** Runs a command and throws a one-line PlanetError (with the last stderr line) when it fails. */
export async function runOk(cmd: string[], opts: RunOptions = {}): Promise<string> {
  const res = await run(cmd, opts);
  if (res.exitCode !== 0) {
    const detail = lastLine(res.stderr) || lastLine(res.stdout) || (opts.logFile ? `see ${opts.logFile}` : "");
    throw new PlanetError(opts.code ?? "COMMAND_FAILED", `${cmd.join(" ")} exited ${res.exitCode}: ${detail}`, {
      phase: opts.phase,
      plugin: opts.plugin,
    });
  }
  return res.stdout;
}

export function lastLine(text: string): string {
  const lines = text.trim().split("\n");
  return (lines[lines.length - 1] ?? "").trim();
}

/** True when `name` is an executable on PATH. */
export function have(name: string): boolean {
  return Bun.which(name) !== null;
}

/** argv that runs this same planet again: the compiled binary, or bun + the CLI entry. */
export function selfCommand(): string[] {
  return Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main];
}

/** True when `path` is a symbolic link (dangling ones included). */
export function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
