/**
 * The upgrade journal of a host: `<data-dir>/upgrade/journal.json`, rewritten atomically at every
 * phase, so a killed `planet upgrade` is resumed from what it says (and two never run at once).
 * Finished upgrades move to `<data-dir>/upgrade/history/`.
 */
import { existsSync, mkdirSync, readdirSync, renameSync } from "node:fs";
import { join, resolve } from "node:path";
import { PlanetError } from "../errors.ts";
import { readJsonOrNull, writeDurably } from "../util.ts";

/** In order; `committed` and `rolled-back` end an upgrade. */
export const PHASES = [
  "preflight",
  "staged",
  "drained",
  "stopped",
  "saved",
  "switched",
  "started",
  "healthy",
  "committed",
  "rolling-back",
  "rolled-back",
] as const;
export type UpgradePhase = (typeof PHASES)[number];

export interface Journal {
  id: string;
  /** PID of the `planet upgrade` that writes it. */
  pid: number;
  dataDir: string;
  /** The bubble: runc id, and what its `planet start` was given. */
  box: string;
  args: string[];
  image: string;
  /** Slot names: the running one, the new one, and what `previous` named before the switch. */
  from: string;
  to?: string;
  previousBefore?: string | null;
  /** Volumes copied aside while stopped, and whether a rollback puts them back. */
  restore: { volumes: string[]; safe: boolean };
  changes: string[];
  /** The cluster's upgrade lock this upgrade runs under; `own`: taken by it (and released when it ends), else a roll's. */
  lock?: { owner: string; own: boolean };
  phase: UpgradePhase;
  reason?: string;
  history: { phase: UpgradePhase; at: string; note?: string }[];
  startedAt: string;
  endedAt?: string;
}

export const upgradeDir = (dataDir: string) => join(resolve(dataDir), "upgrade");
export const journalFile = (dataDir: string) => join(upgradeDir(dataDir), "journal.json");

export function ended(j: Journal): boolean {
  return j.phase === "committed" || j.phase === "rolled-back";
}

export function readJournal(dataDir: string): Journal | null {
  const file = journalFile(dataDir);
  let j: Partial<Journal> | null;
  try {
    j = readJsonOrNull<Partial<Journal>>(file);
  } catch {
    // Not JSON: refused below like any other file that is not a journal.
    j = {};
  }
  if (!j) return null;
  if (typeof j.id !== "string" || typeof j.phase !== "string" || !PHASES.includes(j.phase) || !Array.isArray(j.history))
    throw new PlanetError("CORRUPT_STATE", `${file} is not an upgrade journal: look at it, then move it away to start over`);
  return j as Journal;
}

/** Records `phase` (temp file + rename: the journal is always whole). */
export function writeJournal(j: Journal, phase?: UpgradePhase, note?: string): Journal {
  if (phase) {
    j.phase = phase;
    j.history.push({ phase, at: new Date().toISOString(), ...(note ? { note } : {}) });
  }
  const dir = upgradeDir(j.dataDir);
  mkdirSync(dir, { recursive: true });
  writeDurably(journalFile(j.dataDir), `${JSON.stringify(j, null, 2)}\n`);
  // A test kills the upgrade here to show every phase boundary converges (PLANET_FAILPOINT=upgrade-after-<phase>).
  if (phase && process.env.PLANET_FAILPOINT === `upgrade-after-${phase}`) process.kill(process.pid, "SIGKILL");
  return j;
}

/** Moves a finished journal into the history. */
export function archiveJournal(j: Journal): void {
  const dir = join(upgradeDir(j.dataDir), "history");
  mkdirSync(dir, { recursive: true });
  renameSync(journalFile(j.dataDir), join(dir, `${j.id}.json`));
}

export function lastUpgrade(dataDir: string): Journal | null {
  const current = readJournal(dataDir);
  if (current) return current;
  const dir = join(upgradeDir(dataDir), "history");
  if (!existsSync(dir)) return null;
  const last = readdirSync(dir).sort().at(-1);
  return last ? readJsonOrNull<Journal>(join(dir, last)) : null;
}
