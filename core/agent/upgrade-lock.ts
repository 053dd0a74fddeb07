/**
 * The cluster's upgrade lock: one etcd key, taken with a transaction that succeeds only when the key
 * does not exist (or its owner takes it again), so two upgrades never run in one cluster at once.
 * It has no lease on purpose: an upgrade killed halfway keeps the cluster locked until it is
 * resumed (its owner takes the lock again), or released by force once nothing runs under it.
 */
import type { Etcd3 } from "etcd3";
import { PlanetError } from "../errors.ts";
import { withTimeout } from "./checks.ts";

export interface UpgradeLock {
  /** Who holds it: one host's upgrade (its journal id) or a cluster roll (its plan's id). */
  owner: string;
  /** The node whose agent took it. */
  node: string;
  /** What runs under it, for the people it blocks ("planet upgrade of planet-prod to master 0.2.0"). */
  what: string;
  since: string;
}

export class ClusterLock {
  constructor(
    private readonly client: Etcd3,
    readonly key: string,
    private readonly node: string,
  ) {}

  private async raw(): Promise<string | null> {
    return withTimeout(this.client.get(this.key).string(), 5000, "etcd: read the upgrade lock").catch((e: Error) => {
      throw new PlanetError("ETCD_UNREACHABLE", `cannot read the cluster's upgrade lock ${this.key}: ${e.message}`);
    });
  }

  async get(): Promise<UpgradeLock | null> {
    const raw = await this.raw();
    return raw ? (JSON.parse(raw) as UpgradeLock) : null;
  }

  /** Takes the lock for `owner`, or finds it already held by `owner`; held by another, throws who holds it. */
  async take(owner: string, what: string): Promise<UpgradeLock> {
    const lock: UpgradeLock = { owner, node: this.node, what, since: new Date().toISOString() };
    const tx = await withTimeout(
      this.client
        .if(this.key, "Create", "==", 0)
        .then(this.client.put(this.key).value(JSON.stringify(lock)))
        .commit(),
      5000,
      "etcd: take the upgrade lock",
    ).catch((e: Error) => {
      throw new PlanetError("ETCD_UNREACHABLE", `cannot take the cluster's upgrade lock ${this.key}: ${e.message}`);
    });
    if (tx.succeeded) return lock;
    const held = await this.get();
    if (!held) return this.take(owner, what);
    if (held.owner === owner) return held;
    throw new PlanetError(
      "UPGRADE_LOCKED",
      `another upgrade holds the cluster's upgrade lock: ${held.what} (owner ${held.owner}, from node ${held.node}, since ${held.since}); wait for it, or resume it there (planet upgrade --resume)`,
    );
  }

  /**
   * Releases the lock if `owner` holds it (or whoever holds it, with `force`). Returns the lock that
   * was released, null when there was none; held by another owner without `force`, throws.
   */
  async release(owner: string, force = false): Promise<UpgradeLock | null> {
    const raw = await this.raw();
    if (!raw) return null;
    const held = JSON.parse(raw) as UpgradeLock;
    if (held.owner !== owner && !force)
      throw new PlanetError(
        "UPGRADE_LOCKED",
        `the cluster's upgrade lock is held by ${held.owner} (${held.what}), not ${owner}: nothing released`,
      );
    // Only the lock as read: one taken again in between stays.
    const tx = await this.client.if(this.key, "Value", "==", raw).then(this.client.delete().key(this.key)).commit();
    return tx.succeeded ? held : this.release(owner, force);
  }
}
