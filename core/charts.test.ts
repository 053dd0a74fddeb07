import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chartDigest, chartValues, loadPluginCharts, readChart } from "./charts.ts";

const root = mkdtempSync(join(tmpdir(), "planet-charts-test-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A chart folder `<root>/<case>/<name>` with these files. */
function chart(at: string, name: string, files: Record<string, string>): string {
  const dir = join(root, at, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

describe("readChart", () => {
  test("a chart of its folder's name and a version; the namespace from its annotation, else default", () => {
    expect(
      readChart(chart("ok", "web", { "Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.2.3\n" }), "p/charts/web"),
    ).toEqual({
      name: "web",
      version: "1.2.3",
      namespace: "default",
    });
    const dir = chart("ns", "db", {
      "Chart.yaml": "apiVersion: v2\nname: db\nversion: 0.1.0-rc.1\nannotations:\n  planet/namespace: data\n",
      "values.yaml": "a: ${X}\n",
    });
    expect(readChart(dir, "p/charts/db").namespace).toBe("data");
  });

  test("each refusal names the file and what to fix", () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /^p\/charts\/c: no Chart\.yaml$/],
      [{ "Chart.yaml": "a: [" }, /^p\/charts\/c\/Chart\.yaml: not YAML/],
      [{ "Chart.yaml": "- 1\n" }, /Chart\.yaml: not a mapping/],
      [{ "Chart.yaml": "apiVersion: v1\nname: c\nversion: 1.0.0\n" }, /apiVersion must be v2/],
      [{ "Chart.yaml": "apiVersion: v2\nname: d\nversion: 1.0.0\n" }, /name "d" must be the folder's name, c$/],
      [{ "Chart.yaml": "apiVersion: v2\nname: c\nversion: one\n" }, /version "one" is not a semantic version/],
      [
        { "Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\nannotations: { planet/namespace: Bad_NS }\n" },
        /planet\/namespace is not a namespace name/,
      ],
      [
        {
          "Chart.yaml":
            "apiVersion: v2\nname: c\nversion: 1.0.0\ndependencies: [{ name: redis, repository: https://charts.example }]\n",
        },
        /dependency redis comes from https:\/\/charts\.example; ship it in charts\//,
      ],
      [{ "Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\n", "values.yaml": "- a\n" }, /values\.yaml: not a mapping/],
    ];
    cases.forEach(([files, error], i) => {
      expect(() => readChart(chart(`bad${i}`, "c", files), "p/charts/c")).toThrow(error);
    });
    expect(() =>
      readChart(
        chart("long", "x".repeat(54), { "Chart.yaml": `apiVersion: v2\nname: ${"x".repeat(54)}\nversion: 1.0.0\n` }),
        "w",
      ),
    ).toThrow(/at most 53 characters/);
  });

  test("a plugin's charts folder must hold at least one chart", () => {
    mkdirSync(join(root, "empty"), { recursive: true });
    expect(() => loadPluginCharts("p", join(root, "empty"))).toThrow(/has no chart/);
    expect(() => loadPluginCharts("p", join(root, "missing"))).toThrow(/does not exist/);
    chart("two", "a", { "Chart.yaml": "apiVersion: v2\nname: a\nversion: 1.0.0\n" });
    chart("two", "b", { "Chart.yaml": "apiVersion: v2\nname: b\nversion: 2.0.0\n" });
    expect(loadPluginCharts("p", join(root, "two")).map((c) => `${c.name}@${c.version}`)).toEqual(["a@1.0.0", "b@2.0.0"]);
  });
});

describe("values and digest", () => {
  test("${VAR} comes from the environment; an unknown one names the file", () => {
    const dir = chart("vals", "v", { "Chart.yaml": "apiVersion: v2\nname: v\nversion: 1.0.0\n", "values.yaml": "ip: ${IP}\n" });
    expect(chartValues(dir, { IP: "10.0.0.1" }, "p/charts/v")).toBe("ip: 10.0.0.1\n");
    expect(() => chartValues(dir, {}, "p/charts/v")).toThrow("p/charts/v/values.yaml: ${IP} is not in the container environment");
  });

  test("the digest changes with any file's name or content, and only then", () => {
    const dir = chart("dig", "d", { "Chart.yaml": "apiVersion: v2\nname: d\nversion: 1.0.0\n" });
    const a = chartDigest(dir);
    expect(chartDigest(dir)).toBe(a);
    writeFileSync(join(dir, "values.yaml"), "");
    const b = chartDigest(dir);
    expect(b).not.toBe(a);
    writeFileSync(join(dir, "values.yaml"), "x: 1\n");
    expect(chartDigest(dir)).not.toBe(b);
  });
});
