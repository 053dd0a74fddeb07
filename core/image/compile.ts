/**
 * The planet binary compiled into the rootfs (bun build --compile), and the smoke test of the
 * finished rootfs.
 */
import { chmodSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PlanetError } from "../errors.ts";
import { runOk } from "../proc.ts";
import { commit } from "../version.ts";
import { copyPreserving } from "./install.ts";

/** Where the image keeps etcd3's gRPC definitions, which etcd3 reads from disk at run time. */
export const ETCD3_PROTO_DIR = "/usr/share/planet/etcd3/proto";

/**
 * `bun build --compile` of the CLI into the rootfs — the binary that containerizes its own rootfs.
 * etcd3 loads `${__dirname}/../proto/rpc.proto` at run time, and a compiled binary keeps the
 * build machine's __dirname; the plugin points it at the copy shipped in the image instead.
 */
export async function compilePlanet(repo: string, rootfs: string): Promise<void> {
  const dest = join(rootfs, "usr/bin/planet");
  const protoSrc = join(repo, "node_modules/etcd3/proto");
  for (const f of readdirSync(protoSrc)) copyPreserving(join(protoSrc, f), join(rootfs, ETCD3_PROTO_DIR, f));
  const res = await Bun.build({
    entrypoints: [join(repo, "core/cli/main.ts")],
    compile: { outfile: dest },
    minify: { syntax: true },
    define: { PLANET_COMMIT: JSON.stringify(commit()) },
    plugins: [
      {
        name: "etcd3-proto-path",
        setup(b) {
          b.onLoad({ filter: /etcd3[/\\]lib[/\\]connection-pool\.js$/ }, async (args) => {
            const text = await Bun.file(args.path).text();
            // Relative to the rootfs the binary lives in: "" inside the bubble, <rootfs> on the host.
            const root = `(process.execPath.endsWith("/rootfs/usr/bin/planet") ? process.execPath.slice(0, -"/usr/bin/planet".length) : "")`;
            const patched = text.replace(
              "`${__dirname}/../proto/rpc.proto`",
              `${root} + ${JSON.stringify(`${ETCD3_PROTO_DIR}/rpc.proto`)}`,
            );
            if (patched === text)
              throw new PlanetError("COMPILE_FAILED", "etcd3 no longer loads ../proto/rpc.proto; update compilePlanet", {
                phase: "compile",
              });
            return { contents: patched, loader: "js" };
          });
        },
      },
    ],
  });
  if (!res.success)
    throw new PlanetError("COMPILE_FAILED", res.logs.map((l) => l.message).join("; ") || "bun build --compile failed", {
      phase: "compile",
    });
  chmodSync(dest, 0o755);
}

/** The compiled binary must run inside its own rootfs (it needs /proc, hence the mount namespace). */
export async function smokeTest(rootfs: string): Promise<void> {
  const out = await runOk(
    [
      "unshare",
      "-m",
      "-p",
      "-f",
      `--mount-proc=${join(rootfs, "proc")}`,
      "chroot",
      rootfs,
      "/usr/bin/planet",
      "version",
      "--json",
    ],
    { phase: "smoke", code: "SMOKE_FAILED" },
  );
  const v = JSON.parse(out) as { target?: string };
  if (!v.target)
    throw new PlanetError("SMOKE_FAILED", "planet version inside the rootfs does not see the manifest", { phase: "smoke" });
}
