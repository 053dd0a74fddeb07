import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expandVars, loadPluginManifests, parseManifest } from "./apply.ts";

const root = mkdtempSync(join(tmpdir(), "planet-manifests-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("plugin manifests", () => {
  test("multi-document YAML becomes object references; names may hold ${VAR} and colons", () => {
    const { refs } = parseManifest(
      "apiVersion: v1\nkind: Service\nmetadata: { name: kube-dns, namespace: kube-system }\n---\n" +
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: { name: 'system:coredns' }\n---\n" +
        "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: 'cm-${KUBE_NODE_NAME}' }\n",
      "f.yaml",
    );
    expect(refs).toEqual([
      { apiVersion: "v1", kind: "Service", name: "kube-dns", namespace: "kube-system" },
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", name: "system:coredns" },
      { apiVersion: "v1", kind: "ConfigMap", name: "cm-${KUBE_NODE_NAME}" },
    ]);
  });

  const bad: [string, string, RegExp][] = [
    ["not YAML", "a: [", /^f\.yaml: not YAML/],
    ["empty", "", /^f\.yaml: holds no object$/],
    ["no apiVersion", "kind: Pod\nmetadata: { name: x }\n", /document 1: apiVersion missing/],
    ["lowercase kind", "apiVersion: v1\nkind: pod\nmetadata: { name: x }\n", /document 1: kind missing or not a Kind/],
    ["no name", "apiVersion: v1\nkind: Pod\nmetadata: {}\n", /document 1: metadata\.name missing/],
    ["second document", "apiVersion: v1\nkind: Pod\nmetadata: { name: x }\n---\n- 1\n", /document 2: not an object/],
  ];
  for (const [what, text, msg] of bad)
    test(`${what}: one line naming the file and document`, () => {
      expect(() => parseManifest(text, "f.yaml")).toThrow(msg);
    });

  test("a plugin's folder: missing, empty and broken files name the plugin", () => {
    expect(() => loadPluginManifests("p", join(root, "none"))).toThrow(/manifests folder .* does not exist/);
    const dir = join(root, "m");
    mkdirSync(dir);
    expect(() => loadPluginManifests("p", dir)).toThrow(/has no \.yaml file/);
    writeFileSync(join(dir, "b.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: b }\n");
    writeFileSync(join(dir, "a.yml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\n");
    writeFileSync(join(dir, "notes.txt"), "ignored");
    expect(loadPluginManifests("p", dir).map((m) => m.file)).toEqual(["a.yml", "b.yaml"]);
    writeFileSync(join(dir, "c.yaml"), "kind: ConfigMap\n");
    try {
      loadPluginManifests("p", dir);
      throw new Error("no error");
    } catch (e) {
      expect((e as { toLine(): string }).toLine()).toBe(
        "MANIFEST_INVALID: [plugin p] (resolve) c.yaml document 1: apiVersion missing",
      );
    }
  });

  test("${VAR} comes from the container environment; an unknown one is named", () => {
    expect(expandVars("clusterIP: ${KUBE_DNS_IP}", { KUBE_DNS_IP: "10.100.0.10" }, "dns/x.yaml")).toBe("clusterIP: 10.100.0.10");
    expect(() => expandVars("${NOPE}", {}, "dns/x.yaml")).toThrow("dns/x.yaml: ${NOPE} is not in the container environment");
  });
});
