import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { parseEnvFile } from "../environment.ts";
import { PlanetError } from "../errors.ts";
import { type RunResult, run } from "../proc.ts";
import { findBubble } from "./bubble.ts";
import { bubbleRoot } from "./slot-root.ts";
import { RUNC_ROOT, runcStatus } from "./state.ts";

export interface ExecOptions {
  rootfs: string;
  command: string[];
  tty: boolean;
  interactive: boolean;
}

/** Environment of a process run inside: the container environment plus a login-like PATH. */
export function execEnv(rootfs: string): Record<string, string> {
  const file = join(rootfs, "etc/container-environment");
  const env = existsSync(file) ? parseEnvFile(readFileSync(file, "utf8")) : {};
  return {
    ...env,
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    TERM: process.env.TERM ?? "xterm",
    ENV: "/etc/container-environment",
    BASH_ENV: "/etc/container-environment",
    HOME: "/root",
    LC_ALL: "C.UTF-8",
  };
}

/** Runs a command inside the bubble (like `docker exec`); resolves to its exit code. */
export async function execIn(opts: ExecOptions): Promise<number> {
  const state = findBubble(opts.rootfs);
  const rs = await runcStatus(state.id);
  if (rs?.status !== "running")
    throw new PlanetError("NOT_RUNNING", `bubble ${state.id} is not running (${rs?.status ?? "gone"})`);
  const tty = opts.tty && process.stdin.isTTY === true;
  const args = ["--root", RUNC_ROOT, "exec", ...(tty ? ["--tty"] : [])];
  for (const [k, v] of Object.entries(execEnv(bubbleRoot(state.rootfs)))) args.push("--env", `${k}=${v}`);
  args.push(state.id, ...opts.command);
  const child = spawn("runc", args, { stdio: [opts.interactive || tty ? "inherit" : "ignore", "inherit", "inherit"] });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => child.kill(sig));
  // Like a shell: a process killed by signal N exits 128 + N.
  return await new Promise<number>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 15) : 1))),
  );
}

/** Runs a command inside the running bubble with its environment (and `env`), capturing its output. */
export async function execRun(rootfs: string, command: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const state = findBubble(rootfs);
  const args = ["runc", "--root", RUNC_ROOT, "exec"];
  for (const [k, v] of Object.entries({ ...execEnv(bubbleRoot(state.rootfs)), ...env })) args.push("--env", `${k}=${v}`);
  return run([...args, state.id, ...command]);
}
