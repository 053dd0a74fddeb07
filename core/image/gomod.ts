import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PlanetError } from "../errors.ts";
import { have, type RunOptions, run } from "../proc.ts";

/**
 * One binary of a `gomod` asset: the package to build and how. Fields left out take the source's
 * defaults (`cgo`, `tags`, `ldflags`).
 */
export interface GoBinary {
  /** Package path, e.g. `k8s.io/kubernetes/cmd/kubelet`. */
  package: string;
  cgo?: boolean;
  tags?: string[];
  /** Extra linker flags, appended to the source's (placeholders as there). */
  ldflags?: string[];
  /** Link statically (`-extldflags -static`); only matters with cgo. */
  static?: boolean;
  /** The package's test binary (`go test -c`), as upstream builds e2e.test. */
  test?: boolean;
}

/**
 * An upstream Go module built here. The recipe folder holds a small wrapper module (`go.mod` +
 * `go.sum`, committed) that requires `module` at `version`, so one upstream's requirements never
 * bump another's, and every download is checked against the committed go.sum (`-mod=readonly`).
 */
export interface GoModSource {
  kind: "gomod";
  /** Upstream module path, e.g. `k8s.io/kubernetes`. */
  module: string;
  /** Upstream version as the proxy names it, e.g. `v1.37.2`. */
  version: string;
  /** Sibling modules of the same release required at the same version (e.g. etcd's etcdctl/v3). */
  with?: string[];
  /**
   * Requirements pinned to another version than upstream's (`module → version`), written by bump.ts
   * as `replace` lines: for a dependency the module proxy does not serve at upstream's version.
   */
  replaces?: Record<string, string>;
  /** Output file name → package path (or its build settings). */
  binaries: Record<string, string | GoBinary>;
  /** Default for every binary: cgo on (needs gcc) or off (default). */
  cgo?: boolean;
  /** Default build tags. */
  tags?: string[];
  /**
   * Linker flags besides `-s -w`, usually `-X pkg.var=value` version stamps. Placeholders:
   * `${version}` (`v1.37.2`), `${semver}` (`1.37.2`), `${major}`, `${minor}`, `${patch}`,
   * `${commit}` (the upstream commit the proxy reports, or empty), `${date}` (the release time,
   * or SOURCE_DATE_EPOCH when set, RFC 3339).
   */
  ldflags?: string[];
  /** pkg-config names cgo needs (e.g. `libseccomp`), checked before building. */
  pkgConfig?: string[];
  /** Script beside the recipe run after the Go builds, with MODDIR (upstream source), OUT, WORK, GO. */
  script?: string;
}

/** What a gomod build records about itself (in asset.json and the image manifest). */
export interface GoModInfo {
  module: string;
  version: string;
  /** The upstream module's `h1:` hash as the committed go.sum pins it. */
  h1: string;
  /** sha256 of the committed go.sum. */
  goSum: string;
  /** `go env GOVERSION` of the toolchain that built it. */
  toolchain: string;
  commit: string;
}

/** Folders of Go's caches, kept beside the asset cache so CI and later builds reuse them. */
export function goCaches(cacheRoot: string): { GOMODCACHE: string; GOCACHE: string; GOPATH: string } {
  return { GOMODCACHE: join(cacheRoot, "go/mod"), GOCACHE: join(cacheRoot, "go/build"), GOPATH: join(cacheRoot, "go/path") };
}

/** Minimum Go a wrapper needs: its go.mod's `go` line. */
export function requiredGo(goMod: string): string {
  const m = /^go\s+(\d+\.\d+(?:\.\d+)?)\s*$/m.exec(goMod);
  return m?.[1] ?? "1.21";
}

/** Compares dotted versions numerically: -1, 0, 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Candidate `go` commands: $PLANET_GO, the toolchain host-deps.sh installs, /usr/local/go, PATH. */
function goCandidates(cacheRoot: string): string[] {
  const list = [
    process.env.PLANET_GO,
    join(cacheRoot, "go/toolchain/bin/go"),
    "/usr/local/go/bin/go",
    Bun.which("go") ?? undefined,
  ];
  return [...new Set(list.filter((p): p is string => !!p && existsSync(p)))];
}

export interface GoToolchain {
  /** The go command. */
  go: string;
  /** `go1.26.8` */
  version: string;
  env: Record<string, string>;
}

/**
 * Picks the Go that builds a wrapper needing Go ≥ `need`: the newest installed one; when that is
 * older but knows GOTOOLCHAIN (≥ 1.21), the go command fetches `go<need>` from the module proxy.
 */
export async function pickGo(component: string, need: string, cacheRoot: string): Promise<GoToolchain> {
  const base = { ...goCaches(cacheRoot), GOFLAGS: "-mod=readonly -modcacherw", GOWORK: "off" };
  const found: { go: string; version: string }[] = [];
  for (const go of goCandidates(cacheRoot)) {
    const res = await run([go, "env", "GOVERSION"], { env: { ...base, GOTOOLCHAIN: "local" } });
    const v = res.stdout.trim();
    if (res.exitCode === 0 && v.startsWith("go")) found.push({ go, version: v });
  }
  found.sort((a, b) => compareVersions(b.version.slice(2), a.version.slice(2)));
  const best = found[0];
  if (!best)
    throw new PlanetError("GO_MISSING", `${component}: no Go toolchain found; run build.assets/host-deps.sh (or set PLANET_GO)`, {
      phase: "assets",
    });
  if (compareVersions(best.version.slice(2), need) >= 0) return { ...best, env: { ...base, GOTOOLCHAIN: "local" } };
  if (compareVersions(best.version.slice(2), "1.21") >= 0) {
    const env = { ...base, GOTOOLCHAIN: `go${need.split(".").length === 2 ? `${need}.0` : need}` };
    const res = await run([best.go, "env", "GOVERSION"], { env });
    if (res.exitCode === 0) return { go: best.go, version: res.stdout.trim(), env };
  }
  throw new PlanetError(
    "GO_TOO_OLD",
    `${component}: needs Go ≥ ${need}, the newest found is ${best.version} (${best.go}); run build.assets/host-deps.sh, which installs Go from the module proxy`,
    { phase: "assets" },
  );
}

/**
 * Turns the go command's stderr into one line naming the component, the module and the fix. Go's
 * own wording is matched; anything else keeps its last meaningful line.
 */
export function classifyGoError(component: string, recipeDir: string, stderr: string): PlanetError {
  const lines = stderr.split("\n").map((l) => l.trim());
  const find = (re: RegExp) => lines.map((l) => re.exec(l)).find((m) => m);
  const opts = { phase: "assets" };
  let m = find(/verifying ([^@\s]+)@(\S+?):? checksum mismatch/) ?? find(/^(\S+)@(\S+): checksum mismatch/);
  if (m) {
    const got = find(/downloaded:\s*(h1:\S+)/)?.[1];
    const want = find(/go\.sum:\s*(h1:\S+)/)?.[1];
    return new PlanetError(
      "GO_CHECKSUM",
      `${component}: ${m[1]}@${m[2]} does not match ${recipeDir}/go.sum${got && want ? ` (downloaded ${got}, go.sum ${want})` : ""} — restore go.sum from git, or re-pin deliberately with build.assets/bump.ts`,
      opts,
    );
  }
  m = find(
    /missing go\.sum entry for (?:module providing package \S+ \(imported by \S+\)|go\.mod file|module) ?;?.*?(\S+@\S+)?$/,
  );
  if (m || lines.some((l) => l.includes("missing go.sum entry")))
    return new PlanetError(
      "GO_SUM_MISSING",
      `${component}: ${recipeDir}/go.sum lacks a line the build needs (${lines.find((l) => l.includes("missing go.sum entry"))}) — run build.assets/bump.ts ${component} to re-tidy`,
      opts,
    );
  m =
    find(/(\S+)@(\S+): (?:reading|verifying) \S+: (404 Not Found|410 Gone|403 Forbidden)/) ??
    find(/(\S+)@(\S+): .*(unknown revision|invalid version)/);
  if (m)
    return new PlanetError(
      "GO_MODULE_UNKNOWN",
      `${component}: the module proxy has no ${m[1]}@${m[2]} (${m[3]}) — fix the version in ${recipeDir}/index.ts and go.mod`,
      opts,
    );
  m = find(
    /(\S+)@(\S+): .*?(dial tcp|no such host|connection refused|i\/o timeout|proxyconnect|TLS handshake timeout|network is unreachable)/,
  );
  if (m)
    return new PlanetError(
      "GO_PROXY_UNREACHABLE",
      `${component}: cannot download ${m[1]}@${m[2]} from GOPROXY=${process.env.GOPROXY || "(the go command's default)"} (${m[3]}) — check the network or point GOPROXY at a reachable mirror`,
      opts,
    );
  m = find(/requires go >= (\S+)/) ?? find(/go\.mod requires go >= (\S+)/);
  if (m) return new PlanetError("GO_TOO_OLD", `${component}: needs Go ≥ ${m[1]} — run build.assets/host-deps.sh`, opts);
  if (lines.some((l) => /C compiler "?\S+"? not found|exec: "gcc"/.test(l)))
    return new PlanetError("GO_CGO", `${component}: cgo needs a C compiler — apt-get install build-essential`, opts);
  const last = lines.filter((l) => l && !l.startsWith("go: downloading")).at(-1) ?? "go build failed";
  return new PlanetError("ASSET_BUILD", `${component}: ${last}`, opts);
}

/** Expands `${name}` placeholders of ldflags. */
export function expandLdflags(flags: string[], vars: Record<string, string>): string[] {
  return flags.map((f) =>
    f.replace(/\$\{(\w+)\}/g, (all, k: string) => {
      if (!(k in vars)) throw new PlanetError("RECIPE_INVALID", `unknown ldflags placeholder ${all}`, { phase: "assets" });
      return vars[k] as string;
    }),
  );
}

/** The `h1:` line of `module@version` in a go.sum. */
export function goSumHash(goSum: string, module: string, version: string): string | undefined {
  const line = goSum.split("\n").find((l) => l.startsWith(`${module} ${version} h1:`));
  return line?.split(" ")[2];
}

/** Checks that the wrapper module in `recipeDir` pins what the recipe says. */
export function checkWrapper(component: string, recipeDir: string, src: GoModSource): { goMod: string; goSum: string } {
  const modPath = join(recipeDir, "go.mod");
  const sumPath = join(recipeDir, "go.sum");
  if (!existsSync(modPath) || !existsSync(sumPath))
    throw new PlanetError(
      "RECIPE_INVALID",
      `${component}: ${recipeDir} needs a go.mod and go.sum wrapping ${src.module} (create them with build.assets/bump.ts ${component} ${src.version})`,
      { phase: "assets" },
    );
  const goMod = readFileSync(modPath, "utf8");
  const goSum = readFileSync(sumPath, "utf8");
  const req = new RegExp(`^\\s*(?:require\\s+)?${src.module.replace(/[.]/g, "\\.")}\\s+(\\S+)`, "m").exec(goMod);
  if (!req)
    throw new PlanetError("RECIPE_INVALID", `${component}: ${modPath} does not require ${src.module}`, { phase: "assets" });
  if (req[1] !== src.version)
    throw new PlanetError(
      "RECIPE_INVALID",
      `${component}: recipe says ${src.module}@${src.version} but ${modPath} requires ${req[1]} — run build.assets/bump.ts ${component} ${src.version}`,
      { phase: "assets" },
    );
  return { goMod, goSum };
}

/** What `go mod download -json` says of one module version. */
export interface GoDownload {
  Dir?: string;
  GoMod?: string;
  /** Path of the proxy's .info file (JSON with the version's `Time`). */
  Info?: string;
  Origin?: { Hash?: string };
  Error?: string;
}

/**
 * Downloads `module@version` outside any module (cwd /), so the answer is the proxy's and the
 * checksum database's, not a go.sum's; a failure becomes one classified line.
 */
export async function goDownload(tc: GoToolchain, component: string, recipeDir: string, modVer: string): Promise<GoDownload> {
  const res = await run([tc.go, "mod", "download", "-json", modVer], { cwd: "/", env: { ...tc.env, GOFLAGS: "-modcacherw" } });
  let info: GoDownload;
  try {
    info = JSON.parse(res.stdout) as GoDownload;
  } catch {
    info = { Error: res.stderr };
  }
  if (info.Error || res.exitCode !== 0) throw classifyGoError(component, recipeDir, `${info.Error ?? ""}\n${res.stderr}`);
  return info;
}

/** Placeholder values for ldflags from the module's version and the proxy's .info/origin. */
async function stampVars(
  component: string,
  recipeDir: string,
  tc: GoToolchain,
  src: GoModSource,
): Promise<Record<string, string>> {
  // Fetching the upstream module first gives the clearest error for a wrong version or proxy.
  const info = await goDownload(tc, component, recipeDir, `${src.module}@${src.version}`);
  const semver = src.version.replace(/^v/, "");
  const [major = "", minor = "", patch = ""] = semver.split(/[.+-]/);
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const time =
    info.Info && existsSync(info.Info) ? (JSON.parse(readFileSync(info.Info, "utf8")) as { Time?: string }).Time : undefined;
  const date = epoch ? new Date(Number(epoch) * 1000) : time ? new Date(time) : new Date(0);
  return {
    version: src.version,
    semver,
    major,
    minor,
    patch,
    commit: info.Origin?.Hash ?? "",
    date: date.toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
}

/**
 * Builds every binary of a gomod recipe into `out` with the toolchain `tc` (picked once by the
 * caller, whose cache key names it). `work` is scratch (the wrapper is copied there so
 * the checkout is never written). Returns the bill-of-materials facts.
 */
export async function buildGoModule(
  component: string,
  recipeDir: string,
  src: GoModSource,
  tc: GoToolchain,
  out: string,
  work: string,
  logFile: string,
): Promise<GoModInfo> {
  const { goMod, goSum } = checkWrapper(component, recipeDir, src);
  const wants = Object.values(src.binaries).map((b) => (typeof b === "string" ? { package: b } : b));
  if (wants.some((b) => b.cgo ?? src.cgo)) {
    if (!have("gcc"))
      throw new PlanetError("GO_CGO", `${component}: cgo needs a C compiler — apt-get install build-essential`, {
        phase: "assets",
      });
    for (const lib of src.pkgConfig ?? []) {
      const res = await run(["pkg-config", "--exists", lib]);
      if (res.exitCode !== 0)
        throw new PlanetError(
          "GO_CGO",
          `${component}: cgo needs the ${lib} headers (pkg-config ${lib}) — apt-get install ${lib}-dev pkg-config`,
          { phase: "assets" },
        );
    }
  }
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, "go.mod"), goMod);
  writeFileSync(join(work, "go.sum"), goSum);
  writeFileSync(logFile, `# ${component}: ${src.module}@${src.version} with ${tc.version} (${tc.go})\n`, { flag: "a" });
  const vars = await stampVars(component, recipeDir, tc, src);
  const h1 = goSumHash(goSum, src.module, src.version);
  if (!h1)
    throw new PlanetError("GO_SUM_MISSING", `${component}: ${recipeDir}/go.sum has no line for ${src.module} ${src.version}`, {
      phase: "assets",
    });
  const runGo = async (args: string[], extraEnv: Record<string, string>) => {
    const opts: RunOptions = { cwd: work, env: { ...tc.env, ...extraEnv } };
    const res = await run([tc.go, ...args], opts);
    writeFileSync(logFile, `$ go ${args.join(" ")}\n${res.stdout}${res.stderr}`, { flag: "a" });
    if (res.exitCode !== 0) throw classifyGoError(component, recipeDir, res.stderr);
    return res.stdout;
  };
  for (const [name, b] of Object.entries(src.binaries)) {
    const bin: GoBinary = typeof b === "string" ? { package: b } : b;
    const cgo = bin.cgo ?? src.cgo ?? false;
    const tags = bin.tags ?? src.tags ?? [];
    const ld = ["-s", "-w", ...expandLdflags([...(src.ldflags ?? []), ...(bin.ldflags ?? [])], vars)];
    if (cgo && bin.static) ld.push("-extldflags", "-static");
    const args = bin.test
      ? ["test", "-c", "-trimpath", "-buildvcs=false", "-o", join(out, name)]
      : ["build", "-trimpath", "-buildvcs=false", "-o", join(out, name)];
    if (tags.length) args.push("-tags", tags.join(","));
    args.push(`-ldflags=all=${ld.join(" ")}`, bin.package);
    await runGo(args, { CGO_ENABLED: cgo ? "1" : "0" });
  }
  if (src.script) {
    const dir = (await runGo(["list", "-m", "-f", "{{.Dir}}", src.module], {})).trim();
    const res = await run(["bash", join(recipeDir, src.script)], {
      cwd: work,
      env: { ...tc.env, MODDIR: dir, OUT: out, WORK: work, GO: tc.go, VERSION: src.version },
      logFile,
    });
    if (res.exitCode !== 0)
      throw new PlanetError("ASSET_BUILD", `${component}: ${src.script} exited ${res.exitCode} (log: ${logFile})`, {
        phase: "assets",
      });
  }
  return {
    module: src.module,
    version: src.version,
    h1,
    goSum: sha256Text(goSum),
    toolchain: tc.version,
    commit: vars.commit ?? "",
  };
}

function sha256Text(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("hex");
}
