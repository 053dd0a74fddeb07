#!/usr/bin/env bun
/**
 * A node joins a running master with a token, then renews every certificate it holds through the
 * master, while a writer creates a ConfigMap through the API every 100 ms:
 * token → Ready, the renewal's time, and the writes that failed during each (target 0). Then the
 * cluster CA is rotated end to end (prepare, rotate, finish: the master's directory issued again, the
 * token-joined node taking the trust from the master, each host's renew unit restarting what changed).
 */
import { rmSync } from "node:fs";
import { connect } from "node:tls";
import { certRequests } from "../core/cli/commands/secrets.ts";
import { Kube, loadKubeconfig } from "../core/kube/client.ts";
import { issueHost } from "../secrets/host.ts";
import { planet, waitFor } from "../test/helpers.ts";
import { benchFleet, CLI, check, run, runAsync, table } from "./_table.ts";

const fleet = benchFleet("join", "pbj", "10.222.0", [
  ["m1", "master"],
  ["n1", "node"],
]);
const master = fleet.host("m1");
const node = fleet.host("n1");
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function ready(kube: Kube, name: string): Promise<boolean> {
  const n = await kube.get<{ status: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${name}`);
  return n.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** ConfigMaps written every 100 ms until stopped (through the client `kube()` gives at each write). */
function writer(kube: () => Kube) {
  let ok = 0;
  let failed = 0;
  let on = true;
  const loop = (async () => {
    for (let i = 0; on; i++) {
      await kube()
        .create("/api/v1/namespaces/default/configmaps", {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: `w-${Date.now()}-${i}` },
        })
        .then(() => ok++)
        .catch(() => failed++);
      await Bun.sleep(100);
    }
  })();
  return {
    mark: () => ({ ok, failed }),
    stop: async () => {
      on = false;
      await loop;
      return { ok, failed };
    },
  };
}

try {
  await fleet.prepare();
  // The node gets nothing copied: it joins with a token.
  rmSync(fleet.secrets(node), { recursive: true, force: true });
  const started = await fleet.start(master);
  if (started.exitCode !== 0) throw new Error(started.stderr.slice(-800));
  const kube = fleet.kube();
  await waitFor("m1 Ready", () => ready(kube, "m1").catch(() => false), 240_000, 500);
  const w = writer(() => kube);
  const t0 = performance.now();
  const token = planet("exec", "--rootfs", fleet.rootfs(master), "--", "planet", "token", "create", "--ttl", "30m");
  if (token.exitCode !== 0) throw new Error(token.stderr);
  const tokenMs = performance.now() - t0;
  const atJoin = w.mark();
  const j0 = performance.now();
  const joined = await fleet.start(node, "--join", master.ip, "--token", token.stdout.trim());
  if (joined.exitCode !== 0) throw new Error(joined.stderr.slice(-800));
  const startedMs = performance.now() - j0;
  await waitFor("n1 Ready", () => ready(kube, "n1").catch(() => false), 180_000, 200);
  const readyMs = performance.now() - j0;
  const afterJoin = w.mark();
  const r0 = performance.now();
  // Asynchronously: the writer keeps writing while the node renews (a spawnSync would freeze it).
  const renew = await runAsync([
    ...CLI,
    "exec",
    "--rootfs",
    fleet.rootfs(node),
    "--",
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    "set -a; . /etc/container-environment; set +a; mount -o remount,bind,rw /var/state && exec planet secrets renew --warn-days 400 --restart-units /var/state",
  ]);
  if (renew.code !== 0) throw new Error(renew.err.slice(-800));
  const renewMs = performance.now() - r0;
  await waitFor("n1 Ready after the renewal", () => ready(kube, "n1").catch(() => false), 120_000, 200);
  const renewedReadyMs = performance.now() - r0;
  const healthy = await waitFor(
    "n1 healthy",
    () => planet("status", "--rootfs", fleet.rootfs(node), "--local").exitCode === 0,
    180_000,
    1000,
  ).then(
    () => performance.now() - r0,
    () => Number.NaN,
  );
  const end = await w.stop();
  const renewed = `${renew.out}${renew.err}`.match(/renewed ([\w, -]+)/)?.[1]?.split(", ").length ?? 0;
  table("token join and renewal through the master (one master + one node, 2-core VM)", [
    ["measure", "value", "target"],
    ["planet token create (inside the master)", s(tokenMs), ""],
    ["planet start --join → ready (keys, CSRs, start)", s(startedMs), ""],
    ["planet start --join → Node Ready", s(readyMs), ""],
    [
      "API writes during the join: acknowledged / failed",
      `${afterJoin.ok - atJoin.ok} / ${afterJoin.failed - atJoin.failed}`,
      "0 failed",
    ],
    [`renewal of every leaf on the node (${renewed} certificates, units restarted)`, s(renewMs), ""],
    ["renewal → Node Ready / → every check green", `${s(renewedReadyMs)} / ${s(healthy)}`, ""],
    [
      "API writes during the renewal: acknowledged / failed",
      `${end.ok - afterJoin.ok} / ${end.failed - afterJoin.failed}`,
      "0 failed",
    ],
  ]);
  await rotateCa();
} finally {
  fleet.down();
}

/** The issuer CN of the certificate a TLS server presents. */
function servedIssuer(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, rejectUnauthorized: false }, () => {
      resolve(String(sock.getPeerCertificate().issuer.CN));
      sock.end();
    });
    sock.on("error", () => resolve(""));
  });
}

async function rotateCa(): Promise<void> {
  let api = fleet.kube();
  const w = writer(() => api);
  const renewOn = (h: typeof master) =>
    runAsync([...CLI, "exec", "--rootfs", fleet.rootfs(h), "--", "systemctl", "start", "planet-secrets-renew.service"]);
  const rows: string[][] = [];
  const t0 = performance.now();
  for (const stage of ["prepare", "rotate", "finish"]) {
    const before = w.mark();
    const s0 = performance.now();
    let waited = 0;
    if (stage === "finish") {
      await waitFor(
        "the apiserver serving the new CA",
        async () => (await servedIssuer(master.ip, 6443)) === "planet-ca-2",
        180_000,
        500,
      );
      waited = performance.now() - s0;
    }
    check(run([...CLI, "secrets", "rotate-ca", fleet.clusterDir, "--stage", stage]));
    await issueHost(fleet.clusterDir, fleet.secrets(master), certRequests("master", ["master"]).requests, {
      nodeName: master.name,
      ips: [master.ip],
      hosts: [],
      roles: ["master"],
      validityDays: 365,
    });
    api = new Kube(loadKubeconfig(`${fleet.clusterDir}/admin.kubeconfig`, `https://${master.ip}:6443`));
    const issuedMs = performance.now() - s0;
    for (const h of [master, node]) {
      const r = await renewOn(h);
      if (r.code !== 0) throw new Error(`${stage} on ${h.name}: ${r.err.slice(-500)}`);
    }
    await waitFor(`both Ready after ${stage}`, async () => (await ready(api, "m1")) && (await ready(api, "n1")), 180_000, 200);
    const after = w.mark();
    rows.push([
      stage,
      s(issuedMs - waited),
      s(performance.now() - s0 - waited),
      stage === "finish" ? s(waited) : "",
      `${after.ok - before.ok} / ${after.failed - before.failed}`,
    ]);
  }
  const end = await w.stop();
  table("cluster CA rotation end to end (one master + one token-joined node, 2-core VM)", [
    [
      "stage",
      "rotate-ca + the master's directory",
      "→ both hosts restarted what changed, Ready",
      "wait: apiserver serves new CA",
      "writes ok / failed",
    ],
    ...rows,
    ["total", "", s(performance.now() - t0), "", `${end.ok} / ${end.failed} (target 0 failed)`],
  ]);
}
