/**
 * One error type for the whole project. Errors are created with a stable UPPER_SNAKE `code`,
 * and — when a plugin or a build phase is involved — name both, like rollup's `[plugin x]`.
 * They are handled at three edges only: the CLI, the agent's `app.onError`, the build summary.
 */
export class PlanetError extends Error {
  override readonly name = "PlanetError";
  readonly code: string;
  readonly plugin?: string;
  readonly phase?: string;
  /** Exit code of the CLI for this error (default 1). */
  readonly exitCode: number;

  constructor(code: string, message: string, opts: { plugin?: string; phase?: string; cause?: unknown; exitCode?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.plugin = opts.plugin;
    this.phase = opts.phase;
    this.exitCode = opts.exitCode ?? 1;
  }

  /** `CODE: [plugin x] (phase) message` — the one line the CLI prints. */
  toLine(): string {
    const where = [this.plugin && `[plugin ${this.plugin}]`, this.phase && `(${this.phase})`].filter(Boolean).join(" ");
    return `${this.code}: ${where ? `${where} ` : ""}${this.message}`;
  }
}

/** Normalises anything thrown into a PlanetError, once, at an edge. */
export function toPlanetError(err: unknown): PlanetError {
  if (err instanceof PlanetError) return err;
  if (err instanceof Error) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === "ENOSPC") return new PlanetError("NO_SPACE", `no space left on device: ${err.message}`, { cause: err });
    if (errno === "EACCES" || errno === "EPERM")
      return new PlanetError("PERMISSION", `${err.message} (run as root?)`, { cause: err });
    return new PlanetError("INTERNAL", err.message, { cause: err });
  }
  return new PlanetError("INTERNAL", String(err));
}

/** Shorthand for `throw new PlanetError(...)` in expression position. */
export function fail(code: string, message: string, opts?: ConstructorParameters<typeof PlanetError>[2]): never {
  throw new PlanetError(code, message, opts);
}
