/**
 * Pushes OCI image layouts into a registry that speaks the OCI distribution API, over a unix socket
 * (`unix:/run/x.sock`) or HTTPS with a client certificate. A reference `docker.io/library/busybox:latest`
 * lands in repository `docker.io/library/busybox` — the registry's name keeps the upstream registry,
 * which is how containerd's hosts.toml (override_path) asks for it.
 */
import { readFileSync } from "node:fs";
import { PlanetError } from "../errors.ts";
import { parseRef } from "../image-ref.ts";
import { type LayoutImage, readOciLayout } from "./oci-layout.ts";

export interface RegistryTarget {
  /** `unix:/path.sock` or `https://host:port`. */
  url: string;
  ca?: string;
  cert?: string;
  key?: string;
}

type Fetch = (path: string, init?: RequestInit) => Promise<Response>;

export function registryFetch(target: RegistryTarget): Fetch {
  if (target.url.startsWith("unix:")) {
    const unix = target.url.slice("unix:".length);
    return (path, init) => fetch(`http://localhost${path}`, { ...init, unix } as RequestInit);
  }
  if (!/^https?:\/\/[^/]+$/.test(target.url))
    throw new PlanetError("BAD_FLAG", `registry ${target.url}: expected unix:/path.sock or https://host:port`);
  const tls =
    target.ca || target.cert
      ? {
          ...(target.ca ? { ca: readFileSync(target.ca, "utf8") } : {}),
          ...(target.cert ? { cert: readFileSync(target.cert, "utf8") } : {}),
          ...(target.key ? { key: readFileSync(target.key, "utf8") } : {}),
        }
      : undefined;
  return (path, init) => fetch(`${target.url}${path}`, { ...init, ...(tls ? { tls } : {}) } as RequestInit);
}

async function expectStatus(res: Response, ok: number[], what: string): Promise<void> {
  if (ok.includes(res.status)) return;
  const body = (await res.text()).trim().slice(0, 200);
  throw new PlanetError("REGISTRY_PUSH", `${what}: HTTP ${res.status}${body ? ` ${body}` : ""}`);
}

/** Pushes one image (blobs first, then the manifest under its tag); returns the bytes uploaded. */
export async function pushImage(f: Fetch, img: LayoutImage): Promise<number> {
  const { repo, tag } = parseRef(img.ref);
  let sent = 0;
  for (const b of img.blobs) {
    const head = await f(`/v2/${repo}/blobs/${b.digest}`, { method: "HEAD" });
    if (head.status === 200) continue;
    const start = await f(`/v2/${repo}/blobs/uploads/`, { method: "POST" });
    await expectStatus(start, [202], `${img.ref}: start upload`);
    const location = start.headers.get("location");
    if (!location) throw new PlanetError("REGISTRY_PUSH", `${img.ref}: the registry gave no upload location`);
    const url = new URL(location, "http://localhost");
    url.searchParams.set("digest", b.digest);
    const put = await f(`${url.pathname}${url.search}`, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream", "content-length": String(b.size) },
      body: readFileSync(b.path),
    });
    await expectStatus(put, [201], `${img.ref}: upload ${b.digest}`);
    sent += b.size;
  }
  const manifest = readFileSync(img.manifest.path);
  const put = await f(`/v2/${repo}/manifests/${tag}`, {
    method: "PUT",
    headers: { "content-type": img.manifest.mediaType },
    body: manifest,
  });
  await expectStatus(put, [201], `${img.ref}: manifest`);
  return sent;
}

/** Whether the registry already holds `ref` with this manifest digest. */
export async function hasImage(f: Fetch, img: LayoutImage): Promise<boolean> {
  const { repo, tag } = parseRef(img.ref);
  const res = await f(`/v2/${repo}/manifests/${tag}`, {
    method: "HEAD",
    headers: { accept: img.manifest.mediaType },
  });
  return res.status === 200 && res.headers.get("docker-content-digest") === img.manifest.digest;
}

/** Pushes every image of the layout folders; images already there with the same digest are skipped. */
export async function pushLayouts(
  target: RegistryTarget,
  dirs: string[],
  onImage: (ref: string, state: "pushed" | "present", bytes: number) => void = () => {},
): Promise<number> {
  const f = registryFetch(target);
  let count = 0;
  for (const dir of dirs)
    for (const img of readOciLayout(dir)) {
      if (await hasImage(f, img)) {
        onImage(img.ref, "present", 0);
        continue;
      }
      onImage(img.ref, "pushed", await pushImage(f, img));
      count++;
    }
  return count;
}
