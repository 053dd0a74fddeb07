/**
 * What goes into the rootfs on top of the base: plugins (units, overlays), assets, Kubernetes
 * manifests, bundled images, and the image manifest that records them.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { CHARTS_DIR, chartDigest, type ShippedChart } from "../charts.ts";
import { PlanetError } from "../errors.ts";
import { MANIFESTS_DIR } from "../kube/apply.ts";
import type { Manifest, ManifestAsset } from "../manifest.ts";
import { ROLES, type Role } from "../plugin.ts";
import { isSymlink } from "../proc.ts";
import { overlayPaths, type Resolution, type ResolvedPlugin, UNIT_DIR } from "../resolve.ts";
import { walkTree } from "../util.ts";
import { commit, VERSION } from "../version.ts";
import { type AssetDef, type ResolvedAsset, sha256File } from "./assets.ts";
import { ensureDebianTree } from "./base.ts";
import { writeOciLayout } from "./oci-layout.ts";

export function copyPreserving(src: string, dest: string): void {
  mkdirSync(dirname(dest), { recursive: true });
  if (existsSync(dest) || isSymlink(dest)) rmSync(dest, { force: true });
  const st = lstatSync(src);
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dest);
  else {
    copyFileSync(src, dest);
    chmodSync(dest, st.mode & 0o7777);
  }
}

/** Copies plugin files and units, then enables units per role through `planet-<role>.target`. */
export function installPlugins(rootfs: string, plugins: ResolvedPlugin[]): Record<Role, string[]> {
  const enabled: Record<Role, string[]> = { master: [], node: [] };
  const unitDir = join(rootfs, UNIT_DIR);
  for (const p of plugins) {
    for (const [dest, src] of overlayPaths(p)) copyPreserving(src, join(rootfs, dest));
    for (const u of p.units) {
      copyPreserving(join(p.dir, u.name), join(unitDir, u.name));
      // A Debian package may have enabled its own unit of the same name: the role decides now.
      for (const wants of readdirSync(unitDir).filter((d) => d.endsWith(".wants") || d.endsWith(".requires")))
        if (isSymlink(join(unitDir, wants, u.name))) unlinkSync(join(unitDir, wants, u.name));
      if (u.enabled) for (const r of u.roles) enabled[r].push(u.name);
    }
  }
  for (const role of ROLES) {
    const units = enabled[role].sort();
    const owners = plugins.filter((p) => p.units.some((u) => units.includes(u.name))).map((p) => p.def.name);
    writeFileSync(
      join(unitDir, `planet-${role}.target`),
      ["[Unit]", `Description=Planet ${role} role (plugins: ${owners.join(", ") || "none"})`, ""].join("\n"),
    );
    const wants = join(unitDir, `planet-${role}.target.wants`);
    mkdirSync(wants, { recursive: true });
    for (const u of units) symlinkSync(`../${u}`, join(wants, u));
  }
  return enabled;
}

export function installAssets(rootfs: string, assets: ResolvedAsset[]): ManifestAsset[] {
  return assets.map((a) => {
    const files: Record<string, string> = {};
    for (const [src, dest] of Object.entries(a.def.files ?? {})) {
      const target = join(rootfs, dest);
      if (a.def.source.kind !== "deb") copyPreserving(join(a.out, src), target);
      if (!existsSync(target))
        throw new PlanetError("ASSET_MISSING_FILE", `${a.def.name}: ${dest} is not in the rootfs after install`, {
          phase: "assets",
        });
      const sum = sha256File(target);
      if (sum !== a.record.files[src])
        throw new PlanetError("ASSET_CHECKSUM", `${a.def.name}: ${dest} in the rootfs differs from the asset's ${src}`, {
          phase: "assets",
        });
      files[dest] = sum;
    }
    return {
      name: a.def.name,
      version: a.def.version,
      kind: a.record.kind,
      source: assetSource(a.def),
      sha256: a.record.sha256,
      ...(a.record.gomod ? { gomod: a.record.gomod } : {}),
      files,
    };
  });
}

/** Copies each plugin's validated Kubernetes manifests to MANIFESTS_DIR/<plugin>/. */
export function installManifests(rootfs: string, plugins: ResolvedPlugin[]): NonNullable<Manifest["manifests"]> {
  return plugins.flatMap((p) =>
    p.manifests.map((m) => {
      const path = join(MANIFESTS_DIR, p.def.name, m.file);
      copyPreserving(join(p.dir, p.def.manifests ?? "", m.file), join(rootfs, path));
      return { plugin: p.def.name, path, sha256: sha256File(join(rootfs, path)), objects: m.objects };
    }),
  );
}

/** Copies each plugin's validated charts to CHARTS_DIR/<plugin>/<chart>/, recording a digest of each. */
export function installCharts(rootfs: string, plugins: ResolvedPlugin[]): ShippedChart[] {
  return plugins.flatMap((p) =>
    p.charts.map((c) => {
      const path = join(CHARTS_DIR, p.def.name, c.name);
      const src = join(p.dir, p.def.charts ?? "", c.name);
      for (const file of walkTree(src).files) copyPreserving(file, join(rootfs, path, relative(src, file)));
      return { ...c, plugin: p.def.name, path, sha256: chartDigest(join(rootfs, path)) };
    }),
  );
}

/** The one-string origin of an asset, as the manifest records it. */
export function assetSource(def: AssetDef): string {
  const src = def.source;
  switch (src.kind) {
    case "deb":
      return `${src.package}=${src.version}`;
    case "debsrc":
      return `${src.package} (source) ${src.version}`;
    case "gomod":
      return `${src.module}@${src.version}`;
    case "url":
      return src.url;
    case "local":
      return src.path;
  }
}

export async function buildImages(
  rootfs: string,
  plugins: ResolvedPlugin[],
  assets: Map<string, ResolvedAsset>,
): Promise<Manifest["images"]> {
  const images: Manifest["images"] = [];
  for (const p of plugins)
    for (const img of p.def.images ?? []) {
      const files: Record<string, string> = {};
      for (const [ref, dest] of Object.entries(img.files ?? {})) {
        const [assetName, path] = ref.split(":", 2) as [string, string];
        const asset = assets.get(assetName);
        if (!asset || !path || !existsSync(join(asset.out, path)))
          throw new PlanetError("IMAGE_FILE", `image ${img.ref}: ${ref} is not a file of a listed asset`, {
            plugin: p.def.name,
            phase: "images",
          });
        files[join(asset.out, path)] = dest;
      }
      const out = join(rootfs, img.path);
      mkdirSync(dirname(out), { recursive: true });
      const { ref, aliases, debian, path: _path, files: _files, ...rest } = img;
      await writeOciLayout(
        { refs: [ref, ...(aliases ?? [])], files, ...(debian?.length ? { base: await ensureDebianTree(debian) } : {}), ...rest },
        out,
      );
      images.push({ ref: img.ref, path: img.path, sha256: sha256File(join(out, "index.json")) });
    }
  return images;
}

/** The plugins' defaults for /etc/container-environment, one owner per variable (ENV_CONFLICT). */
export function envDefaults(plugins: ResolvedPlugin[]): Record<string, string> {
  return Object.assign({}, ...plugins.map((p) => p.def.env ?? {}));
}

export function makeManifest(
  res: Resolution,
  assets: ManifestAsset[],
  enabled: Record<Role, string[]>,
  images: Manifest["images"],
  packages: Manifest["packages"],
): Manifest {
  const env = envDefaults(res.plugins);
  return {
    schema: 1,
    version: VERSION,
    commit: commit(),
    target: res.target,
    roles: res.roles,
    plugins: res.plugins.map((p) => ({
      name: p.def.name,
      version: p.def.version ?? VERSION,
      description: p.def.description,
      requires: p.def.requires ?? [],
      roles: p.def.roles,
      external: p.external,
      ...(p.def.upgrade ? { upgrade: p.def.upgrade } : {}),
    })),
    assets,
    units: enabled,
    unitOwners: Object.fromEntries(res.plugins.flatMap((p) => p.units.map((u) => [u.name, p.def.name]))),
    envOwners: Object.fromEntries(res.plugins.flatMap((p) => Object.keys(p.def.env ?? {}).map((k) => [k, p.def.name]))),
    checks: res.plugins.flatMap((p) =>
      (p.def.checks ?? []).map((c) => ({ ...c, plugin: p.def.name, roles: c.roles ?? p.def.roles })),
    ),
    certs: res.plugins.flatMap((p) => (p.def.certs ?? []).map((c) => ({ ...c, plugin: p.def.name }))),
    env,
    images,
    ports: res.plugins.flatMap((p) => (p.def.ports ?? []).map((port) => ({ port, plugin: p.def.name, roles: p.def.roles }))),
    volumes: res.plugins.flatMap((p) =>
      Object.entries(p.def.volumes ?? {}).map(([name, path]) => ({ name, path, plugin: p.def.name, roles: p.def.roles })),
    ),
    packages,
  };
}
