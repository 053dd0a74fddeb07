import { type ConsolaInstance, createConsola } from "consola";

/** The root logger. Nothing calls console.* directly; tests swap reporters on this instance. */
export const log: ConsolaInstance = createConsola({
  level: process.env.PLANET_DEBUG ? 4 : 3,
  // Progress goes to stderr, so stdout stays clean for --json and command output.
  stdout: process.stderr,
  formatOptions: { date: false, compact: true },
});

/** A tagged child logger, e.g. `logger("build")` or `logger("agent:etcd")`. */
export function logger(tag: string): ConsolaInstance {
  return log.withTag(tag);
}

export function setDebug(on: boolean): void {
  log.level = on ? 4 : 3;
}
