/**
 * OCI layouts as the build writes them, pushed into the real distribution registry (the `registry`
 * asset, the same binary the registry plugin runs) over a unix socket, as the image import does.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recipes } from "../../build.assets/index.ts";
import { parseRef } from "../image-ref.ts";
import { poll } from "../util.ts";
import { ensureAsset } from "./assets.ts";
import { MEDIA, readOciLayout, writeOciLayout } from "./oci-layout.ts";
import { pushLayouts, registryFetch } from "./push.ts";

const work = mkdtempSync(join(tmpdir(), "planet-push-"));
const offline = process.env.PLANET_OFFLINE === "1";

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("OCI image layouts", () => {
  test("one gzip layer, a config with the entrypoint, one index entry per reference, same bytes twice", async () => {
    writeFileSync(join(work, "hello"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
    const spec = {
      refs: ["example.test/team/hello:1.0", "example.test/team/hello:latest"],
      files: { [join(work, "hello")]: "/bin/hello" },
      write: { "/etc/motd": "hi\n" },
      links: { "/hello": "bin/hello" },
      modes: { "/etc/motd": 0o600 },
      entrypoint: ["/hello"],
      env: { GREETING: "hi" },
    };
    await writeOciLayout(spec, join(work, "a"));
    await writeOciLayout(spec, join(work, "b"));
    const images = readOciLayout(join(work, "a"));
    expect(images.map((i) => i.ref)).toEqual(spec.refs);
    expect(images[0]?.manifest.digest).toBe(images[1]?.manifest.digest as string);
    expect(readFileSync(join(work, "a/index.json"), "utf8")).toBe(readFileSync(join(work, "b/index.json"), "utf8"));
    const [config, layer] = images[0]?.blobs ?? [];
    const cfg = JSON.parse(readFileSync(config?.path as string, "utf8"));
    expect(cfg.config.Entrypoint).toEqual(["/hello"]);
    expect(cfg.config.Env).toContain("GREETING=hi");
    const manifest = JSON.parse(readFileSync(images[0]?.manifest.path as string, "utf8"));
    expect(manifest.layers[0].mediaType).toBe(MEDIA.layer);
    const listing = Bun.spawnSync(["tar", "-tvzf", layer?.path as string]).stdout.toString();
    expect(listing).toMatch(/-rwxr-xr-x .* \.\/bin\/hello/);
    expect(listing).toMatch(/-rw------- .* \.\/etc\/motd/);
    expect(listing).toMatch(/\.\/hello -> bin\/hello/);
  });

  test("a reference without its registry, or not a layout, is one clear error", async () => {
    expect(() => parseRef("busybox:latest")).toThrow(/registry spelled out/);
    expect(() => readOciLayout(work)).toThrow(/not an OCI image layout/);
  });
});

describe.if(!offline && process.getuid?.() === 0)("push into the real registry", () => {
  let registry = "";
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  const sock = join(work, "registry.sock");
  const start = async (readonly: boolean) => {
    const cfg = join(work, `registry-${readonly}.yml`);
    writeFileSync(
      cfg,
      [
        "version: 0.1",
        "log: { level: error }",
        "storage:",
        `  filesystem: { rootdirectory: ${join(work, "storage")} }`,
        `  maintenance: { readonly: { enabled: ${readonly} }, uploadpurging: { enabled: false } }`,
        `http: { net: unix, addr: ${sock}, relativeurls: true, secret: test }`,
        "",
      ].join("\n"),
    );
    rmSync(sock, { force: true });
    proc = Bun.spawn([registry, "serve", cfg], { stdout: "ignore", stderr: "ignore" });
    await poll(() => existsSync(sock) || undefined, 10_000, 50);
  };
  const stop = async () => {
    proc?.kill();
    await proc?.exited;
  };

  beforeAll(async () => {
    const recipe = recipes.find((r) => r.def.name === "registry");
    if (!recipe) throw new Error("no registry recipe");
    registry = join((await ensureAsset(recipe.def, recipe.dir)).out, "registry");
  }, 1_800_000);
  afterAll(stop);

  test("every reference lands in a repository named with its registry; a second push sends nothing", async () => {
    await start(false);
    const seen: string[] = [];
    const n = await pushLayouts({ url: `unix:${sock}` }, [join(work, "a")], (ref, state) => seen.push(`${ref} ${state}`));
    expect(n).toBe(2);
    expect(seen).toEqual(["example.test/team/hello:1.0 pushed", "example.test/team/hello:latest pushed"]);
    const f = registryFetch({ url: `unix:${sock}` });
    const tags = (await (await f("/v2/example.test/team/hello/tags/list")).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(["1.0", "latest"]);
    const again: string[] = [];
    expect(await pushLayouts({ url: `unix:${sock}` }, [join(work, "b")], (_ref, state) => again.push(state))).toBe(0);
    expect(again).toEqual(["present", "present"]);
    await stop();
  }, 60_000);

  test("a read-only registry refuses the push with one line naming the image", async () => {
    writeFileSync(join(work, "other"), "x");
    await writeOciLayout({ refs: ["example.test/other:1"], files: { [join(work, "other")]: "/other" } }, join(work, "c"));
    await start(true);
    await expect(pushLayouts({ url: `unix:${sock}` }, [join(work, "c")])).rejects.toThrow(
      /example\.test\/other:1: start upload: HTTP 405/,
    );
    await stop();
  }, 60_000);
});
