/**
 * The upstream conformance suite, a slice of it: `planet test --conformance` runs twenty
 * `[Conformance]` specs of e2e.test (built from the cluster's Kubernetes module) across sig-network,
 * sig-apps, sig-node, sig-storage and sig-api-machinery against a dev bubble, offline: the bundle's
 * images are imported into the bubble's registry first. The full run is bench/conformance.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readState } from "../core/bubble/state.ts";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import { buildTest, canBoot, devSecrets, planet, planetAsync, REPO, startBubble, testHost, waitFor } from "./helpers.ts";

const HOST = "pt-conf";
const IP = "10.209.0.1";
const CLUSTER = "conftest";
const NODE = "conf-node-1";
const work = join(REPO, "build", "test-conformance-work");
const secrets = join(work, "secrets");

/** Twenty specs, by their full names, across the SIGs the issue names. */
export const CI_SLICE = [
  "[sig-network] DNS should provide DNS for the cluster [Conformance]",
  "[sig-network] DNS should provide DNS for services [Conformance]",
  "[sig-network] DNS should provide /etc/hosts entries for the cluster [Conformance]",
  "[sig-network] DNS should provide DNS for ExternalName services [Conformance]",
  "[sig-network] Services should serve a basic endpoint from pods [Conformance]",
  "[sig-network] Services should find a service from listing all namespaces [Conformance]",
  "[sig-network] Services should delete a collection of services [Conformance]",
  "[sig-apps] Deployment RollingUpdateDeployment should delete old pods and create new ones [Conformance]",
  "[sig-apps] Deployment deployment should support rollover [Conformance]",
  "[sig-apps] ReplicaSet should serve a basic image on each replica with a public image [Conformance]",
  "[sig-apps] Job should run a job to completion when tasks sometimes fail and are locally restarted [Conformance]",
  "[sig-node] Pods should be submitted and removed [Conformance]",
  "[sig-node] Downward API should provide pod name, namespace and IP address as env vars [Conformance]",
  "[sig-node] Kubelet when scheduling a busybox command in a pod should print the output to logs [Conformance]",
  "[sig-node] Container Runtime blackbox test on terminated container should report termination message from log output if TerminationMessagePolicy FallbackToLogsOnError is set [Conformance]",
  "[sig-storage] ConfigMap should be consumable from pods in volume [Conformance]",
  "[sig-api-machinery] Namespaces should ensure that all services are removed when a namespace is deleted [Conformance]",
  "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]",
  "[sig-api-machinery] Watchers should be able to restart watching from the last resource version observed by the previous watch [Conformance]",
  "[sig-api-machinery] ResourceQuota should create a ResourceQuota and capture the life of a pod. [Conformance]",
];

const quote = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const focus = CI_SLICE.map(quote).join("|");

describe.if(canBoot)("conformance slice (planet test --conformance)", () => {
  let rootfs = "";
  let bundle = "";
  let host: ReturnType<typeof testHost> | undefined;
  const report = join(work, "report");
  const conformance = (...extra: string[]) =>
    planetAsync(["test", "--conformance", "--kubeconfig", join(secrets, "admin.kubeconfig"), "--bundle", bundle, ...extra]);

  beforeAll(async () => {
    rootfs = join(buildTest("conformance-dev", ["--target", "dev"]), "rootfs");
    bundle = buildTest("conformance-bundle", ["--target", "conformance"]);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    await devSecrets(secrets, { domain: "conf.test", ips: [IP], node: NODE });
    host = testHost(HOST, IP);
  }, 3_600_000);
  afterAll(() => {
    if (readState(`planet-${CLUSTER}-${HOST}`)) planet("stop", "--rootfs", rootfs, "--timeout", "30");
    host?.[Symbol.dispose]();
  });

  test("the bundle: e2e.test and ginkgo of the cluster's Kubernetes, the images under the names e2e.test asks for", () => {
    const record = JSON.parse(readFileSync(join(bundle, "bundle.json"), "utf8")) as {
      assets: { name: string; source: string }[];
      images: { ref: string; aliases: string[] }[];
    };
    const k8s = JSON.parse(readFileSync(join(REPO, "build/test-conformance-dev/planet.json"), "utf8")) as {
      assets: { name: string; source: string }[];
    };
    expect(record.assets.find((a) => a.name === "e2e")?.source).toBe(k8s.assets.find((a) => a.name === "kubernetes")?.source);
    // The images the [Conformance] specs run are bundled under the names e2e.test lists.
    const listed = Bun.spawnSync([join(bundle, "bin/e2e.test"), "--list-images"])
      .stdout.toString()
      .split("\n");
    const refs = record.images.flatMap((i) => [i.ref, ...i.aliases]);
    const used = [
      "agnhost:2.66.1",
      "agnhost:2.55",
      "busybox:1.37.0-2",
      "nginx:1.27.0-2",
      "glibc-dns-testing:2.1.1",
      "nautilus:1.8",
      "kitten:1.8",
      "nonewprivs:1.4",
      "sample-apiserver:1.29.2",
    ].map((n) => `registry.k8s.io/e2e-test-images/${n}`);
    for (const ref of [...used, "registry.k8s.io/etcd:3.7.0-0"]) {
      expect(listed).toContain(ref);
      expect(refs).toContain(ref);
    }
  });

  test("bad input: no bundle, a report dir that is not writable, a cluster that does not answer — one line each, exit 1", async () => {
    const noBundle = await planetAsync([
      "test",
      "--conformance",
      "--kubeconfig",
      join(secrets, "admin.kubeconfig"),
      "--bundle",
      work,
    ]);
    expect(noBundle.exitCode).toBe(1);
    expect(noBundle.stderr.trim()).toMatch(/^NO_BUNDLE: no conformance bundle at .*: build it with `make conformance`/);
    const ro = join(work, "ro");
    mkdirSync(ro, { recursive: true });
    writeFileSync(join(ro, "report"), "a file, not a folder");
    const unwritable = await conformance("--report-dir", join(ro, "report", "x"));
    expect(unwritable.exitCode).toBe(1);
    expect(unwritable.stderr.trim()).toMatch(/^UNWRITABLE: report dir .* is not writable/);
    // The bubble is not started yet: the cluster does not answer.
    const down = await conformance("--report-dir", report);
    expect(down.exitCode).toBe(1);
    expect(down.stderr.trim().split("\n")).toHaveLength(1);
    expect(down.stderr).toMatch(/^APISERVER_UNREACHABLE: the cluster at https:\/\/.* is not reachable/);
  }, 120_000);

  test("twenty [Conformance] specs pass offline on the dev bubble, with progress, JUnit and the e2e log", async () => {
    const res = await startBubble({ rootfs, host: HOST, cluster: CLUSTER, node: NODE, work });
    expect(res.exitCode).toBe(0);
    const kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig")));
    await waitFor("default service account", () => kube.get("/api/v1/namespaces/default/serviceaccounts/default"), 120_000);
    const run = await conformance("--rootfs", rootfs, "--focus", focus, "--parallel", "2", "--report-dir", report);
    process.stderr.write(run.stdout.split("\n").slice(-30).join("\n"));
    if (run.exitCode !== 0)
      process.stderr.write(`\nplanet test --conformance exited ${run.exitCode}: ${run.stderr.slice(-2000)}\n`);
    expect(run.stdout).toMatch(/imported \d+ images into the registry/);
    expect(run.stdout).toMatch(/\[\dm\d\ds\] \d+\/20 specs done, 0 failed/);
    expect(run.stdout.trim().split("\n").at(-1)).toBe("Ran 20 of 20 specs: 20 passed, 0 failed, 0 skipped");
    expect(run.exitCode).toBe(0);
    expect(existsSync(join(report, "e2e.log"))).toBe(true);
    expect(readFileSync(join(report, "junit_01.xml"), "utf8")).toMatch(/<testsuite[^>]+tests="\d+"[^>]+failures="0"/);
  }, 2_400_000);
});
