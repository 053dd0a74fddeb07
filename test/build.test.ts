/**
 * `planet build` end to end: the dev target plus the example plugin, from the real assets (warm
 * cache after the first run), checked inside the tarball and the rootfs.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recipes } from "../build.assets/index.ts";
import type { Manifest } from "../core/manifest.ts";
import { canBoot, planet, REPO, sh } from "./helpers.ts";

const OUT = join(REPO, "build", "test-dev");
const ARGS = ["build", "--target", "dev", "--plugin", "./examples/hello", "--out", OUT];
const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

describe.if(canBoot)("planet build --target dev", () => {
  let first: Manifest;
  let log = "";
  const rootfs = join(OUT, "rootfs");

  beforeAll(() => {
    const res = planet(...ARGS);
    log = res.stderr;
    if (res.exitCode !== 0) throw new Error(`build failed: ${res.stderr.slice(-3000)}`);
    first = JSON.parse(readFileSync(join(OUT, "planet.json"), "utf8")) as Manifest;
  }, 3_600_000);

  test("the tarball holds planet.json at its root and the rootfs with the planet binary", () => {
    const list = sh(["tar", "-tzf", join(OUT, "planet.tar.gz")]).stdout.split("\n");
    expect(list).toContain("planet.json");
    expect(list).toContain("rootfs/usr/bin/planet");
    expect(list).toContain("rootfs/etc/planet/manifest.json");
    const inTar = sh(["tar", "-xzOf", join(OUT, "planet.tar.gz"), "planet.json"]).stdout;
    expect(JSON.parse(inTar)).toEqual(first);
    expect(readFileSync(join(rootfs, "etc/planet/manifest.json"), "utf8")).toBe(inTar);
  }, 120_000);

  test("rootfs/usr/bin/planet version runs inside its rootfs and knows the image", () => {
    const res = sh([
      "unshare",
      "-m",
      "-p",
      "-f",
      `--mount-proc=${rootfs}/proc`,
      "chroot",
      rootfs,
      "/usr/bin/planet",
      "version",
      "--json",
    ]);
    expect(res.exitCode).toBe(0);
    const v = JSON.parse(res.stdout);
    expect(v.target).toBe("dev");
    expect(v.digest).toBe(`sha256:${sha(join(rootfs, "etc/planet/manifest.json"))}`);
    expect(v.plugins).toEqual([
      "secrets",
      "agent",
      "kube-node",
      "dns",
      "etcd",
      "flannel",
      "hello",
      "kube-master",
      "helm",
      "registry",
      "metrics",
      "netpol",
      "serf",
      "storage",
    ]);
    expect(v.components.kubernetes).toMatchObject({ version: "1.37.2", source: "k8s.io/kubernetes@v1.37.2" });
    expect(v.components.containerd.source).toMatch(/^github\.com\/containerd\/containerd\/v2@v2\./);
    // The same from the host: the image's binary reads the rootfs it lives in.
    const host = sh([join(rootfs, "usr/bin/planet"), "version"]);
    expect(host.stdout).toMatch(/kubernetes\s+1\.37\.2\s+k8s\.io\/kubernetes@v1\.37\.2 \(go1\.\d+/);
  });

  test("every asset is listed with a sha256 that matches the file in the rootfs", () => {
    const names = first.assets.map((a) => a.name).sort();
    expect(names).toEqual([
      "busybox",
      "cni-flannel",
      "cni-plugins",
      "containerd",
      "coredns",
      "crictl",
      "etcd",
      "flannel",
      "helm",
      "kube-router",
      "kubernetes",
      "local-path-provisioner",
      "metrics-server",
      "registry",
      "runc",
      "serf",
    ]);
    for (const a of first.assets) {
      if (a.kind === "gomod") {
        // The bill of materials of a Go build: module@version, its go.sum pin, the toolchain.
        expect(a.source).toBe(`${a.gomod?.module}@${a.gomod?.version}`);
        expect(a.gomod?.h1).toMatch(/^h1:[A-Za-z0-9+/]+=*$/);
        expect(a.gomod?.goSum).toMatch(/^[0-9a-f]{64}$/);
        expect(a.gomod?.toolchain).toMatch(/^go1\.\d+/);
        const sum = readFileSync(join(REPO, "build.assets", a.name, "go.sum"), "utf8");
        expect(sum).toContain(`${a.gomod?.module} ${a.gomod?.version} ${a.gomod?.h1}`);
        // Files in the rootfs exactly when the recipe installs some (metrics-server and the
        // provisioner only feed their plugins' images).
        const installs = Object.keys(recipes.find((r) => r.def.name === a.name)?.def.files ?? {}).length > 0;
        expect([a.name, Object.keys(a.files).length > 0]).toEqual([a.name, installs]);
      } else expect(a.sha256 ?? "").toMatch(/^[0-9a-f]{64}$/);
      for (const [path, sum] of Object.entries(a.files)) expect(sha(join(rootfs, path))).toBe(sum);
    }
    expect(Object.keys(first.assets.find((a) => a.name === "kubernetes")?.files ?? {})).toContain("/usr/bin/kube-apiserver");
    // Bundled images are OCI layout folders: the manifest pins each index.json.
    for (const img of first.images) expect(sha(join(rootfs, img.path, "index.json"))).toBe(img.sha256);
    expect(first.images.map((i) => i.ref)).toEqual([
      "registry.k8s.io/pause:3.10.2",
      "docker.io/library/busybox:latest",
      "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
      "docker.io/rancher/local-path-provisioner:v0.0.30",
    ]);
    expect(first.packages.map((p) => p.name)).toEqual(
      expect.arrayContaining(["systemd", "libseccomp2", "iptables", "conntrack"]),
    );
  });

  test("each plugin's units are in the image and enabled for the right role", () => {
    const expected: Record<string, string[]> = {
      master: [
        "etcd.service",
        "kube-apiserver.service",
        "kube-controller-manager.service",
        "kube-scheduler.service",
        "registry.service",
        "planet-manifests.service",
      ],
      node: [
        "containerd.service",
        "kubelet.service",
        "kube-proxy.service",
        "planet-images.service",
        "kube-node-cleanup.service",
        "flanneld.service",
        "flannel-cleanup.service",
        "coredns.service",
      ],
    };
    for (const [role, units] of Object.entries(expected))
      for (const u of [...units, "planet-agent.service", "serf.service", "hello.service", "planet-secrets-renew.timer"]) {
        expect(existsSync(join(rootfs, "etc/systemd/system", u))).toBe(true);
        expect(readlinkSync(join(rootfs, `etc/systemd/system/planet-${role}.target.wants`, u))).toBe(`../${u}`);
      }
    expect(existsSync(join(rootfs, "etc/systemd/system/planet-node.target.wants/etcd.service"))).toBe(false);
    expect(existsSync(join(rootfs, "etc/systemd/system/planet-master.target.wants/planet-secrets-renew.service"))).toBe(false);
    // No package enabled a unit of its own: the role decides.
    for (const u of ["etcd.service", "serf.service", "registry.service", "containerd.service"])
      expect(existsSync(join(rootfs, "etc/systemd/system/multi-user.target.wants", u))).toBe(false);
    expect(readlinkSync(join(rootfs, "etc/systemd/system/systemd-sysctl.service"))).toBe("/dev/null");
    expect(readFileSync(join(rootfs, "srv/hello/index.html"), "utf8")).toContain("hello from planet");
  });

  test("systemd-analyze verify accepts every plugin unit with the rootfs as root", () => {
    const units = Object.keys(first.unitOwners).map((u) => `/etc/systemd/system/${u}`);
    const res = sh(["systemd-analyze", "verify", `--root=${rootfs}`, ...units, "planet-master.target", "planet-node.target"]);
    const complaints = (res.stdout + res.stderr)
      .split("\n")
      .filter((l) => /Unknown|not executable|Failed|Invalid|bad-setting|Missing/i.test(l));
    expect(complaints).toEqual([]);
    expect(res.exitCode).toBe(0);
  });

  test("a second build with a warm cache reuses every asset and gives the same manifest", () => {
    expect(log).toMatch(/assets: 16 \(\d+ from cache/);
    const again = planet(...ARGS);
    expect(again.exitCode).toBe(0);
    expect(again.stderr).toContain("assets: 16 (16 from cache");
    expect(again.stderr).toContain("base rootfs: cached");
    expect(JSON.parse(readFileSync(join(OUT, "planet.json"), "utf8"))).toEqual(first);
  }, 600_000);

  describe("bad input: one clear line, exit 1, previous output intact", () => {
    const tarball = join(OUT, "planet.tar.gz");
    const plugins = mkdtempSync(join(tmpdir(), "planet-badplugins-"));
    const make = (name: string, index: string | null, files: Record<string, string> = {}) => {
      const dir = join(plugins, name);
      mkdirSync(dir, { recursive: true });
      if (index !== null) writeFileSync(join(dir, "index.ts"), index);
      for (const [f, t] of Object.entries(files)) writeFileSync(join(dir, f), t);
      return dir;
    };
    const plugin = (name: string, extra = "") =>
      `export default { name: "${name}", description: "x", roles: ["node"]${extra} };\n`;
    const cases: [string, string[], RegExp][] = [
      ["unknown target", ["--target", "nope"], /^UNKNOWN_TARGET: /],
      ["unknown plugin", ["--without", "ghost"], /^UNKNOWN_PLUGIN: /],
      [
        "asset version without a recipe",
        ["--asset", "kubernetes@1.30.0"],
        /^UNKNOWN_ASSET: .*has recipes for 1\.37\.2, 1\.36\.3 only/,
      ],
      ["asset without a version", ["--asset", "kubernetes"], /^BAD_FLAG: --asset kubernetes: write it as name@version/],
      ["plugin folder without index.ts", ["--plugin", make("no-index", null)], /^PLUGIN_NO_INDEX: /],
      [
        "invalid unit file",
        ["--plugin", make("bad-unit", plugin("bad-unit", ', units: ["x.service"]'), { "x.service": "[Service]\nExecStart\n" })],
        /^UNIT_PARSE: \[plugin bad-unit\] \(resolve\) x.service line 2/,
      ],
      [
        "invalid Kubernetes manifest",
        [
          "--plugin",
          make("bad-manifest", plugin("bad-manifest", ', manifests: "."'), { "x.yaml": "apiVersion: v1\nkind: configmap\n" }),
        ],
        /^MANIFEST_INVALID: \[plugin bad-manifest\] \(resolve\) x\.yaml document 1: kind missing or not a Kind$/,
      ],
      [
        "package not in the archive",
        ["--plugin", make("bad-pkg", plugin("bad-pkg", ', packages: ["no-such-package-planet"]'))],
        /^UNKNOWN_PACKAGE: \[plugin bad-pkg\] /,
      ],
      // A base rootfs that is not cached yet, from a mirror that does not answer (loopback, closed port).
      [
        "mmdebstrap/apt failure",
        ["--plugin", make("new-pkg", plugin("new-pkg", ', packages: ["hello"]')), "--env-mirror"],
        /^MMDEBSTRAP_FAILED: /,
      ],
    ];
    test.each(cases)(
      "%s",
      (_name, rawArgs, pattern) => {
        const before = statSync(tarball).mtimeMs;
        const args = rawArgs.filter((a) => a !== "--env-mirror");
        const env = rawArgs.includes("--env-mirror") ? { PLANET_DEBIAN_MIRROR: "http://127.0.0.1:9/debian" } : undefined;
        const res = sh([process.execPath, "core/cli/main.ts", "build", "--target", "dev", "--out", OUT, ...args], { env });
        expect(res.exitCode).toBe(1);
        const lines = res.stderr.trim().split("\n");
        expect(lines.at(-1)).toMatch(pattern);
        expect(statSync(tarball).mtimeMs).toBe(before);
        expect(existsSync(join(OUT, "rootfs/usr/bin/planet"))).toBe(true);
        expect(sh(["sh", "-c", `ls -a ${OUT} | grep -c -e staging -e tmp -e old || true`]).stdout.trim()).toBe("0");
      },
      600_000,
    );

    test("a tampered go.sum line fails the build with one line naming the module", () => {
      const before = statSync(tarball).mtimeMs;
      // The checkout's tracked files, with one pin of the serf recipe changed.
      const copy = mkdtempSync(join(tmpdir(), "planet-tampered-"));
      try {
        expect(sh(["sh", "-c", `git ls-files -z | xargs -0 cp --parents -t ${copy}`]).exitCode).toBe(0);
        symlinkSync(join(REPO, "node_modules"), join(copy, "node_modules"));
        const sumPath = join(copy, "build.assets/serf/go.sum");
        const sum = readFileSync(sumPath, "utf8");
        const tampered = sum.replace(
          /^(github\.com\/hashicorp\/serf v\S+ h1:)(.)/m,
          (_a, head: string, c: string) => `${head}${c === "A" ? "B" : "A"}`,
        );
        expect(tampered).not.toBe(sum);
        writeFileSync(sumPath, tampered);
        const res = sh([process.execPath, "core/cli/main.ts", "build", "--target", "dev", "--out", OUT], { cwd: copy });
        expect(res.exitCode).toBe(1);
        expect(res.stderr.trim().split("\n").at(-1)).toMatch(
          /^GO_CHECKSUM: \(assets\) serf: github\.com\/hashicorp\/serf@v\S+ does not match \S+\/build\.assets\/serf\/go\.sum/,
        );
        expect(statSync(tarball).mtimeMs).toBe(before);
        expect(existsSync(join(OUT, "rootfs/usr/bin/planet"))).toBe(true);
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
    }, 600_000);

    test("not root", () => {
      const res = sh(
        [
          "setpriv",
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          process.execPath,
          "core/cli/main.ts",
          "build",
          "--out",
          "/tmp/x",
        ],
        {
          env: { HOME: "/tmp", BUN_INSTALL_CACHE_DIR: "/tmp/bun-cache" },
        },
      );
      expect(res.exitCode).toBe(1);
      expect(res.stderr.trim().split("\n").at(-1)).toMatch(/^NOT_ROOT: /);
    });

    test("no disk space", () => {
      const small = join(plugins, "small");
      mkdirSync(small);
      expect(sh(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", small]).exitCode).toBe(0);
      try {
        const res = planet("build", "--target", "dev", "--out", small);
        expect(res.exitCode).toBe(1);
        expect(res.stderr.trim().split("\n").at(-1)).toMatch(/^NO_SPACE: /);
      } finally {
        sh(["umount", small]);
        rmSync(plugins, { recursive: true, force: true });
      }
    });
  });
});
