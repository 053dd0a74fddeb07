/**
 * Helm charts from plugins: the example plugin's chart is a Helm release after boot (values from the
 * container environment), left alone by a restart, upgraded (a new revision) by an image with a newer
 * chart, uninstalled by an image without it; a chart the apiserver refuses is reported by name and
 * removed while the others install; a user's own `helm install` of a local chart works offline and
 * is never touched by planet; charts that do not render are refused at build time, naming the plugin.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readState } from "../core/bubble/state.ts";
import { Kube, KubeError, loadKubeconfig } from "../core/kube/client.ts";
import { buildTest, canBoot, devSecrets, planet, REPO, startBubble, testHost, waitFor } from "./helpers.ts";

const HOST = "pt-chart";
const IP = "10.225.0.1";
const CLUSTER = "charttest";
const NODE = "chart-node-1";
const NS = "planet-example";
const work = join(REPO, "build", "test-charts-work");
const secrets = join(work, "secrets");
const chartPlugin = join(work, "chart");
const hello = join(chartPlugin, "charts/hello");

type Release = { name: string; namespace: string; revision: string; status: string; chart: string };

/** A plugin folder `name` shipping the given charts (chart name → files), with its index.ts. */
function chartsPlugin(name: string, charts: Record<string, Record<string, string>>): string {
  const dir = join(work, name);
  rmSync(dir, { recursive: true, force: true });
  for (const [chart, files] of Object.entries(charts))
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(join(dir, "charts", chart, file.split("/").slice(0, -1).join("/")), { recursive: true });
      writeFileSync(join(dir, "charts", chart, file), text);
    }
  writeFileSync(
    join(dir, "index.ts"),
    `export default { name: "${name}", description: "test charts", roles: ["master"], requires: ["helm"], charts: "charts" };\n`,
  );
  return dir;
}

const chartYaml = (name: string, version = "0.1.0") => `apiVersion: v2\nname: ${name}\nversion: ${version}\n`;

describe.if(canBoot)("Helm charts from plugins (dev target + examples/chart)", () => {
  let rootfs = "";
  let host: ReturnType<typeof testHost> | undefined;
  let kube: Kube;
  const build = (...plugins: string[]) =>
    join(buildTest("charts", ["--target", "dev", ...plugins.flatMap((p) => ["--plugin", p])]), "rootfs");
  const start = () => startBubble({ rootfs, host: HOST, cluster: CLUSTER, node: NODE, work });
  const stop = () => expect(planet("stop", "--rootfs", rootfs, "--timeout", "30").exitCode).toBe(0);
  const inBubble = (...cmd: string[]) => planet("exec", "--rootfs", rootfs, ...cmd);
  const releases = (): Release[] => {
    const res = inBubble("helm", "list", "--all-namespaces", "--output", "json");
    if (res.exitCode !== 0) throw new Error(`helm list: ${res.stderr}`);
    return JSON.parse(res.stdout) as Release[];
  };
  /** The chart unit's run after a boot: done (active or failed), with its journal. */
  const chartsRun = async () => {
    const state = await waitFor(
      "planet-charts.service done",
      () => {
        const s = inBubble("systemctl", "show", "-P", "ActiveState", "planet-charts.service").stdout.trim();
        return s === "active" || s === "failed" ? s : undefined;
      },
      420_000,
      1000,
    );
    const journal = inBubble("journalctl", "-b", "-u", "planet-charts.service", "--no-pager", "-o", "cat").stdout;
    return { state, journal };
  };
  const badPlugin = () =>
    chartsPlugin("badchart", {
      // Renders, but the apiserver refuses it: an unknown Service type. Its ConfigMap must not stay behind.
      bad: {
        "Chart.yaml": chartYaml("bad"),
        "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: bad-cm }\ndata: { a: b }\n",
        "templates/svc.yaml":
          "apiVersion: v1\nkind: Service\nmetadata: { name: bad }\nspec: { type: Bogus, ports: [{ port: 1 }] }\n",
      },
    });

  beforeAll(async () => {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    cpSync(join(REPO, "examples/chart"), chartPlugin, { recursive: true });
    // The copy lives elsewhere: point its import of the contract at the checkout.
    const index = join(chartPlugin, "index.ts");
    writeFileSync(index, readFileSync(index, "utf8").replace("../../core/plugin.ts", join(REPO, "core/plugin.ts")));
    await devSecrets(secrets, { domain: "chart.test", ips: [IP], node: NODE });
    kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig")));
    host = testHost(HOST, IP);
  }, 600_000);
  afterAll(() => {
    if (readState(`planet-${CLUSTER}-${HOST}`)) planet("stop", "--rootfs", rootfs, "--timeout", "30");
    host?.[Symbol.dispose]();
  });

  test("bad charts are refused at build time with one line naming the plugin and chart; nothing is written", () => {
    const out = join(REPO, "build", "test-charts-bad");
    rmSync(out, { recursive: true, force: true });
    const values = "replicas: 1\nmessage: m\nimage: i\nport: 8080\n";
    const helloFiles = Object.fromEntries(
      ["Chart.yaml", "values.schema.json", "templates/deployment.yaml", "templates/service.yaml"].map((f) => [
        f,
        readFileSync(join(hello, f), "utf8"),
      ]),
    );
    const cases: [string, Record<string, Record<string, string>>, RegExp][] = [
      [
        "does not render",
        { broken: { "Chart.yaml": chartYaml("broken"), "templates/x.yaml": "kind: {{ .Values.nope.deeper }}\n" } },
        /^CHART_INVALID: \[plugin bad1\] .*bad1\/charts\/broken: does not render: .*nil pointer/,
      ],
      [
        "values the schema refuses",
        {
          hello2: { ...helloFiles, "Chart.yaml": chartYaml("hello2"), "values.yaml": values.replace("port: 8080", "port: web") },
        },
        /^CHART_INVALID: \[plugin bad2\] .*bad2\/charts\/hello2: does not render: .*port/,
      ],
      [
        "name is not the folder's",
        { other: { "Chart.yaml": chartYaml("notother") } },
        /^CHART_INVALID: \[plugin bad3\] .*bad3\/charts\/other\/Chart\.yaml: name "notother" must be the folder's name, other$/m,
      ],
      [
        "a chart name another plugin ships",
        { hello: { "Chart.yaml": chartYaml("hello") } },
        /^DUPLICATE_CHART: \[plugin (bad4|chart)\] .*chart hello is also shipped by plugin "(chart|bad4)"$/m,
      ],
      [
        "values that are not YAML",
        { v: { "Chart.yaml": chartYaml("v"), "values.yaml": "a: [1,\n" } },
        /^CHART_INVALID: \[plugin bad5\] .*bad5\/charts\/v\/values\.yaml: not YAML/m,
      ],
    ];
    cases.forEach(([what, charts, error], i) => {
      const dir = chartsPlugin(`bad${i + 1}`, charts);
      const res = planet("build", "--target", "dev", "--plugin", chartPlugin, "--plugin", dir, "--out", out);
      expect(res.exitCode, what).toBe(1);
      expect(res.stderr.trim().split("\n").at(-1) ?? "", what).toMatch(error);
      expect(existsSync(join(out, "planet.tar.gz")), what).toBe(false);
      expect(existsSync(join(out, "rootfs")), what).toBe(false);
    });
    // Charts without the helm plugin: refused before anything is built.
    const res = planet("build", "--target", "dev", "--without", "helm", "--plugin", join(REPO, "examples/chart"), "--out", out);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(/\[plugin chart\].*requires "helm", which is not in the image \(left out by --without\)/);
    rmSync(out, { recursive: true, force: true });
  }, 300_000);

  test("at boot the example chart is a Helm release with values from the environment; a refused chart is reported and removed", async () => {
    rootfs = build(chartPlugin, badPlugin());
    expect((await start()).exitCode).toBe(0);
    const { state, journal } = await chartsRun();
    // One chart failed, so the unit did; the other installed.
    expect(state).toBe("failed");
    expect(journal).toMatch(/\[plugin chart\] chart hello installed/);
    expect(journal).toMatch(/\[plugin badchart\] chart bad: .*Bogus/);
    const rel = releases();
    expect(rel.map((r) => `${r.namespace}/${r.name} ${r.chart} ${r.status} ${r.revision}`)).toEqual([
      `${NS}/hello hello-0.1.0 deployed 1`,
    ]);
    // Nothing of the failed release stayed behind.
    await expect(kube.get("/api/v1/namespaces/default/configmaps/bad-cm")).rejects.toMatchObject({ status: 404 });
    // Ready (helm waited), and the page carries the cluster id from the container environment.
    const page = await waitFor(
      "hello answers through its Service",
      () =>
        kube
          .request<string>("GET", `/api/v1/namespaces/${NS}/services/hello:80/proxy/`, undefined, "text/plain")
          .catch(() => undefined),
      60_000,
      1000,
    );
    expect(page.trim()).toBe(`hello from cluster ${CLUSTER}`);
    // planet status shows the chart check, red, once the unit has given up on the refused chart.
    await waitFor(
      "the helm-charts check red",
      () => /helm-charts.*planet-charts\.service is failed/.test(inBubble("planet", "status", "--local").stdout),
      180_000,
      2000,
    );
  }, 900_000);

  test("a user's helm install of a local chart works offline; a node's identity cannot read any release", async () => {
    const mine = inBubble(
      "sh",
      "-c",
      "rm -rf /tmp/mine && cp -r /usr/share/planet/charts/chart/hello /tmp/mine && sed -i 's/^name: hello/name: mine/' /tmp/mine/Chart.yaml && " +
        "helm install mine /tmp/mine --namespace user --create-namespace --set message=mine --set replicas=1 --wait --timeout 3m",
    );
    expect(mine.exitCode, mine.stderr).toBe(0);
    expect(releases().map((r) => `${r.namespace}/${r.name} ${r.status}`)).toEqual([
      "planet-example/hello deployed",
      "user/mine deployed",
    ]);
    // Helm keeps releases in Secrets: a kubelet may read none of them.
    const node = new Kube(loadKubeconfig(join(secrets, "kubelet.kubeconfig"), `https://${IP}:6443`));
    await expect(node.get(`/api/v1/namespaces/${NS}/secrets`)).rejects.toMatchObject({ status: 403 });
    await expect(node.get(`/api/v1/namespaces/${NS}/secrets/sh.helm.release.v1.hello.v1`)).rejects.toMatchObject({ status: 403 });
    // Nor may anyone without a certificate.
    const anon = new Kube({ server: `https://${IP}:6443`, ca: kube.auth.ca });
    const refused = await anon.get(`/api/v1/namespaces/${NS}/secrets`).then(
      () => 200,
      (e: KubeError) => e.status,
    );
    expect([401, 403]).toContain(refused);
  }, 300_000);

  test("a restart leaves the release alone; a newer chart is an upgrade (a new revision); an image without it uninstalls it", async () => {
    stop();
    expect((await start()).exitCode).toBe(0);
    const again = await chartsRun();
    expect(again.journal).toMatch(/\[plugin chart\] chart hello unchanged/);
    expect(releases().find((r) => r.name === "hello")?.revision).toBe("1");
    stop();

    // A newer chart and other values: one more revision, the Deployment follows.
    writeFileSync(
      join(hello, "Chart.yaml"),
      readFileSync(join(hello, "Chart.yaml"), "utf8").replace("version: 0.1.0", "version: 0.2.0"),
    );
    writeFileSync(
      join(hello, "values.yaml"),
      readFileSync(join(hello, "values.yaml"), "utf8").replace("replicas: 1", "replicas: 2"),
    );
    rootfs = build(chartPlugin);
    expect((await start()).exitCode).toBe(0);
    const up = await chartsRun();
    expect(up.state).toBe("active");
    expect(up.journal).toMatch(/\[plugin chart\] chart hello upgraded/);
    const hr = releases().find((r) => r.name === "hello");
    expect(`${hr?.chart} ${hr?.status} ${hr?.revision}`).toBe("hello-0.2.0 deployed 2");
    const dep = await kube.get<{ spec: { replicas: number } }>(`/apis/apps/v1/namespaces/${NS}/deployments/hello`);
    expect(dep.spec.replicas).toBe(2);
    stop();

    // No plugin ships it any more: uninstalled; the user's own release is not planet's to remove.
    rootfs = build();
    expect((await start()).exitCode).toBe(0);
    const gone = await chartsRun();
    expect(gone.state).toBe("active");
    expect(gone.journal).toMatch(/release hello uninstalled/);
    expect(releases().map((r) => `${r.namespace}/${r.name}`)).toEqual(["user/mine"]);
    await waitFor(
      "hello Deployment deleted",
      () =>
        kube.get(`/apis/apps/v1/namespaces/${NS}/deployments/hello`).then(
          () => undefined,
          (e) => (e instanceof KubeError && e.status === 404 ? true : undefined),
        ),
      60_000,
    );
  }, 1_200_000);
});
