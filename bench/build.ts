#!/usr/bin/env bun
/**
 * `planet build --target dev`: warm wall time (median of --runs, default 3), image and rootfs size,
 * and the cold cost of every asset of the target as recorded when it was produced (with the Go
 * toolchain that built it and its output size). `--cold` also times a build from an empty cache —
 * assets, Go module and build caches, base rootfs — as a new machine's first CI run sees it.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheRoot } from "../core/image/assets.ts";
import { duBytes } from "../core/image/image.ts";
import type { Manifest } from "../core/manifest.ts";
import { CLI, median, mib, REPO, run, table } from "./_table.ts";

const runs = Number(process.argv.find((a) => a.startsWith("--runs="))?.slice(7) ?? 3);
const out = join(REPO, "build", "bench-dev");
const rows: (string | number)[][] = [["measure", "value", "note"]];

if (process.argv.includes("--cold")) {
  const cache = mkdtempSync(join(tmpdir(), "planet-cold-"));
  const r = run([...CLI, "build", "--target", "dev", "--out", out], { PLANET_CACHE_DIR: cache });
  rows.push(["cold build (empty cache)", `${r.seconds.toFixed(1)} s`, r.code === 0 ? "" : "FAILED"]);
  rmSync(cache, { recursive: true, force: true });
}
const warm: number[] = [];
for (let i = 0; i < runs; i++) {
  const r = run([...CLI, "build", "--target", "dev", "--out", out]);
  if (r.code !== 0) throw new Error(r.err);
  warm.push(r.seconds);
}
rows.push([
  "warm build (median)",
  `${median(warm).toFixed(1)} s`,
  `runs: ${warm.map((s) => s.toFixed(1)).join(", ")}; target ≤ 20 s`,
]);
rows.push(["image planet.tar.gz", mib(statSync(join(out, "planet.tar.gz")).size), "gzip -1 (pigz)"]);
rows.push(["rootfs", mib(duBytes(join(out, "rootfs"))), "unpacked"]);
rows.push(["planet binary", mib(statSync(join(out, "rootfs/usr/bin/planet")).size), "bun --compile"]);
// The assets of the image just built, as their cache entries recorded them when first produced.
const manifest = JSON.parse(readFileSync(join(out, "planet.json"), "utf8")) as Manifest;
const assets = join(cacheRoot(), "assets");
for (const a of manifest.assets) {
  const dir = existsSync(assets)
    ? readdirSync(assets).find((d) => d.startsWith(`${a.name}-`) && existsSync(join(assets, d, "asset.json")))
    : undefined;
  if (!dir) continue;
  const rec = JSON.parse(readFileSync(join(assets, dir, "asset.json"), "utf8")) as { seconds: number };
  const size = Object.keys(a.files).reduce((n, f) => n + statSync(join(out, "rootfs", f)).size, 0);
  rows.push([
    `asset ${a.name} ${a.version}: first build`,
    `${rec.seconds} s`,
    `${a.source}${a.gomod ? ` ${a.gomod.toolchain}` : ""}; ${mib(size)} installed`,
  ]);
}
const base = join(cacheRoot(), "base");
for (const f of existsSync(base) ? readdirSync(base) : [])
  rows.push([`base rootfs ${f}`, mib(statSync(join(base, f)).size), "mmdebstrap tar (cached)"]);
rmSync(out, { recursive: true, force: true });
table("planet build --target dev", rows);
