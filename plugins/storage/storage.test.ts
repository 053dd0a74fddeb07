import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveTarget } from "../../core/cli/_project.ts";

const root = mkdtempSync(join(tmpdir(), "planet-storage-test-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An external plugin shipping one StorageClass of the local-path provisioner with these parameters. */
function plugin(name: string, parameters: Record<string, unknown>): string {
  const dir = join(root, name);
  mkdirSync(join(dir, "manifests"), { recursive: true });
  writeFileSync(
    join(dir, "index.ts"),
    `export default { name: "${name}", description: "a class", roles: ["master"], manifests: "manifests" };\n`,
  );
  writeFileSync(
    join(dir, "manifests/class.yaml"),
    Bun.YAML.stringify({
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name: "fast" },
      provisioner: "rancher.io/local-path",
      parameters,
    }),
  );
  return dir;
}

describe("StorageClasses of the local-path provisioner, checked at build time", () => {
  test("parameters it takes pass", async () => {
    const r = await resolveTarget(
      "dev",
      [plugin("good", { nodePath: "/var/lib/local-path", pathPattern: "{{ .PVC.Namespace }}/{{ .PVC.Name }}" })],
      [],
    );
    expect(r.plugins.map((p) => p.def.name)).toContain("good");
  });

  test("what it would refuse at provisioning time is one line naming the plugin, file and class", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        { volumeType: "hostPath" },
        "class.yaml: StorageClass fast: parameter volumeType is not one rancher.io/local-path takes (nodePath, pathPattern)",
      ],
      [
        { nodePath: "/data" },
        "class.yaml: StorageClass fast: nodePath /data is not a folder the provisioner serves (/var/lib/local-path, the local-path volume)",
      ],
      [
        { pathPattern: "{{ .PVC.Name }" },
        "class.yaml: StorageClass fast: pathPattern {{ .PVC.Name }: not a Go template of a folder name inside /var/lib/local-path",
      ],
      [{ pathPattern: "../{{ .PVC.Name }}" }, "pathPattern ../{{ .PVC.Name }}: not a Go template"],
    ];
    for (const [i, [parameters, message]] of cases.entries())
      await expect(resolveTarget("dev", [plugin(`bad${i}`, parameters)], [])).rejects.toMatchObject({
        code: "MANIFEST_INVALID",
        plugin: `bad${i}`,
        message: expect.stringContaining(message),
      });
    // Without the storage plugin nothing checks them (and nothing provisions them).
    const r = await resolveTarget("dev", [plugin("alone", { volumeType: "x" })], ["storage"]);
    expect(r.plugins.map((p) => p.def.name)).not.toContain("storage");
  });
});
