import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = mkdtempSync(join(tmpdir(), "planet-bump-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const bump = (...args: string[]) => {
  const res = Bun.spawnSync([process.execPath, join(import.meta.dir, "bump.ts"), ...args]);
  return { code: res.exitCode, out: res.stdout.toString(), err: res.stderr.toString() };
};
const copy = (name: string) => {
  const dir = join(root, name);
  cpSync(join(import.meta.dir, "serf"), dir, { recursive: true });
  return dir;
};
const files = (dir: string) => ["go.mod", "go.sum", "index.ts"].map((f) => readFileSync(join(dir, f), "utf8"));

// Talks to the module proxy (set PLANET_OFFLINE=1 to skip).
describe.if(process.env.PLANET_OFFLINE !== "1")("build.assets/bump.ts (needs the network)", () => {
  test("moves a recipe to another release: go.mod, go.sum and index.ts, and says what moved", () => {
    const dir = copy("serf");
    const res = bump("serf", "v0.10.3", "--dir", dir);
    expect(res.err).toBe("");
    expect(res.code).toBe(0);
    const [mod, sum, index] = files(dir);
    expect(mod).toMatch(/^\s*(require )?github\.com\/hashicorp\/serf v0\.10\.3( \/\/ indirect)?$/m);
    expect(sum).toMatch(/^github\.com\/hashicorp\/serf v0\.10\.3 h1:/m);
    expect(index).toContain('version: "v0.10.3"');
    expect(index).toContain('version: "0.10.3"');
    expect(index).not.toContain("0.10.4");
    expect(res.out).toContain("~ github.com/hashicorp/serf v0.10.4 → v0.10.3");
    // The checkout's own recipe is untouched.
    expect(readFileSync(join(import.meta.dir, "serf/go.mod"), "utf8")).toContain("serf v0.10.4");
  }, 120_000);

  test("a version the proxy does not have: one line, exit 1, nothing changed", () => {
    const dir = copy("serf-bad");
    const before = files(dir);
    const res = bump("serf", "v0.10.99", "--dir", dir);
    expect(res.code).toBe(1);
    expect(res.err.trim()).toMatch(
      /^GO_MODULE_UNKNOWN: \(assets\) serf: the module proxy has no github\.com\/hashicorp\/serf@v0\.10\.99/,
    );
    expect(files(dir)).toEqual(before);
  }, 60_000);

  test("usage errors name what to fix", () => {
    expect(bump("serf").err).toMatch(/^USAGE: usage: bun build\.assets\/bump\.ts <asset> <vX\.Y\.Z>/);
    expect(bump("nope", "v1.0.0").err).toMatch(/^UNKNOWN_ASSET: no recipe named nope \(known: kubernetes, etcd/);
    expect(bump("busybox-static", "v1.0.0").err).toMatch(/busybox-static is a deb asset/);
  });
});
