/**
 * Helm charts that plugins ship (`charts/<name>/` in a plugin folder): checked at build time (a
 * chart of its own folder's name, a version, values that parse and render), installed under
 * CHARTS_DIR, and made real Helm releases at boot by `planet charts apply` — installed, upgraded
 * when the chart or its values changed, uninstalled when a newer image no longer ships them. `${VAR}`
 * in `values.yaml` is replaced from the container environment, as in manifests.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PlanetError } from "./errors.ts";
import { expandVars } from "./kube/apply.ts";
import { lastLine, run } from "./proc.ts";

/** The asset whose `helm` binary renders charts at build time and installs them at boot. */
export const HELM_ASSET = "helm";
/** Where an image keeps each plugin's charts: `<dir>/<plugin>/<chart>/`. */
export const CHARTS_DIR = "/usr/share/planet/charts";
/** Chart.yaml annotation naming the namespace its release goes to (default `default`). */
export const NAMESPACE_ANNOTATION = "planet/namespace";
/** Release labels: which plugin shipped a release, and the digest of the chart and values it runs. */
const PLUGIN_LABEL = "planet-plugin";
const DIGEST_LABEL = "planet-digest";

/** A chart as a plugin ships it, validated. */
export interface ChartInfo {
  /** Folder and chart name: the release's name. */
  name: string;
  version: string;
  namespace: string;
}

/** A chart in an image, as the image manifest records it. */
export interface ShippedChart extends ChartInfo {
  plugin: string;
  /** Folder in the image. */
  path: string;
  /** sha256 over the chart's files (names and contents). */
  sha256: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SEMVER = /^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

function parseYaml(text: string, where: string): unknown {
  try {
    return Bun.YAML.parse(text);
  } catch (e) {
    throw new PlanetError("CHART_INVALID", `${where}: not YAML: ${(e as Error).message.split("\n")[0]}`);
  }
}

/** Reads and checks one chart folder; `where` names it in errors (`<plugin>/charts/<name>`). */
export function readChart(dir: string, where: string): ChartInfo {
  const folder = dir.split("/").at(-1) ?? dir;
  const file = join(dir, "Chart.yaml");
  if (!existsSync(file)) throw new PlanetError("CHART_INVALID", `${where}: no Chart.yaml`);
  const c = parseYaml(readFileSync(file, "utf8"), `${where}/Chart.yaml`) as {
    apiVersion?: unknown;
    name?: unknown;
    version?: unknown;
    annotations?: Record<string, unknown>;
    dependencies?: { name?: unknown; repository?: unknown }[];
  } | null;
  if (!c || typeof c !== "object" || Array.isArray(c))
    throw new PlanetError("CHART_INVALID", `${where}/Chart.yaml: not a mapping`);
  if (c.apiVersion !== "v2")
    throw new PlanetError("CHART_INVALID", `${where}/Chart.yaml: apiVersion must be v2 (Helm 3 and 4 charts)`);
  if (c.name !== folder)
    throw new PlanetError(
      "CHART_INVALID",
      `${where}/Chart.yaml: name ${JSON.stringify(c.name)} must be the folder's name, ${folder}`,
    );
  if (folder.length > 53 || !DNS_LABEL.test(folder))
    throw new PlanetError("CHART_INVALID", `${where}: a release name must be a DNS label of at most 53 characters`);
  if (typeof c.version !== "string" || !SEMVER.test(c.version))
    throw new PlanetError("CHART_INVALID", `${where}/Chart.yaml: version ${JSON.stringify(c.version)} is not a semantic version`);
  for (const d of c.dependencies ?? []) {
    const repo = typeof d.repository === "string" ? d.repository : "";
    if (repo && !repo.startsWith("file://") && !existsSync(join(dir, "charts")))
      throw new PlanetError(
        "CHART_INVALID",
        `${where}/Chart.yaml: dependency ${String(d.name)} comes from ${repo}; ship it in charts/ (clusters install offline)`,
      );
  }
  const namespace = c.annotations?.[NAMESPACE_ANNOTATION] ?? "default";
  if (typeof namespace !== "string" || namespace.length > 63 || !DNS_LABEL.test(namespace))
    throw new PlanetError("CHART_INVALID", `${where}/Chart.yaml: annotation ${NAMESPACE_ANNOTATION} is not a namespace name`);
  const values = join(dir, "values.yaml");
  if (existsSync(values)) {
    const v = parseYaml(readFileSync(values, "utf8"), `${where}/values.yaml`);
    if (v !== null && (typeof v !== "object" || Array.isArray(v)))
      throw new PlanetError("CHART_INVALID", `${where}/values.yaml: not a mapping`);
  }
  return { name: folder, version: c.version, namespace };
}

/** Validates a plugin's charts folder at build time: one chart per sub-folder. */
export function loadPluginCharts(plugin: string, dir: string): ChartInfo[] {
  const fail = (message: string, e?: unknown): never => {
    throw new PlanetError(e instanceof PlanetError ? e.code : "CHART_INVALID", message, { plugin, phase: "resolve" });
  };
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(`charts folder ${dir} does not exist`);
  const names = readdirSync(dir)
    .filter((f) => statSync(join(dir, f)).isDirectory())
    .sort();
  if (names.length === 0) fail(`charts folder ${dir} has no chart (a folder with Chart.yaml)`);
  return names.map((name) => {
    try {
      return readChart(join(dir, name), `${plugin}/charts/${name}`);
    } catch (e) {
      if (e instanceof PlanetError) return fail(e.message, e);
      throw e;
    }
  });
}

/** Sorted file names and contents of a chart folder, hashed: what a release's digest starts from. */
export function chartDigest(dir: string): string {
  const h = createHash("sha256");
  const walk = (d: string, rel: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p, `${rel}${f}/`);
      else h.update(`${rel}${f}\0`).update(readFileSync(p)).update("\0");
    }
  };
  walk(dir, "");
  return h.digest("hex");
}

/** `values.yaml` of a chart with `${VAR}` replaced, or "" when it has none. */
export function chartValues(dir: string, env: Record<string, string | undefined>, where: string): string {
  const file = join(dir, "values.yaml");
  return existsSync(file) ? expandVars(readFileSync(file, "utf8"), env, `${where}/values.yaml`) : "";
}

/** Helm's error on one line: from its `Error:` line to the end (a schema's findings follow it), else its last line. */
function helmError(out: string): string {
  const lines = out.trim().split("\n");
  const at = lines.findIndex((l) => l.startsWith("Error:"));
  if (at < 0) return lastLine(out);
  return lines
    .slice(at)
    .map((l) => l.trim())
    .filter(Boolean)
    .join(" ")
    .replace(/^Error: /, "");
}

/** Runs helm; the values file (when given) lives in a private temp folder for the call. */
async function helm(
  bin: string,
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs = 360_000,
): Promise<{ ok: boolean; out: string; err: string }> {
  const res = await run([bin, ...args], { env, timeoutMs });
  return { ok: res.exitCode === 0, out: res.stdout, err: helmError(res.stderr || res.stdout) };
}

/**
 * Renders a chart with helm, as `helm template` does, to prove at build time that it renders with its
 * values (and its values.schema.json, when it has one). `${VAR}` takes the image's defaults; a name
 * only known at start stays as written.
 */
export async function renderChart(
  helmBin: string,
  dir: string,
  chart: ChartInfo,
  defaults: Record<string, string>,
  where: string,
): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), "planet-chart-"));
  try {
    const file = join(dir, "values.yaml");
    const text = existsSync(file)
      ? readFileSync(file, "utf8").replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (all, n: string) => defaults[n] ?? all)
      : "";
    writeFileSync(join(tmp, "values.yaml"), text);
    const res = await helm(
      helmBin,
      ["template", chart.name, dir, "--namespace", chart.namespace, "--values", join(tmp, "values.yaml")],
      {
        HOME: tmp,
        HELM_CACHE_HOME: join(tmp, "cache"),
        HELM_CONFIG_HOME: join(tmp, "config"),
        HELM_DATA_HOME: join(tmp, "data"),
      },
      120_000,
    );
    if (!res.ok) throw new PlanetError("CHART_INVALID", `${where}: does not render: ${res.err}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export interface ChartResult {
  plugin: string;
  chart: string;
  action: "installed" | "upgraded" | "unchanged" | "uninstalled" | "failed";
  /** One line naming the plugin and chart, when it failed. */
  error?: string;
}

interface ListedRelease {
  name: string;
  namespace: string;
  status: string;
}

/**
 * Makes the shipped charts the cluster's planet-managed Helm releases: a chart whose release is
 * deployed with the same digest (chart files + expanded values) is left alone, any other is
 * `helm upgrade --install`ed with `--rollback-on-failure` (a failed install is removed, a failed
 * upgrade rolled back: nothing half-installed), and a release labelled as a plugin's that no shipped
 * chart names is uninstalled. A chart that fails is reported; the others still go on.
 */
export async function applyCharts(
  helmBin: string,
  charts: ShippedChart[],
  env: Record<string, string | undefined>,
  timeout = "5m0s",
): Promise<ChartResult[]> {
  const results: ChartResult[] = [];
  const tmp = mkdtempSync(join(tmpdir(), "planet-charts-"));
  const helmEnv = { ...env, HOME: env.HOME || "/root" };
  try {
    const listed = await helm(
      helmBin,
      ["list", "--all-namespaces", "--max", "0", "--selector", PLUGIN_LABEL, "--output", "json"],
      helmEnv,
    );
    if (!listed.ok) throw new PlanetError("CHART_APPLY", `helm list: ${listed.err}`);
    const existing = JSON.parse(listed.out || "[]") as ListedRelease[];
    for (const c of charts) {
      const where = `[plugin ${c.plugin}] chart ${c.name}`;
      try {
        const values = chartValues(c.path, env, `${c.plugin}/charts/${c.name}`);
        const digest = createHash("sha256").update(c.sha256).update("\0").update(values).digest("hex").slice(0, 16);
        const same = await helm(
          helmBin,
          [
            "list",
            "--namespace",
            c.namespace,
            "--selector",
            `${DIGEST_LABEL}=${digest}`,
            "--filter",
            `^${c.name}$`,
            "--output",
            "json",
          ],
          helmEnv,
        );
        const deployed = same.ok && (JSON.parse(same.out || "[]") as ListedRelease[]).some((r) => r.status === "deployed");
        if (deployed) {
          results.push({ plugin: c.plugin, chart: c.name, action: "unchanged" });
          continue;
        }
        const valuesFile = join(tmp, `${c.plugin}-${c.name}.yaml`);
        writeFileSync(valuesFile, values, { mode: 0o600 });
        const had = existing.some((r) => r.name === c.name && r.namespace === c.namespace);
        const res = await helm(
          helmBin,
          [
            "upgrade",
            "--install",
            c.name,
            c.path,
            "--namespace",
            c.namespace,
            "--create-namespace",
            "--values",
            valuesFile,
            "--labels",
            `${PLUGIN_LABEL}=${c.plugin},${DIGEST_LABEL}=${digest}`,
            "--rollback-on-failure",
            "--timeout",
            timeout,
          ],
          helmEnv,
        );
        if (!res.ok) throw new PlanetError("CHART_APPLY", res.err);
        results.push({ plugin: c.plugin, chart: c.name, action: had ? "upgraded" : "installed" });
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        results.push({ plugin: c.plugin, chart: c.name, action: "failed", error: `${where}: ${msg}` });
      }
    }
    const shipped = new Set(charts.map((c) => `${c.namespace}/${c.name}`));
    for (const r of existing) {
      if (shipped.has(`${r.namespace}/${r.name}`)) continue;
      const res = await helm(helmBin, ["uninstall", r.name, "--namespace", r.namespace, "--wait", "--timeout", timeout], helmEnv);
      results.push(
        res.ok
          ? { plugin: "", chart: r.name, action: "uninstalled" }
          : { plugin: "", chart: r.name, action: "failed", error: `release ${r.namespace}/${r.name}: uninstall: ${res.err}` },
      );
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return results;
}
