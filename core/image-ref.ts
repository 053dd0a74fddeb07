/** Container image references as the images plugins ship are named: `registry/path:tag`, the registry spelled out. */
import { PlanetError } from "./errors.ts";

/** `registry.k8s.io/pause:3.10` → `{ repo: "registry.k8s.io/pause", tag: "3.10" }`; the registry host is required. */
export function parseRef(ref: string): { registry: string; path: string; repo: string; tag: string } {
  const m =
    /^([a-z0-9.-]+(?::\d+)?)\/([a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*):([\w][\w.-]{0,127})$/.exec(ref);
  if (!m?.[1]?.includes("."))
    throw new PlanetError(
      "IMAGE_REF",
      `image reference ${ref}: expected registry/name:tag with the registry spelled out, e.g. docker.io/library/busybox:latest`,
    );
  return { registry: m[1], path: m[2] as string, repo: `${m[1]}/${m[2]}`, tag: m[3] as string };
}
