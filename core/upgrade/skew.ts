/**
 * Whether one image may follow another: the planet version never goes down, and every asset a
 * plugin of the new image gives a skew rule for moves forward by at most its minor step, from at
 * least its floor (Kubernetes: no skipped minor; etcd: 3.6 → 3.7 only from ≥ 3.6.11).
 */
import { PlanetError } from "../errors.ts";
import type { Manifest } from "../manifest.ts";

type Version = [number, number, number];

export function parseVersion(v: string): Version | null {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (!x || !y) return a.localeCompare(b);
  for (let i = 0; i < 3; i++) if ((x[i] as number) !== (y[i] as number)) return (x[i] as number) - (y[i] as number);
  return 0;
}

/** Minors between two versions of the same major (a different major counts as a large step). */
function minorStep(from: Version, to: Version): number {
  return from[0] === to[0] ? to[1] - from[1] : (to[0] - from[0]) * 1000;
}

const assetVersion = (m: Manifest, name: string) => m.assets.find((a) => a.name === name)?.version;

/** The versions an upgrade is about: each asset a plugin of the image gives a skew rule for (`{kubernetes: "1.37.2", …}`). */
export function ruledVersions(m: Manifest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of m.plugins)
    for (const rule of p.upgrade?.skew ?? []) {
      const v = assetVersion(m, rule.asset);
      if (v) out[rule.asset] = v;
    }
  return out;
}

/** Throws the first rule `to` breaks as the image following `from`; returns what changes. */
export function checkSkew(from: Manifest, to: Manifest): string[] {
  if (to.target !== from.target)
    throw new PlanetError("UPGRADE_REFUSED", `the image is for target ${to.target}, this host runs ${from.target}`);
  if (compareVersions(to.version, from.version) < 0)
    throw new PlanetError("UPGRADE_REFUSED", `the image is planet ${to.version}, older than the running ${from.version}`);
  const changes: string[] = [];
  if (to.version !== from.version) changes.push(`planet ${from.version} → ${to.version}`);
  for (const p of to.plugins)
    for (const rule of p.upgrade?.skew ?? []) {
      const a = assetVersion(from, rule.asset);
      const b = assetVersion(to, rule.asset);
      if (!a || !b || a === b) continue;
      const va = parseVersion(a);
      const vb = parseVersion(b);
      if (!va || !vb) throw new PlanetError("UPGRADE_REFUSED", `${rule.asset}: cannot compare versions ${a} and ${b}`);
      if (compareVersions(b, a) < 0)
        throw new PlanetError(
          "UPGRADE_REFUSED",
          `${rule.asset} ${b} is older than the running ${a} (plugin ${p.name} never goes back)`,
        );
      const step = minorStep(va, vb);
      const max = rule.maxMinorStep ?? 1;
      if (step > max)
        throw new PlanetError(
          "UPGRADE_REFUSED",
          `${rule.asset} ${a} → ${b} skips ${step - 1} minor version${step > 2 ? "s" : ""}: upgrade to ${va[0]}.${va[1] + 1} first`,
        );
      const floor = rule.floors?.[`${vb[0]}.${vb[1]}`];
      if (step > 0 && floor && compareVersions(a, floor) < 0)
        throw new PlanetError(
          "UPGRADE_REFUSED",
          `${rule.asset} ${b} can only follow ${floor} or newer, and ${a} runs: upgrade to ${floor} first`,
        );
      changes.push(`${rule.asset} ${a} → ${b}`);
    }
  return changes;
}
