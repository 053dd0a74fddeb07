#!/usr/bin/env bun
/**
 * Pins a `gomod` asset to another upstream version: `bun build.assets/bump.ts <asset> <version>
 * [--dir <recipe folder>]` (`--dir` works on a copy of the recipe's folder instead of the checkout's).
 * Creates or rewrites the wrapper module (go.mod + go.sum) beside the recipe — require the upstream
 * module, carry over its `godebug` lines and its replaces of other modules, turn Kubernetes-style
 * staging replaces (`./staging/src/k8s.io/x`) into the published `k8s.io/x v0.N.P`, one `tool` line
 * per binary, `go mod tidy` — then swaps the version in the recipe's index.ts and prints what moved.
 * Nothing in the recipe folder changes unless every step worked.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PlanetError } from "../core/errors.ts";
import { cacheRoot } from "../core/image/assets.ts";
import { classifyGoError, goDownload, pickGo, requiredGo } from "../core/image/gomod.ts";
import { run } from "../core/proc.ts";
import { recipes } from "./index.ts";

const say = (line: string) => process.stdout.write(`${line}\n`);

interface ModJson {
  Go?: string;
  Require?: { Path: string; Version: string }[];
  Replace?: { Old: { Path: string; Version?: string }; New: { Path: string; Version?: string } }[];
  Godebug?: { Key: string; Value: string }[];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dirAt = args.indexOf("--dir");
  const dirArg = dirAt >= 0 ? args.splice(dirAt, 2)[1] : undefined;
  const [name, version] = args;
  if (!name || !version || !/^v\d+\.\d+\.\d+(-[\w.-]+)?$/.test(version))
    throw new PlanetError("USAGE", "usage: bun build.assets/bump.ts <asset> <vX.Y.Z> [--dir <recipe folder>]");
  // With --dir, the recipe that lives there (another version of the same asset); else the default one.
  const recipe =
    recipes.find((r) => r.def.name === name && dirArg && resolve(r.dir) === resolve(dirArg)) ??
    recipes.find((r) => r.def.name === name);
  if (!recipe)
    throw new PlanetError("UNKNOWN_ASSET", `no recipe named ${name} (known: ${recipes.map((r) => r.def.name).join(", ")})`);
  const src = recipe.def.source;
  if (src.kind !== "gomod")
    throw new PlanetError("UNKNOWN_ASSET", `${name} is a ${src.kind} asset; only gomod assets are bumped here`);
  const dir = dirArg ?? recipe.dir;
  const tc = await pickGo(name, "1.21", cacheRoot());
  const work = mkdtempSync(join(tmpdir(), `planet-bump-${name}-`));
  try {
    const go = async (args: string[]): Promise<string> => {
      const res = await run([tc.go, ...args], { cwd: work, env: { ...tc.env, GOFLAGS: "-modcacherw" } });
      if (res.exitCode !== 0) throw classifyGoError(name, dir, res.stderr);
      return res.stdout;
    };
    const dl = await goDownload(tc, name, dir, `${src.module}@${version}`);
    const upstream = JSON.parse(await go(["mod", "edit", "-json", dl.GoMod ?? ""])) as ModJson;
    const oldMod = existsSync(join(dir, "go.mod")) ? readFileSync(join(dir, "go.mod"), "utf8") : "";
    const lines = [`module planet.local/build.assets/${name}`, "", `go ${upstream.Go ?? "1.21"}`, ""];
    // godebug settings apply only in the main module: keep upstream's behaviour.
    for (const g of upstream.Godebug ?? []) lines.push(`godebug ${g.Key}=${g.Value}`);
    lines.push("", `require ${src.module} ${version}`);
    for (const m of src.with ?? []) lines.push(`require ${m} ${version}`);
    lines.push("");
    const staging = version.replace(/^v1\./, "v0.");
    for (const r of upstream.Replace ?? []) {
      if (r.New.Path.startsWith("./") || r.New.Path.startsWith("../")) {
        const req = upstream.Require?.find((q) => q.Path === r.Old.Path);
        // A local path required at v0.0.0 is a staging module published with the release (Kubernetes).
        if (req?.Version === "v0.0.0") lines.push(`replace ${r.Old.Path} => ${r.Old.Path} ${staging}`);
      } else {
        const old = r.Old.Version ? `${r.Old.Path} ${r.Old.Version}` : r.Old.Path;
        lines.push(`replace ${old} => ${r.New.Path} ${r.New.Version ?? ""}`.trimEnd());
      }
    }
    for (const [m, v] of Object.entries(src.replaces ?? {})) lines.push(`replace ${m} => ${m} ${v}`);
    const bins = Object.values(src.binaries).map((b) => (typeof b === "string" ? { package: b } : b));
    // A test binary (go test -c) is no tool: its test-only imports get their go.sum lines below.
    for (const b of bins.filter((b) => !b.test)) lines.push(`tool ${b.package}`);
    writeFileSync(join(work, "go.mod"), `${lines.join("\n")}\n`);
    if (existsSync(join(dir, "go.sum"))) writeFileSync(join(work, "go.sum"), readFileSync(join(dir, "go.sum")));
    await go(["mod", "tidy"]);
    for (const b of bins.filter((b) => b.test)) await go(["list", "-mod=mod", "-test", "-deps", "-e", "-f", "", b.package]);
    const newMod = readFileSync(join(work, "go.mod"), "utf8");
    if (requiredGo(newMod) !== requiredGo(oldMod || newMod)) say(`go directive: ${requiredGo(oldMod)} → ${requiredGo(newMod)}`);
    const index = join(dir, "index.ts");
    const oldIndex = readFileSync(index, "utf8");
    const newIndex = oldIndex
      .replaceAll(`"${src.version}"`, `"${version}"`)
      .replaceAll(`"${src.version.replace(/^v/, "")}"`, `"${version.replace(/^v/, "")}"`);
    printChanges(oldMod, newMod);
    for (const f of ["go.mod", "go.sum"]) renameSync(join(work, f), join(dir, `.${f}.new`));
    writeFileSync(`${index}.new`, newIndex);
    for (const f of ["go.mod", "go.sum"]) renameSync(join(dir, `.${f}.new`), join(dir, f));
    renameSync(`${index}.new`, index);
    say(`${name}: ${src.module} ${src.version} → ${version} (go.mod, go.sum, index.ts in ${dir})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Prints the requirements that were added, removed or moved between two go.mod texts. */
function printChanges(before: string, after: string): void {
  const reqs = (text: string) =>
    new Map(
      [...text.matchAll(/^\s*(?:require\s+)?([a-z0-9][\w.\-/~]*\.[\w.\-/~]+)\s+(v\S+)(?:\s+\/\/ indirect)?$/gm)].map((m) => [
        m[1] as string,
        m[2] as string,
      ]),
    );
  const a = reqs(before);
  const b = reqs(after);
  for (const [p, v] of b) if (!a.has(p)) say(`+ ${p} ${v}`);
  for (const [p, v] of a) if (!b.has(p)) say(`- ${p} ${v}`);
  for (const [p, v] of b) if (a.has(p) && a.get(p) !== v) say(`~ ${p} ${a.get(p)} → ${v}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof PlanetError ? err.toLine() : String(err)}\n`);
  process.exit(1);
});
