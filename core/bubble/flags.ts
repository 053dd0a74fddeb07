/**
 * The flags of `planet start` that have a shape of their own, each parsed and checked alone: the
 * masters of `--initial-cluster`, a `--volume`, and the lists of `--dns-hosts`/`--dns-zones`.
 * prepare.ts weighs them together.
 */
import { existsSync, realpathSync } from "node:fs";
import { isIP } from "node:net";
import { PlanetError } from "../errors.ts";
import type { Role } from "../plugin.ts";
import type { Volume } from "./spec.ts";

export interface Member {
  name: string;
  ip: string;
}

/**
 * The masters from `--initial-cluster name:ip,…`. A master must be in it under its node name and
 * public IP (etcd refuses a member missing from its initial cluster); without the flag a master is
 * alone and a node follows `--master-ip` (default: its own address, as in the original).
 */
export function initialCluster(
  text: string | undefined,
  roles: Role[],
  nodeName: string,
  publicIp: string,
  masterIp?: string,
): Member[] {
  const members: Member[] = [];
  for (const entry of (text ?? "")
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [name, ip, extra] = entry.split(":");
    if (!name || !ip || extra !== undefined || !/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/.test(name) || isIP(ip) !== 4)
      throw new PlanetError("BAD_FLAG", `--initial-cluster ${entry}: expected name:ip (e.g. master-1:10.0.0.1)`);
    if (members.some((m) => m.name === name || m.ip === ip))
      throw new PlanetError("BAD_FLAG", `--initial-cluster names ${name} or ${ip} twice`);
    members.push({ name, ip });
  }
  const master = roles.includes("master");
  if (!members.length) {
    if (master) return [{ name: nodeName, ip: publicIp }];
    // The original's default: --master-ip is the public IP (a node's join check then says no master answers).
    return [{ name: "master", ip: masterIp ?? publicIp }];
  }
  if (master) {
    const self = members.find((m) => m.name === nodeName);
    if (!self || self.ip !== publicIp)
      throw new PlanetError(
        "BAD_FLAG",
        `--initial-cluster ${text} does not include this master as ${nodeName}:${publicIp}; add it (every master lists all masters)`,
      );
  }
  return members;
}

export function parseVolume(spec: string): Volume {
  const [source, destination, opt, ...rest] = spec.split(":");
  if (!source || !destination?.startsWith("/") || rest.length > 0 || (opt && !["ro", "rw"].includes(opt)))
    throw new PlanetError("BAD_FLAG", `--volume ${spec}: expected /host/path:/path/in/bubble[:ro]`);
  if (!existsSync(source)) throw new PlanetError("BAD_VOLUME", `--volume ${spec}: ${source} does not exist on the host`);
  return { source: realpathSync(source), destination, readonly: opt === "ro" };
}

/** `a/b,c/d` of `--dns-hosts`/`--dns-zones`: names and addresses checked, normalised. */
export function parseDnsList(text: string | undefined, flag: string, shape: string): string {
  if (!text) return "";
  const name = /^(?=.{1,253}$)([a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?\.)*[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?\.?$/i;
  return text
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean)
    .map((entry) => {
      const [left, right, extra] = entry.split("/");
      const [host, port] = (right ?? "").split(":");
      if (
        extra !== undefined ||
        !left ||
        !right ||
        !name.test(left) ||
        isIP(host ?? "") !== 4 ||
        (port !== undefined && !/^\d{1,5}$/.test(port))
      )
        throw new PlanetError(
          "BAD_FLAG",
          `${flag} ${entry}: expected ${shape} (e.g. ${flag === "--dns-hosts" ? "registry.example/10.0.0.5" : "corp.example/10.0.0.53"})`,
        );
      return `${left.toLowerCase().replace(/\.$/, "")}/${right}`;
    })
    .join(",");
}
