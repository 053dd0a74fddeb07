#!/usr/bin/env bun
/**
 * Offline images (dev image, test host): the registry import at boot, the conformance bundle's import
 * into a running bubble (cold and again), pulls of bundled images through the in-bubble registry
 * (cold: the first pull; warm: again after `crictl rmi`), how fast an unbundled image is refused,
 * and the size of the conformance bundle. Needs `make dev conformance`.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execEnv } from "../core/bubble/exec.ts";
import { importImages } from "../core/e2e/conformance.ts";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import { startArgs } from "../test/helpers.ts";
import { CLI, check, median, mib, REPO, run, table } from "./_table.ts";

const IP = "10.210.0.1";
const NS = "pt-ibench";
const rootfs = join(REPO, "build/dev/rootfs");
const bundle = join(REPO, "build/conformance");
const work = mkdtempSync(join(tmpdir(), "planet-ibench-"));
const secrets = join(work, "secrets");
const inside = (...cmd: string[]) => run([...CLI, "exec", "--rootfs", rootfs, ...cmd]);

function du(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((s, f) => s + du(join(path, f)), 0);
}

check(run([...CLI, "secrets", "init", "--domain", "bench.local", "--ip", IP, "--node-name", "ibench", secrets]));
check(run([...CLI, "dev-host", "up", NS, "--ip", IP]));
const rows: (string | number)[][] = [["measure", "value"]];
try {
  check(run([...CLI, ...startArgs({ rootfs, host: NS, cluster: "ibench", node: "ibench", secrets, data: join(work, "data") })]));

  const kube = new Kube(loadKubeconfig(join(secrets, "admin.kubeconfig")));
  const mono = (prop: string) => Number(inside("systemctl", "show", "registry-import.service", "-p", prop, "--value").out.trim());
  for (let i = 0; i < 600 && inside("systemctl", "is-active", "registry-import.service").out.trim() !== "active"; i++)
    await Bun.sleep(200);
  rows.push([
    "registry import at boot (bundled images)",
    `${((mono("ExecMainExitTimestampMonotonic") - mono("ExecMainStartTimestampMonotonic")) / 1e6).toFixed(2)} s`,
  ]);
  for (const [label, ref] of [
    ["busybox", "docker.io/library/busybox:latest"],
    ["pause", "registry.k8s.io/pause:3.10.2"],
  ] as const) {
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      inside("crictl", "rmi", ref);
      times.push(check(inside("crictl", "pull", ref)).seconds);
    }
    rows.push([
      `pull ${label} through the registry: first / median of 3 more`,
      `${times[0]?.toFixed(2)} s / ${median(times.slice(1)).toFixed(2)} s`,
    ]);
  }
  const t0 = performance.now();
  await importImages(bundle, rootfs, execEnv(rootfs), CLI);
  const cold = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  await importImages(bundle, rootfs, execEnv(rootfs), CLI);
  rows.push([
    "conformance bundle import: first / again (all present)",
    `${cold.toFixed(1)} s / ${((performance.now() - t1) / 1000).toFixed(1)} s`,
  ]);
  const agnhost = "registry.k8s.io/e2e-test-images/agnhost:2.66.1";
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    inside("crictl", "rmi", agnhost);
    times.push(check(inside("crictl", "pull", agnhost)).seconds);
  }
  rows.push([
    "pull agnhost through the registry: first / median of 3 more",
    `${times[0]?.toFixed(2)} s / ${median(times.slice(1)).toFixed(2)} s`,
  ]);
  await kube.create("/api/v1/namespaces/default/pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "unbundled" },
    spec: { containers: [{ name: "main", image: "docker.io/library/not-bundled:1.0" }] },
  });
  const t2 = performance.now();
  for (;;) {
    const p = await kube.get<{ status: { containerStatuses?: { state: { waiting?: { reason: string } } }[] } }>(
      "/api/v1/namespaces/default/pods/unbundled",
    );
    if (/ErrImagePull|ImagePullBackOff/.test(p.status.containerStatuses?.[0]?.state.waiting?.reason ?? "")) break;
    await Bun.sleep(100);
  }
  rows.push(["pod with an unbundled image → ErrImagePull", `${((performance.now() - t2) / 1000).toFixed(1)} s`]);
} finally {
  run([...CLI, "stop", "--rootfs", rootfs]);
  run([...CLI, "dev-host", "down", NS]);
  rmSync(work, { recursive: true, force: true });
}
rows.push(["conformance bundle on disk (all)", mib(du(bundle))]);
rows.push(["  of which images", mib(du(join(bundle, "images")))]);
for (const img of readdirSync(join(bundle, "images"))) rows.push([`  image ${img}`, mib(du(join(bundle, "images", img)))]);
rows.push(["  e2e.test / ginkgo", `${mib(du(join(bundle, "bin/e2e.test")))} / ${mib(du(join(bundle, "bin/ginkgo")))}`]);
table("offline images (dev bubble, in-bubble registry)", rows);
