import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PlanetError } from "../errors.ts";
import { type AssetDef, assetKey, ensureAsset } from "./assets.ts";
import { imageArch } from "./oci-layout.ts";

const root = mkdtempSync(join(tmpdir(), "planet-assets-"));
const saved = process.env.PLANET_CACHE_DIR;
const body = "#!/bin/sh\necho pinned\n";
const sha = createHash("sha256").update(body).digest("hex");
let server: ReturnType<typeof Bun.serve>;
let hits = 0;

beforeAll(() => {
  process.env.PLANET_CACHE_DIR = join(root, "cache");
  // A local HTTP server on loopback stands in for "the internet".
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      hits++;
      return new URL(req.url).pathname === "/tool" ? new Response(body) : new Response("no", { status: 404 });
    },
  });
});
afterAll(() => {
  server.stop(true);
  // Assigning undefined would store the string "undefined" for every later test in this process.
  if (saved === undefined) delete process.env.PLANET_CACHE_DIR;
  else process.env.PLANET_CACHE_DIR = saved;
  rmSync(root, { recursive: true, force: true });
});

const urlAsset = (sha256: string, path = "/tool"): AssetDef => ({
  name: "tool",
  version: "1.0",
  source: { kind: "url", url: `http://127.0.0.1:${server.port}${path}`, sha256 },
  files: { tool: "/usr/bin/tool" },
});

describe("assets", () => {
  test("url + sha256: fetched once, verified, then reused from the cache", async () => {
    const first = await ensureAsset(urlAsset(sha), root);
    expect(first.cached).toBe(false);
    expect(first.record.sha256).toBe(sha);
    expect(readFileSync(join(first.out, "tool"), "utf8")).toBe(body);
    const before = hits;
    const second = await ensureAsset(urlAsset(sha), root);
    expect(second.cached).toBe(true);
    expect(hits).toBe(before);
    // A record that is not ours is never trusted: the entry is built again.
    writeFileSync(join(second.out, "..", "asset.json"), '{"name": 1}');
    const third = await ensureAsset(urlAsset(sha), root);
    expect(third.cached).toBe(false);
    expect(hits).toBe(before + 1);
    expect(third.record.sha256).toBe(sha);
  });

  test("a checksum mismatch is an error and leaves no cache entry", async () => {
    const wrong = "0".repeat(64);
    const err = (await ensureAsset({ ...urlAsset(wrong), name: "tool-bad" }, root).catch((e) => e)) as PlanetError;
    expect(err).toBeInstanceOf(PlanetError);
    expect(err.code).toBe("ASSET_CHECKSUM");
    expect(err.message).toContain(sha);
    expect(readdirSync(join(root, "cache/assets")).filter((d) => d.startsWith("tool-bad"))).toEqual([]);
  });

  test("HTTP errors name the asset", async () => {
    await expect(ensureAsset({ ...urlAsset(sha, "/missing"), name: "tool-404" }, root)).rejects.toThrow(/tool-404: .* HTTP 404/);
  });

  test("local path, with and without sha256", async () => {
    const dir = join(root, "local");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "bin"), body);
    const ok = await ensureAsset(
      { name: "loc", version: "1", source: { kind: "local", path: join(dir, "bin"), sha256: sha } },
      root,
    );
    expect(ok.record.files).toEqual({ bin: sha });
    await expect(
      ensureAsset(
        { name: "loc2", version: "1", source: { kind: "local", path: join(dir, "bin"), sha256: "1".repeat(64) } },
        root,
      ),
    ).rejects.toMatchObject({ code: "ASSET_CHECKSUM" });
    await expect(
      ensureAsset({ name: "loc3", version: "1", source: { kind: "local", path: join(dir, "nope") } }, root),
    ).rejects.toMatchObject({
      code: "ASSET_FETCH",
    });
  });

  test("a listed file the output lacks is an error", async () => {
    const def = { ...urlAsset(sha), name: "tool-files", files: { "not-there": "/usr/bin/x" } };
    await expect(ensureAsset(def, root)).rejects.toMatchObject({ code: "ASSET_MISSING_FILE" });
  });

  test("the cache key follows source and version, not where files are installed", () => {
    const a = urlAsset(sha);
    expect(assetKey({ ...a, files: { tool: "/elsewhere" } }, root)).toBe(assetKey(a, root));
    expect(assetKey({ ...a, version: "2.0" }, root)).not.toBe(assetKey(a, root));
  });

  test.if(Bun.which("apt-get") !== null && process.getuid?.() === 0)(
    "deb: a pinned .deb whose sha256 differs is refused",
    async () => {
      const def: AssetDef = {
        name: "deb-bad",
        version: "1",
        source: { kind: "deb", package: "busybox-static", version: "1:1.35.0-4+deb12u1+b1", sha256: "2".repeat(64) },
      };
      await expect(ensureAsset(def, root)).rejects.toMatchObject({ code: "ASSET_CHECKSUM" });
      expect(
        existsSync(join(root, "cache/assets")) && readdirSync(join(root, "cache/assets")).some((d) => d.startsWith("deb-bad")),
      ).toBe(false);
    },
  );
});

describe("bundled image archives", () => {
  test("carry the architecture of the host that built their binaries", () => {
    expect(imageArch("x64")).toBe("amd64");
    expect(imageArch("arm64")).toBe("arm64");
    expect(() => imageArch("mips")).toThrow("no container image architecture for mips");
  });
});

describe("debsrc: a Debian source package built here", () => {
  // A tiny native source package served from a pool on loopback, as the archive lays it out.
  const pool = join(root, "mirror/pool/main/h/hello-planet");
  const recipe = join(root, "recipe");
  let mirror: ReturnType<typeof Bun.serve>;
  let dscSha = "";
  const savedMirror = process.env.PLANET_DEBIAN_MIRROR;

  beforeAll(() => {
    const src = join(root, "pkgsrc/hello-planet-1.0");
    mkdirSync(join(src, "debian/source"), { recursive: true });
    writeFileSync(join(src, "debian/source/format"), "3.0 (native)\n");
    writeFileSync(join(src, "greeting"), "hello from source\n");
    mkdirSync(pool, { recursive: true });
    const tar = join(pool, "hello-planet_1.0.tar.xz");
    Bun.spawnSync(["tar", "-cJf", tar, "-C", join(root, "pkgsrc"), "hello-planet-1.0"]);
    const sum = (algo: string) => createHash(algo).update(readFileSync(tar)).digest("hex");
    const size = readFileSync(tar).length;
    const dsc = [
      "Format: 3.0 (native)",
      "Source: hello-planet",
      "Version: 1.0",
      "Checksums-Sha256:",
      ` ${sum("sha256")} ${size} hello-planet_1.0.tar.xz`,
      "Files:",
      ` ${sum("md5")} ${size} hello-planet_1.0.tar.xz`,
      "",
    ].join("\n");
    writeFileSync(join(pool, "hello-planet_1.0.dsc"), dsc);
    dscSha = createHash("sha256").update(dsc).digest("hex");
    mkdirSync(recipe, { recursive: true });
    writeFileSync(join(recipe, "build.sh"), 'cp greeting "$OUT/greeting"\n');
    mirror = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const file = join(root, "mirror", new URL(req.url).pathname);
        return existsSync(file) ? new Response(Bun.file(file)) : new Response("no", { status: 404 });
      },
    });
    process.env.PLANET_DEBIAN_MIRROR = `http://127.0.0.1:${mirror.port}`;
  });
  afterAll(() => {
    mirror.stop(true);
    if (savedMirror === undefined) delete process.env.PLANET_DEBIAN_MIRROR;
    else process.env.PLANET_DEBIAN_MIRROR = savedMirror;
  });

  const def = (sha256: string, name = "hello-planet"): AssetDef => ({
    name,
    version: "1.0",
    source: { kind: "debsrc", package: "hello-planet", version: "1.0", sha256, script: "build.sh" },
    files: { greeting: "/usr/share/greeting" },
  });

  test.if(Bun.which("dpkg-source") !== null)(
    "the .dsc and every file it lists are checked, unpacked, built by the script",
    async () => {
      const a = await ensureAsset(def(dscSha), recipe);
      expect(readFileSync(join(a.out, "greeting"), "utf8")).toBe("hello from source\n");
      expect(a.record.sha256).toBe(dscSha);
    },
  );

  test("a .dsc whose sha256 differs from the pin, or a listed file that changed: refused, nothing cached", async () => {
    await expect(ensureAsset(def("3".repeat(64), "hello-bad"), recipe)).rejects.toMatchObject({ code: "ASSET_CHECKSUM" });
    writeFileSync(join(pool, "hello-planet_1.0.tar.xz"), "tampered");
    await expect(ensureAsset(def(dscSha, "hello-tampered"), recipe)).rejects.toMatchObject({ code: "ASSET_CHECKSUM" });
    expect(readdirSync(join(root, "cache/assets")).some((d) => d.startsWith("hello-bad") || d.startsWith("hello-tampered"))).toBe(
      false,
    );
  });
});
