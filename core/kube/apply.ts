/**
 * Kubernetes objects that plugins ship (`manifests/` in a plugin folder): validated at build time,
 * installed under MANIFESTS_DIR, applied at boot with server-side apply once the apiserver answers,
 * and pruned when a newer image no longer ships them. `${VAR}` in a manifest is replaced from the
 * container environment (e.g. `${KUBE_DNS_IP}`).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { PlanetError } from "../errors.ts";
import type { ObjectRule } from "../plugin.ts";
import { type Kube, KubeError } from "./client.ts";

/** Where an image keeps each plugin's manifests: `<dir>/<plugin>/<file>`. */
export const MANIFESTS_DIR = "/usr/share/planet/manifests";
/** Field manager of every apply, and the ConfigMap (in kube-system) recording what was applied. */
export const FIELD_MANAGER = "planet";
const RECORD = "planet-manifests";

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface ManifestFile {
  /** File name inside the plugin's manifests folder. */
  file: string;
  objects: ObjectRef[];
}

type Obj = { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };

/** Parses one YAML file into objects; every document must be a Kubernetes object with a name. */
export function parseManifest(text: string, where: string): { objects: Obj[]; refs: ObjectRef[] } {
  let docs: unknown;
  try {
    docs = Bun.YAML.parse(text);
  } catch (e) {
    throw new PlanetError("MANIFEST_INVALID", `${where}: not YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  const list = (Array.isArray(docs) ? docs : [docs]).filter((d) => d !== null && d !== undefined);
  if (list.length === 0) throw new PlanetError("MANIFEST_INVALID", `${where}: holds no object`);
  const objects: Obj[] = [];
  const refs: ObjectRef[] = [];
  list.forEach((d, i) => {
    const o = d as Obj;
    const at = `${where} document ${i + 1}`;
    if (typeof o !== "object" || Array.isArray(o)) throw new PlanetError("MANIFEST_INVALID", `${at}: not an object`);
    if (typeof o.apiVersion !== "string" || !o.apiVersion) throw new PlanetError("MANIFEST_INVALID", `${at}: apiVersion missing`);
    if (typeof o.kind !== "string" || !/^[A-Z][A-Za-z0-9]*$/.test(o.kind))
      throw new PlanetError("MANIFEST_INVALID", `${at}: kind missing or not a Kind`);
    const name = o.metadata?.name;
    if (typeof name !== "string" || !/^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$/.test(name.replace(/\$\{\w+\}/g, "x")))
      throw new PlanetError("MANIFEST_INVALID", `${at}: metadata.name missing or not a DNS name`);
    const ns = o.metadata?.namespace;
    if (ns !== undefined && typeof ns !== "string") throw new PlanetError("MANIFEST_INVALID", `${at}: metadata.namespace`);
    objects.push(o);
    refs.push({ apiVersion: o.apiVersion, kind: o.kind, name, ...(ns ? { namespace: ns } : {}) });
  });
  return { objects, refs };
}

/** Validates a plugin's manifests folder at build time. */
export function loadPluginManifests(plugin: string, dir: string): ManifestFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new PlanetError("MANIFEST_INVALID", `manifests folder ${dir} does not exist`, { plugin, phase: "resolve" });
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  if (files.length === 0)
    throw new PlanetError("MANIFEST_INVALID", `manifests folder ${dir} has no .yaml file`, { plugin, phase: "resolve" });
  return files.map((file) => {
    try {
      return { file, objects: parseManifest(readFileSync(join(dir, file), "utf8"), file).refs };
    } catch (e) {
      if (e instanceof PlanetError) throw new PlanetError(e.code, e.message, { plugin, phase: "resolve" });
      throw e;
    }
  });
}

/**
 * Runs the image's object rules (every plugin's `validates`) over one plugin's manifests at build
 * time; the first refusal is one line naming the plugin, the file and the object.
 */
export function checkObjects(plugin: string, dir: string, files: ManifestFile[], rules: ObjectRule[]): void {
  for (const { file } of files) {
    const { objects, refs } = parseManifest(readFileSync(join(dir, file), "utf8"), file);
    objects.forEach((o, i) => {
      for (const rule of rules.filter((r) => r.kind === o.kind)) {
        const why = rule.check(o as Record<string, unknown>);
        if (why)
          throw new PlanetError("MANIFEST_INVALID", `${file}: ${o.kind} ${refs[i]?.name}: ${why}`, { plugin, phase: "resolve" });
      }
    });
  }
}

/** `${VAR}` from the environment; an unknown name is an error naming the file. */
export function expandVars(text: string, env: Record<string, string | undefined>, where: string): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_all, name: string) => {
    const v = env[name];
    if (v === undefined) throw new PlanetError("MANIFEST_INVALID", `${where}: \${${name}} is not in the container environment`);
    return v;
  });
}

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

/** Maps apiVersion + kind to a REST path through discovery (cached per group version). */
class Resources {
  private cache = new Map<string, ApiResource[]>();
  constructor(private kube: Kube) {}

  async path(ref: ObjectRef, withName = true): Promise<string> {
    let list = this.cache.get(ref.apiVersion);
    if (!list) {
      const base = ref.apiVersion.includes("/") ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
      list = (await this.kube.get<{ resources: ApiResource[] }>(base)).resources.filter((r) => !r.name.includes("/"));
      this.cache.set(ref.apiVersion, list);
    }
    const res = list.find((r) => r.kind === ref.kind);
    if (!res) throw new PlanetError("MANIFEST_INVALID", `${ref.apiVersion} has no kind ${ref.kind}`);
    const base = ref.apiVersion.includes("/") ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
    const ns = res.namespaced ? `/namespaces/${ref.namespace ?? "default"}` : "";
    return `${base}${ns}/${res.name}${withName ? `/${ref.name}` : ""}`;
  }
}

const key = (r: ObjectRef) => `${r.apiVersion}|${r.kind}|${r.namespace ?? ""}|${r.name}`;

export interface ApplyResult {
  plugin: string;
  applied: number;
  pruned: number;
  /** One line naming the plugin and file, when this plugin's manifests failed. */
  error?: string;
}

/**
 * Applies every plugin's manifests (server-side apply, field manager `planet`), then deletes the
 * objects an earlier apply recorded that no plugin ships any more. A plugin whose manifest fails is
 * reported and the others still apply; its earlier objects are kept.
 */
export async function applyManifests(
  kube: Kube,
  plugins: { plugin: string; files: { file: string; text: string }[] }[],
  env: Record<string, string | undefined>,
): Promise<ApplyResult[]> {
  const resources = new Resources(kube);
  const recordPath = `/api/v1/namespaces/kube-system/configmaps/${RECORD}`;
  const previous: Record<string, ObjectRef[]> = {};
  try {
    const cm = await kube.get<{ data?: Record<string, string> }>(recordPath);
    for (const [p, v] of Object.entries(cm.data ?? {})) previous[p] = JSON.parse(v) as ObjectRef[];
  } catch (e) {
    if (!(e instanceof KubeError && e.status === 404)) throw e;
  }
  const results: ApplyResult[] = [];
  const now: Record<string, ObjectRef[]> = {};
  for (const { plugin, files } of plugins) {
    const applied: ObjectRef[] = [];
    try {
      for (const { file, text } of files) {
        const where = `${plugin}/${file}`;
        const { objects, refs } = parseManifest(expandVars(text, env, where), where);
        for (const [i, obj] of objects.entries()) {
          const ref = refs[i] as ObjectRef;
          const path = await resources.path(ref).catch((e: Error) => {
            throw new PlanetError("MANIFEST_INVALID", `${where}: ${e.message}`);
          });
          await kube
            .request(
              "PATCH",
              `${path}?fieldManager=${FIELD_MANAGER}&force=true`,
              obj,
              "application/json",
              "application/apply-patch+yaml",
            )
            .catch((e: Error) => {
              throw new PlanetError("MANIFEST_APPLY", `${where}: ${ref.kind} ${ref.name}: ${e.message}`);
            });
          applied.push(ref);
        }
      }
      now[plugin] = applied;
      results.push({ plugin, applied: applied.length, pruned: 0 });
    } catch (e) {
      // Keep what this plugin had: a broken manifest must not delete its running objects.
      now[plugin] = [...new Map([...(previous[plugin] ?? []), ...applied].map((r) => [key(r), r])).values()];
      results.push({ plugin, applied: applied.length, pruned: 0, error: e instanceof Error ? e.message : String(e) });
    }
  }
  const keep = new Set(Object.values(now).flatMap((refs) => refs.map(key)));
  for (const [plugin, refs] of Object.entries(previous)) {
    let pruned = 0;
    for (const ref of refs) {
      if (keep.has(key(ref))) continue;
      try {
        await kube.delete(await resources.path(ref));
        pruned++;
      } catch (e) {
        if (!(e instanceof KubeError && e.status === 404)) throw e;
      }
    }
    const r = results.find((x) => x.plugin === plugin);
    if (r) r.pruned = pruned;
    else if (pruned) results.push({ plugin, applied: 0, pruned });
  }
  const data = Object.fromEntries(Object.entries(now).map(([p, refs]) => [p, JSON.stringify(refs)]));
  await kube.request(
    "PATCH",
    `${recordPath}?fieldManager=${FIELD_MANAGER}&force=true`,
    { apiVersion: "v1", kind: "ConfigMap", metadata: { name: RECORD, namespace: "kube-system" }, data },
    "application/json",
    "application/apply-patch+yaml",
  );
  return results;
}
