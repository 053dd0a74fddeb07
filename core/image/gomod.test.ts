import { afterAll, describe, expect, test } from "bun:test";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import serf from "../../build.assets/serf/index.ts";
import { type ErrorCode, PlanetError } from "../errors.ts";
import { type AssetDef, cacheRoot, ensureAsset } from "./assets.ts";
import {
  checkWrapper,
  classifyGoError,
  compareVersions,
  expandLdflags,
  type GoModSource,
  goSumHash,
  pickGo,
  requiredGo,
} from "./gomod.ts";

const SERF_DIR = join(import.meta.dir, "../../build.assets/serf");
const root = mkdtempSync(join(tmpdir(), "planet-gomod-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("gomod: pure parts", () => {
  test("versions compare numerically; the wrapper's go line is the minimum Go", () => {
    expect(compareVersions("1.26.8", "1.26.10")).toBe(-1);
    expect(compareVersions("1.27", "1.26.8")).toBe(1);
    expect(compareVersions("1.26.0", "1.26")).toBe(0);
    expect(requiredGo("module x\n\ngo 1.26.0\n\nrequire y v1\n")).toBe("1.26.0");
  });

  test("ldflags placeholders expand; an unknown one is an error", () => {
    expect(expandLdflags(["-X a.v=${version}", "-X a.m=${major}"], { version: "v1.37.2", major: "1" })).toEqual([
      "-X a.v=v1.37.2",
      "-X a.m=1",
    ]);
    expect(() => expandLdflags(["-X a=${nope}"], {})).toThrow(/unknown ldflags placeholder \$\{nope\}/);
  });

  test("go.sum: the module's own h1 line", () => {
    const sum = "a.io/x v1.0.0 h1:AAA=\na.io/x v1.0.0/go.mod h1:BBB=\n";
    expect(goSumHash(sum, "a.io/x", "v1.0.0")).toBe("h1:AAA=");
    expect(goSumHash(sum, "a.io/x", "v1.0.1")).toBeUndefined();
  });

  const cases: [ErrorCode, string, RegExp][] = [
    [
      "GO_CHECKSUM",
      "verifying github.com/hashicorp/serf@v0.10.4: checksum mismatch\n\tdownloaded: h1:TCQ=\n\tgo.sum:     h1:ACQ=\n\nSECURITY ERROR\n",
      /github\.com\/hashicorp\/serf@v0\.10\.4 does not match .*go\.sum \(downloaded h1:TCQ=, go\.sum h1:ACQ=\)/,
    ],
    [
      "GO_MODULE_UNKNOWN",
      "go: k8s.io/kubernetes@v1.99.0: reading https://proxy.example/k8s.io/kubernetes/@v/v1.99.0.info: 410 Gone\n",
      /no k8s\.io\/kubernetes@v1\.99\.0 \(410 Gone\) — fix the version/,
    ],
    [
      "GO_PROXY_UNREACHABLE",
      'go: x.io/y@v1.0.0: Get "http://127.0.0.1:1/x.io/y/@v/v1.0.0.info": dial tcp 127.0.0.1:1: connect: connection refused\n',
      /cannot download x\.io\/y@v1\.0\.0 from GOPROXY=.*\(dial tcp\)/,
    ],
    ["GO_TOO_OLD", "go: go.mod requires go >= 1.27 (running go 1.26.8; GOTOOLCHAIN=local)\n", /needs Go ≥ 1\.27/],
    [
      "GO_CGO",
      'runtime/cgo: cgo: C compiler "gcc" not found: exec: "gcc": executable file not found in $PATH\n',
      /build-essential/,
    ],
    ["GO_SUM_MISSING", "main.go:3:2: missing go.sum entry for module providing package x.io/y (imported by z)\n", /re-tidy/],
  ];
  for (const [code, stderr, message] of cases)
    test(`go's ${code} wording becomes one line naming the component and the fix`, () => {
      const err = classifyGoError("serf", "/r", stderr);
      expect(err.code).toBe(code);
      expect(err.message).toMatch(/^serf: /);
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain("\n");
    });

  test("the wrapper must exist and require the recipe's version", () => {
    const src = serf.source as GoModSource;
    expect(() => checkWrapper("serf", root, src)).toThrow(/needs a go\.mod and go\.sum wrapping github\.com\/hashicorp\/serf/);
    expect(() => checkWrapper("serf", SERF_DIR, { ...src, version: "v0.10.3" })).toThrow(
      /recipe says github\.com\/hashicorp\/serf@v0\.10\.3 but .* requires v0\.10\.4/,
    );
    expect(checkWrapper("serf", SERF_DIR, src).goSum).toContain("github.com/hashicorp/serf v0.10.4 h1:");
  });
});

/** Builds against the real module proxy (the serf recipe: small, and its modules are usually cached). */
const online = process.env.PLANET_OFFLINE !== "1" && Bun.which("gcc") !== null;

describe.if(online)("gomod: real builds through the module proxy (needs the network: set PLANET_OFFLINE=1 to skip)", () => {
  // A cache of its own for the assets, sharing Go's module and build caches with the real one.
  const cache = join(root, "cache");
  const saved = process.env.PLANET_CACHE_DIR;
  const realGo = join(cacheRoot(), "go");
  const withCache = async <T>(work: () => Promise<T>, dir = cache): Promise<T> => {
    mkdirSync(dir, { recursive: true });
    mkdirSync(realGo, { recursive: true });
    if (dir === cache && !existsSync(join(cache, "go"))) symlinkSync(realGo, join(cache, "go"));
    process.env.PLANET_CACHE_DIR = dir;
    try {
      return await work();
    } finally {
      if (saved === undefined) delete process.env.PLANET_CACHE_DIR;
      else process.env.PLANET_CACHE_DIR = saved;
    }
  };
  /** A copy of the serf recipe folder, optionally with its go.mod/go.sum edited. */
  const recipeCopy = (name: string, edit: (goMod: string, goSum: string) => [string, string] = (m, s) => [m, s]) => {
    const dir = join(root, name);
    cpSync(SERF_DIR, dir, { recursive: true });
    const [m, s] = edit(readFileSync(join(dir, "go.mod"), "utf8"), readFileSync(join(dir, "go.sum"), "utf8"));
    writeFileSync(join(dir, "go.mod"), m);
    writeFileSync(join(dir, "go.sum"), s);
    return dir;
  };
  const leftovers = (name: string) =>
    readdirSync(join(cache, "assets")).filter((d) => d.startsWith(`${name}-`) && !d.endsWith(".log"));

  test("builds the binary stamped with its version, records the bill of materials, then reuses the cache", async () => {
    const dir = recipeCopy("serf-ok");
    const first = await withCache(() => ensureAsset(serf, dir));
    expect(first.record.gomod).toMatchObject({
      module: "github.com/hashicorp/serf",
      version: "v0.10.4",
      h1: expect.stringMatching(/^h1:/),
      goSum: expect.stringMatching(/^[0-9a-f]{64}$/),
      toolchain: expect.stringMatching(/^go1\.\d+/),
    });
    const out = Bun.spawnSync([join(first.out, "serf"), "version"]).stdout.toString();
    expect(out.split("\n")[0]).toMatch(/^(Serf v)?0\.10\.4$/);
    const again = await withCache(() => ensureAsset(serf, dir));
    expect(again.cached).toBe(true);
    expect(again.record.files).toEqual(first.record.files);
  }, 600_000);

  test("a tampered go.sum line fails with one line naming the module; nothing is cached", async () => {
    const dir = recipeCopy("serf-tampered", (m, s) => [
      m,
      s.replace(
        /^(github\.com\/hashicorp\/serf v0\.10\.4 h1:)./m,
        (_all, head: string) => `${head}${s.includes(`${head}A`) ? "B" : "A"}`,
      ),
    ]);
    const def: AssetDef = { ...serf, name: "serf-tampered" };
    const err = (await withCache(() => ensureAsset(def, dir)).catch((e) => e)) as PlanetError;
    expect(err).toBeInstanceOf(PlanetError);
    expect(err.code).toBe("GO_CHECKSUM");
    expect(err.toLine()).toMatch(/^GO_CHECKSUM: \(assets\) serf-tampered: github\.com\/hashicorp\/serf@v0\.10\.4 does not match/);
    expect(leftovers("serf-tampered")).toEqual([]);
  }, 120_000);

  test("a version the proxy does not have is named as such", async () => {
    const dir = recipeCopy("serf-unknown", (m, s) => [m.replaceAll("serf v0.10.4", "serf v0.10.99"), s]);
    const def: AssetDef = { ...serf, name: "serf-unknown", source: { ...(serf.source as GoModSource), version: "v0.10.99" } };
    const err = (await withCache(() => ensureAsset(def, dir)).catch((e) => e)) as PlanetError;
    expect(err.code).toBe("GO_MODULE_UNKNOWN");
    expect(err.message).toContain("github.com/hashicorp/serf@v0.10.99");
    expect(leftovers("serf-unknown")).toEqual([]);
  }, 120_000);

  test("an unreachable proxy is named, with the module it needed", async () => {
    const dir = recipeCopy("serf-noproxy", (m, s) => [m.replaceAll("serf v0.10.4", "serf v0.10.3"), s]);
    const def: AssetDef = { ...serf, name: "serf-noproxy", source: { ...(serf.source as GoModSource), version: "v0.10.3" } };
    const savedProxy = process.env.GOPROXY;
    process.env.GOPROXY = "http://127.0.0.1:1";
    try {
      // Empty Go caches of its own: nothing may come from an earlier download.
      const err = (await withCache(() => ensureAsset(def, dir), join(root, "cold-cache")).catch((e) => e)) as PlanetError;
      expect(err.code).toBe("GO_PROXY_UNREACHABLE");
      expect(err.message).toMatch(
        /serf-noproxy: cannot download github\.com\/hashicorp\/serf@v0\.10\.3 from GOPROXY=http:\/\/127\.0\.0\.1:1/,
      );
    } finally {
      if (savedProxy === undefined) delete process.env.GOPROXY;
      else process.env.GOPROXY = savedProxy;
    }
  }, 120_000);

  test("cgo without the library's headers, and a Go older than the wrapper needs, are refused up front", async () => {
    const dir = recipeCopy("serf-cgo");
    const def: AssetDef = {
      ...serf,
      name: "serf-cgo",
      source: { ...(serf.source as GoModSource), cgo: true, pkgConfig: ["libplanet-not-there"] },
    };
    await expect(withCache(() => ensureAsset(def, dir))).rejects.toThrow(/serf-cgo: cgo needs the libplanet-not-there headers/);
    await expect(pickGo("future", "99.0", cacheRoot())).rejects.toMatchObject({ code: "GO_TOO_OLD" });
  }, 120_000);
});
