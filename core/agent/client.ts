/**
 * The agent's client: where its unix socket is, from inside a bubble or from the host, and one
 * request to it. The CLI, the upgrade and the tests all talk to the agent through these.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { bubbleRoot } from "../bubble/slot-root.ts";
import { type ErrorCode, PlanetError } from "../errors.ts";
import { ownImageRootfs } from "../manifest.ts";

/** Where the agent's unix socket lives inside the rootfs (so the host reaches it through the rootfs path). */
export const AGENT_SOCKET = "/var/lib/planet/agent.sock";

/** The agent socket: inside a bubble at its path, from the host through the bubble's root. */
export function agentSocket(rootfs?: string): string {
  if (rootfs) return join(bubbleRoot(resolve(rootfs)), AGENT_SOCKET);
  if (process.env.container === "planet" || existsSync(AGENT_SOCKET)) return AGENT_SOCKET;
  const own = ownImageRootfs();
  return own ? join(bubbleRoot(own), AGENT_SOCKET) : AGENT_SOCKET;
}

/** One request to the agent; its errors come back as the PlanetError the agent raised. */
export async function ask<T>(socket: string, path: string, method = "GET", payload?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`http://agent${path}`, {
      unix: socket,
      method,
      ...(payload === undefined ? {} : { body: JSON.stringify(payload), headers: { "content-type": "application/json" } }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    throw new PlanetError(
      "AGENT_UNREACHABLE",
      `no answer on ${socket} (${(e as Error).message}); look at the unit: planet exec systemctl status planet-agent`,
      { exitCode: 2 },
    );
  }
  const body = (await res.json()) as T & { error?: { code: string; message: string } };
  // The agent is this same program: its codes are ours.
  if (!res.ok)
    throw new PlanetError(
      (body.error?.code as ErrorCode | undefined) ?? "AGENT_ERROR",
      body.error?.message ?? `HTTP ${res.status}`,
    );
  return body;
}
