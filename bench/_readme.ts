#!/usr/bin/env bun
/**
 * The README's bench figures, generated from the history (`bench/results/<bench>.json`): between
 * `<!-- bench:<name> -->` and `<!-- /bench:<name> -->` each bench's last recorded table, with its date,
 * commit and machine. Run by `make bench RECORD=1` after the benches; the README is written whole
 * (temp, rename).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readJsonOrNull, writeDurably } from "../core/util.ts";
import { REPO, RESULTS } from "./_table.ts";

interface Recorded {
  title: string;
  date: string;
  commit: string;
  machine: { cpus: number; memGiB: number; kernel: string };
  rows: string[][];
}

/** A recorded table as Markdown. */
export function markdown(r: Recorded): string {
  const [head, ...body] = r.rows;
  const line = (cells: string[]) => `| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
  return [
    `${r.title} — ${r.date.slice(0, 10)}, commit ${r.commit.slice(0, 10)}, ${r.machine.cpus} cores, ${r.machine.memGiB} GiB, kernel ${r.machine.kernel}`,
    "",
    line(head ?? []),
    line((head ?? []).map(() => "---")),
    ...body.map(line),
  ].join("\n");
}

/** The README with every marked section filled from the history; sections without a history are left as they are. */
export function fill(readme: string, historyOf: (bench: string) => Recorded[] | null): string {
  return readme.replace(/<!-- bench:([a-z-]+) -->\n[\s\S]*?<!-- \/bench:\1 -->/g, (whole, bench: string) => {
    const runs = historyOf(bench);
    const last = runs?.at(-1);
    if (!last) return whole;
    // Every table the bench printed in its last run (one run may print several).
    const sameRun = runs?.filter((r) => r.commit === last.commit && r.date.slice(0, 13) === last.date.slice(0, 13)) ?? [last];
    return `<!-- bench:${bench} -->\n${sameRun.map(markdown).join("\n\n")}\n<!-- /bench:${bench} -->`;
  });
}

if (import.meta.main) {
  const file = join(REPO, "README.md");
  const before = readFileSync(file, "utf8");
  const after = fill(before, (bench) => {
    const path = join(RESULTS, `${bench}.json`);
    return existsSync(path) ? readJsonOrNull<Recorded[]>(path) : null;
  });
  if (after !== before) writeDurably(file, after);
  process.stdout.write(
    after !== before ? "README.md: bench figures brought up to date\n" : "README.md: bench figures already current\n",
  );
}
