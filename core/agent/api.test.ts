import { describe, expect, test } from "bun:test";
import { PlanetError } from "../errors.ts";
import { type AgentView, createApi, type LeaderView } from "./api.ts";
import type { CheckStatus } from "./checks.ts";

const check = (name: string, plugin: string, state: CheckStatus["state"], error?: string): CheckStatus => ({
  name,
  plugin,
  kind: "http",
  severity: "critical",
  state,
  ready: state === "ok",
  results:
    state === "pending" ? [] : [{ ok: state === "ok", at: "2026-11-23T00:00:00.000Z", ms: 3, ...(error ? { error } : {}) }],
});

function fake(overrides: Partial<AgentView> = {}): AgentView & { paused: boolean } {
  const checks = [
    check("etcd-healthz", "etcd", "ok"),
    check("kube-master-apiserver-healthz", "kube-master", "failed", "HTTP 500"),
  ];
  const state = { paused: false };
  const leader = (): LeaderView => ({
    leader: "10.0.0.1",
    self: "10.0.0.1",
    isLeader: !state.paused,
    paused: state.paused,
    etcd: "up",
  });
  return Object.assign(state, {
    health: () => ({
      node: "n1",
      ip: "10.0.0.1",
      roles: ["master" as const],
      status: "degraded" as const,
      failed: ["kube-master-apiserver-healthz"],
      pending: [],
      checks: 2,
      leader: true,
    }),
    checks: () => checks,
    leader,
    pause: async () => {
      state.paused = true;
    },
    resume: async () => {
      state.paused = false;
    },
    members: async () => [
      { name: "n1", ip: "10.0.0.1", status: "healthy" as const },
      { name: "n2", ip: "10.0.0.2", status: "unreachable" as const, error: "connect ECONNREFUSED" },
    ],
    ...overrides,
  });
}

describe("agent API", () => {
  test("/health and /checks", async () => {
    const app = createApi(fake());
    const h = await (await app.request("/health")).json();
    expect(h).toMatchObject({ node: "n1", status: "degraded", failed: ["kube-master-apiserver-healthz"] });
    const checks = (await (await app.request("/checks")).json()) as CheckStatus[];
    expect(checks.map((c) => [c.name, c.state])).toEqual([
      ["etcd-healthz", "ok"],
      ["kube-master-apiserver-healthz", "failed"],
    ]);
  });

  test("/plugins/:name, and 404 as JSON for an unknown plugin or route", async () => {
    const app = createApi(fake());
    expect(await (await app.request("/plugins/kube-master")).json()).toMatchObject({
      plugin: "kube-master",
      status: "degraded",
      failed: ["kube-master-apiserver-healthz"],
    });
    expect(await (await app.request("/plugins/etcd")).json()).toMatchObject({ status: "healthy" });
    const missing = await app.request("/plugins/nope");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: "NOT_FOUND", message: "no checks of plugin nope on this node" } });
    const route = await app.request("/nowhere");
    expect(route.status).toBe(404);
    expect(((await route.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
  });

  test("/status aggregates members; an unreachable member degrades the cluster", async () => {
    const st = (await (await createApi(fake()).request("/status")).json()) as { status: string; members: { status: string }[] };
    expect(st.status).toBe("degraded");
    expect(st.members.map((m) => m.status)).toEqual(["healthy", "unreachable"]);
  });

  test("/leader, pause and resume", async () => {
    const app = createApi(fake());
    expect(await (await app.request("/leader")).json()).toMatchObject({ isLeader: true, paused: false });
    expect(await (await app.request("/leader/pause", { method: "POST" })).json()).toMatchObject({
      isLeader: false,
      paused: true,
    });
    expect(await (await app.request("/leader/resume", { method: "POST" })).json()).toMatchObject({ paused: false });
  });

  test("errors map to JSON: PlanetError codes to statuses, anything else to 500", async () => {
    const etcdDown = createApi(
      fake({
        members: async () => {
          throw new PlanetError("ETCD_UNREACHABLE", "etcd is unreachable");
        },
      }),
    );
    const r1 = await etcdDown.request("/status");
    expect(r1.status).toBe(503);
    expect(await r1.json()).toEqual({ error: { code: "ETCD_UNREACHABLE", message: "etcd is unreachable" } });
    const boom = createApi(
      fake({
        checks: () => {
          throw new TypeError("boom");
        },
      }),
    );
    const r2 = await boom.request("/checks");
    expect(r2.status).toBe(500);
    expect(await r2.json()).toEqual({ error: { code: "INTERNAL", message: "boom" } });
  });
});
