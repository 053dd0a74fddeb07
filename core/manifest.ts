import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { ShippedChart } from "./charts.ts";
import { PlanetError } from "./errors.ts";
import type { ObjectRef } from "./kube/apply.ts";
import { type CertRequest, type CheckDef, issuedTo, type Role, type UpgradeDef } from "./plugin.ts";
import { shapeProblem } from "./util.ts";

/** Where the manifest lives inside an image. */
export const MANIFEST_PATH = "/etc/planet/manifest.json";

/** One asset in the bill of materials. */
export interface ManifestAsset {
  name: string;
  version: string;
  kind: string;
  /** Where it came from: `module@version`, `package=version`, a URL or a local path. */
  source: string;
  /** sha256 of what was fetched (.deb, URL body, local file); null for Go builds (see `gomod`). */
  sha256: string | null;
  /** Go builds: the module's go.sum hash, the go.sum's sha256, the toolchain, the upstream commit. */
  gomod?: { module: string; version: string; h1: string; goSum: string; toolchain: string; commit: string };
  /** Rootfs path → sha256 of the file as it is in the image. */
  files: Record<string, string>;
}

/**
 * What an image is, written at build time to `planet.json` (tarball root) and `/etc/planet/manifest.json`.
 * It holds no timestamps: two builds of the same inputs give the same manifest.
 */
export interface Manifest {
  schema: 1;
  version: string;
  commit: string;
  target: string;
  /** Roles `planet start` uses when `--role` is not given. */
  roles: Role[];
  plugins: {
    name: string;
    version: string;
    description: string;
    requires: string[];
    roles: Role[];
    external: boolean;
    upgrade?: UpgradeDef;
  }[];
  assets: ManifestAsset[];
  /** Units enabled per role, and the plugin owning each unit. */
  units: Record<Role, string[]>;
  unitOwners: Record<string, string>;
  checks: (CheckDef & { plugin: string; roles: Role[] })[];
  certs: (CertRequest & { plugin: string })[];
  /** Defaults for /etc/container-environment; `${VAR}` refers to other variables. */
  env: Record<string, string>;
  /** The plugin each default comes from (a plugin left out at start takes its defaults along). */
  envOwners?: Record<string, string>;
  images: { ref: string; path: string; sha256: string }[];
  /** TCP ports the units of each plugin listen on. */
  ports: { port: number; plugin: string; roles: Role[] }[];
  /** Data volumes plugins declare: `<data-dir>/<name>` on the host at `path` in the bubble. */
  volumes?: { name: string; path: string; plugin: string; roles: Role[] }[];
  /** Kubernetes objects plugins ship, applied at boot: file in the image, sha256, the objects. */
  manifests?: { plugin: string; path: string; sha256: string; objects: ObjectRef[] }[];
  /** Helm charts plugins ship, installed at boot as releases: folder in the image, digest of its files. */
  charts?: ShippedChart[];
  /** Debian packages in the rootfs (an SBOM). */
  packages: { name: string; version: string; arch: string }[];
}

export function manifestDigest(text: string): string {
  return `sha256:${createHash("sha256").update(text).digest("hex")}`;
}

/** Reads the manifest of the image rooted at `rootfs` (default: the one we run in). */
export function readManifest(rootfs = "/"): { manifest: Manifest; digest: string } | null {
  const path = `${rootfs.replace(/\/$/, "")}${MANIFEST_PATH}`;
  if (!existsSync(path)) return null;
  const text = readFileSync(path, "utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    value = (e as Error).message;
  }
  const problem = shapeProblem(value, {
    schema: "number",
    target: "string",
    roles: "array",
    plugins: "array",
    assets: "array",
    units: "object",
    unitOwners: "object",
    checks: "array",
    certs: "array",
    env: "object",
    images: "array",
    ports: "array",
    volumes: "array?",
    manifests: "array?",
    charts: "array?",
  });
  if (problem)
    throw new PlanetError(
      "CORRUPT_MANIFEST",
      `${path} is not an image manifest planet wrote (${typeof value === "string" ? value : problem}); rebuild the image (planet build)`,
    );
  return { manifest: value as Manifest, digest: manifestDigest(text) };
}

/** The image rootfs this binary lives in (`…/rootfs/usr/bin/planet`), if it does. */
export function ownImageRootfs(exe = process.execPath): string | undefined {
  const suffix = "/rootfs/usr/bin/planet";
  return exe.endsWith(suffix) ? exe.slice(0, exe.length - suffix.length + "/rootfs".length) : undefined;
}

/** The certificate requests of an image's plugins that run on `roles`, each issued to those roles. */
export function certsFor(manifest: Manifest, roles: readonly Role[]): Manifest["certs"] {
  const active = (pluginRoles: readonly Role[]) => pluginRoles.some((r) => roles.includes(r));
  return manifest.certs.filter((c) => {
    const plugin = manifest.plugins.find((x) => x.name === c.plugin);
    return (!plugin || active(plugin.roles)) && issuedTo(c, roles);
  });
}
