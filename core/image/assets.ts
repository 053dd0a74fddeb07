import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { PlanetError } from "../errors.ts";
import { logger } from "../log.ts";
import { run, runOk } from "../proc.ts";
import { shapeProblem, walkTree } from "../util.ts";
import { buildGoModule, checkWrapper, type GoModInfo, type GoModSource, type GoToolchain, pickGo, requiredGo } from "./gomod.ts";

const log = logger("assets");

/** A Debian binary package at a pinned version, fetched with `apt-get download`. */
export interface DebSource {
  kind: "deb";
  /** Package name, e.g. `etcd-server`. */
  package: string;
  /** Exact Debian version, e.g. `3.4.23-4+b4`. */
  version: string;
  /** sha256 of the .deb (from `apt-cache show pkg=version`). */
  sha256: string;
}

/**
 * A Debian source package at a pinned version, fetched from the archive's pool (the .dsc pinned by
 * sha256, which pins every file it lists), unpacked by `dpkg-source` and built by the recipe's
 * script — for a program whose Debian binary differs from upstream's in a way that matters.
 */
export interface DebSrcSource {
  kind: "debsrc";
  /** Source package, e.g. `busybox`. */
  package: string;
  /** Version as in the file names (no epoch), e.g. `1.37.0-6`. */
  version: string;
  /** sha256 of the .dsc. */
  sha256: string;
  /** Leave Debian's patches out: upstream's code with Debian's packaging beside it. */
  skipPatches?: boolean;
  /** Script beside the recipe, run in the unpacked source with SRC and OUT set. */
  script: string;
}

/**
 * A file on the web, pinned by sha256. For users who prefer upstream's release binaries to building,
 * e.g. `{ kind: "url", url: "https://dl.k8s.io/v1.37.2/kubernetes-server-linux-amd64.tar.gz",
 * sha256: "<from the release's .sha256 file>", extract: "tar" }` with `files` pointing at
 * `kubernetes/server/bin/kube-apiserver` and so on.
 */
export interface UrlSource {
  kind: "url";
  url: string;
  sha256: string;
  /** Unpack a tarball into the output instead of keeping the file. */
  extract?: "tar";
}

/** A file or folder on this machine (e.g. a binary you built yourself). */
export interface LocalSource {
  kind: "local";
  path: string;
  /** Optional sha256 when `path` is a file. */
  sha256?: string;
}

export type AssetSource = DebSource | DebSrcSource | GoModSource | UrlSource | LocalSource;

/**
 * A pinned dependency. Its cache key is the hash of this definition plus the build script, so a
 * change to either produces a new cache entry and an unchanged recipe is never rebuilt.
 */
export interface AssetDef {
  /** kebab-case, unique, the name plugins list under `assets`. */
  name: string;
  /** Upstream version the asset provides, e.g. `1.20.2` (recorded in the manifest). */
  version: string;
  description?: string;
  source: AssetSource;
  /**
   * Files of the asset's output (paths relative to it) copied into the rootfs at the given absolute
   * paths, e.g. `{ "kube-apiserver": "/usr/bin/kube-apiserver" }`. `deb` assets are installed as
   * packages instead; for them this map names the package files whose hashes the manifest tracks,
   * e.g. `{ "usr/bin/etcd": "/usr/bin/etcd" }`.
   */
  files?: Record<string, string>;
}

/** Identity helper: gives a recipe its type. */
export function defineAsset(def: AssetDef): AssetDef {
  return def;
}

/** What a cache entry records about itself (`asset.json`). */
export interface AssetRecord {
  name: string;
  version: string;
  kind: AssetSource["kind"];
  key: string;
  /** sha256 of what was fetched (.deb, URL body, local file); null for a local folder or a Go build. */
  sha256: string | null;
  /** For `gomod` assets: module, version, go.sum pins and the toolchain (the bill of materials). */
  gomod?: GoModInfo;
  /** sha256 of every file of the output, by path relative to `out/`. */
  files: Record<string, string>;
  seconds: number;
}

export interface ResolvedAsset {
  def: AssetDef;
  record: AssetRecord;
  /** Folder holding the asset's output files. */
  out: string;
  /** The .deb file, for `deb` assets. */
  deb?: string;
  /** True when this run reused the cache. */
  cached: boolean;
}

export function cacheRoot(): string {
  return resolve(process.env.PLANET_CACHE_DIR || join(homedir(), ".cache", "planet"));
}

/**
 * Cache key: what decides the output — name, version, source and the build script. Where the files
 * go (`files`) is not part of it, so moving a binary never rebuilds an asset.
 */
export function assetKey(def: AssetDef, recipeDir: string, toolchain?: string): string {
  const h = createHash("sha256").update(JSON.stringify({ name: def.name, version: def.version, source: def.source }));
  if (def.source.kind === "gomod") {
    // The wrapper module's pins, the script and the Go that compiles decide the output too.
    for (const f of ["go.mod", "go.sum", def.source.script])
      if (f && existsSync(join(recipeDir, f))) h.update(readFileSync(join(recipeDir, f)));
    h.update(toolchain ?? "");
  }
  // A source build's script decides its output too.
  if (def.source.kind === "debsrc" && existsSync(join(recipeDir, def.source.script)))
    h.update(readFileSync(join(recipeDir, def.source.script)));
  return h.digest("hex").slice(0, 16);
}

export function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function hashTree(root: string): Record<string, string> {
  const files = walkTree(root).files.map((p) => [relative(root, p), sha256File(p)] as const);
  return Object.fromEntries(files.sort(([a], [b]) => a.localeCompare(b)));
}

/** Shows which asset is being produced and for how long, every 20 s, while `work` runs. */
async function withProgress<T>(name: string, what: string, work: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  log.start(`${name}: ${what}`);
  const timer = setInterval(() => log.info(`${name}: ${what} … ${Math.round((Date.now() - t0) / 1000)}s`), 20_000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

function verify(name: string, what: string, path: string, expected: string): string {
  const actual = sha256File(path);
  if (actual !== expected)
    throw new PlanetError(
      "ASSET_CHECKSUM",
      `${name}: ${what} has sha256 ${actual}, recipe pins ${expected} — fix the recipe or the source`,
      { phase: "assets" },
    );
  return actual;
}

/**
 * Returns the asset from the cache, or produces it into a temporary folder and renames that into
 * place. A checksum mismatch is an error; nothing is refetched silently.
 */
export async function ensureAsset(def: AssetDef, recipeDir: string): Promise<ResolvedAsset> {
  const src = def.source;
  // Go builds: the toolchain is part of the cache key, and the same one builds on a miss.
  const tc =
    src.kind === "gomod"
      ? await pickGo(def.name, requiredGo(checkWrapper(def.name, recipeDir, src).goMod), cacheRoot())
      : undefined;
  const key = assetKey(def, recipeDir, tc?.version);
  const root = join(cacheRoot(), "assets");
  const dir = join(root, `${def.name}-${key}`);
  const recordPath = join(dir, "asset.json");
  if (existsSync(recordPath)) {
    let record: unknown;
    try {
      record = JSON.parse(readFileSync(recordPath, "utf8"));
    } catch {
      record = null;
    }
    const problem = shapeProblem(record, { name: "string", key: "string", files: "object", gomod: "object?" });
    if (!problem) return { def, record: record as AssetRecord, out: join(dir, "out"), deb: debPath(dir), cached: true };
    // A cache heals: a record that is not ours means the entry is rebuilt, never trusted.
    log.warn(`${recordPath}: ${problem ?? "not JSON"}; building ${def.name} again`);
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(root, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, "out"), { recursive: true });
  const t0 = Date.now();
  try {
    const produced = await produce(def, recipeDir, tmp, tc);
    const record: AssetRecord = {
      name: def.name,
      version: def.version,
      kind: def.source.kind,
      key,
      sha256: typeof produced === "string" || produced === null ? produced : null,
      ...(produced && typeof produced === "object" ? { gomod: produced } : {}),
      files: hashTree(join(tmp, "out")),
      seconds: Math.round((Date.now() - t0) / 100) / 10,
    };
    for (const src of Object.keys(def.files ?? {}))
      if (!(src in record.files))
        throw new PlanetError("ASSET_MISSING_FILE", `${def.name}: output has no file ${src}`, { phase: "assets" });
    writeFileSync(join(tmp, "asset.json"), `${JSON.stringify(record, null, 2)}\n`);
    rmSync(join(tmp, "work"), { recursive: true, force: true });
    renameSync(tmp, dir);
    log.success(`${def.name} ${def.version} ready in ${record.seconds}s`);
    return { def, record, out: join(dir, "out"), deb: debPath(dir), cached: false };
  } catch (err) {
    // Keep the build log of a failed source build for the user; drop everything else.
    const logFile = join(tmp, "build.log");
    if (existsSync(logFile)) {
      const kept = join(root, `${def.name}-${key}.failed.log`);
      renameSync(logFile, kept);
      if (err instanceof PlanetError && !err.message.includes(kept)) err.message += ` (log: ${kept})`;
    }
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

function debPath(dir: string): string | undefined {
  const found = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith(".deb")) : undefined;
  return found ? join(dir, found) : undefined;
}

async function produce(def: AssetDef, recipeDir: string, tmp: string, tc?: GoToolchain): Promise<string | null | GoModInfo> {
  const src = def.source;
  const out = join(tmp, "out");
  const opts = { phase: "assets", code: "ASSET_FETCH" as const };
  switch (src.kind) {
    case "deb": {
      await withProgress(def.name, `apt-get download ${src.package}=${src.version}`, () =>
        runOk(["apt-get", "download", "-q", `${src.package}=${src.version}`], { cwd: tmp, ...opts }),
      );
      const deb = readdirSync(tmp).find((f) => f.endsWith(".deb"));
      if (!deb) throw new PlanetError("ASSET_FETCH", `${def.name}: apt-get download wrote no .deb`, { phase: "assets" });
      const sum = verify(def.name, deb, join(tmp, deb), src.sha256);
      await runOk(["dpkg-deb", "-x", join(tmp, deb), out], opts);
      return sum;
    }
    case "gomod": {
      const logFile = join(tmp, "build.log");
      return withProgress(def.name, `go build ${src.module}@${src.version} (log: ${logFile})`, () =>
        buildGoModule(def.name, recipeDir, src, tc as GoToolchain, out, join(tmp, "work"), logFile),
      );
    }
    case "debsrc":
      return withProgress(def.name, `dpkg-source ${src.package} ${src.version} and ${src.script}`, () =>
        buildDebSource(def.name, recipeDir, src, tmp, out),
      );
    case "url": {
      const name = basename(new URL(src.url).pathname) || "download";
      const file = join(tmp, name);
      await withProgress(def.name, `fetching ${src.url}`, () => download(def.name, src.url, file));
      const sum = verify(def.name, name, file, src.sha256);
      if (src.extract === "tar") await runOk(["tar", "-xf", file, "-C", out], opts);
      else renameSync(file, join(out, name));
      return sum;
    }
    case "local": {
      if (!existsSync(src.path))
        throw new PlanetError("ASSET_FETCH", `${def.name}: local path ${src.path} does not exist`, { phase: "assets" });
      const isFile = statSync(src.path).isFile();
      const sum = isFile && src.sha256 ? verify(def.name, src.path, src.path, src.sha256) : null;
      const dest = isFile ? join(out, basename(src.path)) : out;
      mkdirSync(dirname(dest), { recursive: true });
      await runOk(["cp", "-a", isFile ? src.path : `${src.path}/.`, dest], opts);
      return sum ?? (isFile ? sha256File(src.path) : null);
    }
  }
}

/** The Debian archive (override with PLANET_DEBIAN_MIRROR for a local mirror). */
export function debianMirror(): string {
  return process.env.PLANET_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";
}

async function download(name: string, url: string, file: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new PlanetError("ASSET_FETCH", `${name}: ${url}: ${(err as Error).message}`, { phase: "assets" });
  }
  if (!res.ok) throw new PlanetError("ASSET_FETCH", `${name}: ${url}: HTTP ${res.status}`, { phase: "assets" });
  await Bun.write(file, res);
}

/** Fetches a source package from the pool (each file checked), unpacks it and runs the recipe's script. */
async function buildDebSource(name: string, recipeDir: string, src: DebSrcSource, tmp: string, out: string): Promise<string> {
  const work = join(tmp, "work");
  mkdirSync(work, { recursive: true });
  const prefix = src.package.startsWith("lib") ? src.package.slice(0, 4) : src.package.slice(0, 1);
  const pool = `${debianMirror()}/pool/main/${prefix}/${src.package}`;
  const dsc = `${src.package}_${src.version}.dsc`;
  await download(name, `${pool}/${dsc}`, join(work, dsc));
  const sum = verify(name, dsc, join(work, dsc), src.sha256);
  const text = readFileSync(join(work, dsc), "utf8");
  const listed = /^Checksums-Sha256:\n((?: .+\n?)+)/m.exec(text)?.[1] ?? "";
  const files = listed
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3);
  if (!files.length) throw new PlanetError("ASSET_FETCH", `${name}: ${dsc} lists no files`, { phase: "assets" });
  for (const [sha, , file] of files) {
    await download(name, `${pool}/${file}`, join(work, file as string));
    verify(name, file as string, join(work, file as string), sha as string);
  }
  const dir = join(work, "src");
  // The files are checked against the pinned .dsc, so its signature is not needed here.
  await runOk(["dpkg-source", "--no-check", ...(src.skipPatches ? ["--skip-patches"] : []), "-x", join(work, dsc), dir], {
    phase: "assets",
    code: "ASSET_FETCH",
  });
  const logFile = join(tmp, "build.log");
  const res = await run(["bash", join(recipeDir, src.script)], {
    cwd: dir,
    env: { ...process.env, SRC: dir, OUT: out } as Record<string, string>,
  });
  writeFileSync(logFile, `${res.stdout}${res.stderr}`);
  if (res.exitCode !== 0)
    throw new PlanetError("ASSET_BUILD", `${name}: ${src.script} exited ${res.exitCode} (log: ${logFile})`, { phase: "assets" });
  return sum;
}
