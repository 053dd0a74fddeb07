import type { Campaign, Election, Etcd3 } from "etcd3";
import { logger } from "../log.ts";

const log = logger("agent:election");

/**
 * Leader election on an etcd key (etcd3's election API): campaign with this node's IP under a
 * lease of `term` seconds. Losing etcd steps down; campaigning resumes with backoff. `pause()`
 * resigns and stops campaigning until `resume()`.
 */
export class LeaderElection {
  private election: Election;
  private campaign?: Campaign;
  private retry?: ReturnType<typeof setTimeout>;
  private backoffMs = 500;
  private closed = false;
  leader: string | null = null;
  isLeader = false;
  paused = false;
  etcdUp = false;
  error?: string;

  /**
   * @param campaign false: only follow who leads (nodes never lead).
   * @param onLeader called with each new leader (also the first one observed).
   */
  constructor(
    client: Etcd3,
    key: string,
    readonly self: string,
    termSeconds: number,
    private readonly campaign_ = true,
    private readonly onLeader?: (leader: string) => void,
  ) {
    // etcd3 keeps an election under `election/<name>/`: inside /planet/, the agents' etcd role's prefix.
    this.election = client.namespace("/planet/").election(key.replace(/^\/planet\//, ""), Math.max(2, Math.round(termSeconds)));
    if (!campaign_) this.paused = true;
  }

  async start(): Promise<void> {
    void this.observe();
    if (!this.paused) this.run();
  }

  private setLeader(v: string | null): void {
    const changed = v !== this.leader;
    this.leader = v;
    if (changed && v) this.onLeader?.(v);
  }

  private run(): void {
    if (this.closed || this.paused) return;
    const campaign = this.election.campaign(this.self);
    this.campaign = campaign;
    campaign.on("elected", () => {
      this.isLeader = true;
      this.setLeader(this.self);
      this.etcdUp = true;
      this.backoffMs = 500;
      log.info(`${this.self} is the leader`);
    });
    campaign.on("error", (err: Error) => {
      if (this.campaign !== campaign) return;
      this.stepDown(err);
      this.retry = setTimeout(() => this.run(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 10_000);
    });
  }

  private stepDown(err?: Error): void {
    if (this.isLeader) log.warn(`${this.self} steps down${err ? `: ${err.message}` : ""}`);
    this.isLeader = false;
    if (err) {
      this.etcdUp = false;
      this.error = err.message;
      this.leader = null;
    }
    this.campaign = undefined;
  }

  /** Follows who leads (also while not campaigning). */
  private async observe(): Promise<void> {
    while (!this.closed) {
      try {
        const observer = await this.election.observe();
        this.etcdUp = true;
        this.error = undefined;
        this.setLeader(observer.leader() ?? null);
        observer.on("change", (v) => {
          this.setLeader(v ?? null);
          if (v !== this.self) this.isLeader = false;
        });
        await new Promise<void>((resolve) => {
          observer.on("error", (e: Error) => {
            this.error = e.message;
            resolve();
          });
          observer.on("disconnected", (e: Error) => {
            this.error = e.message;
            resolve();
          });
        });
        await observer.cancel().catch(() => {});
      } catch (e) {
        this.etcdUp = false;
        this.error = (e as Error).message;
        this.leader = null;
        await Bun.sleep(Math.min(this.backoffMs, 5000));
      }
    }
  }

  /** Who leads, asked of etcd now (the lowest-revision key of the election), not from the observer. */
  async currentLeader(): Promise<string | null> {
    return (await this.election.leader()) ?? null;
  }

  async pause(): Promise<void> {
    this.paused = true;
    clearTimeout(this.retry);
    const c = this.campaign;
    this.campaign = undefined;
    this.isLeader = false;
    await c?.resign().catch(() => {});
    log.info(`${this.self} paused: not campaigning`);
  }

  async resume(): Promise<void> {
    if (!this.paused || !this.campaign_) return;
    this.paused = false;
    this.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.campaign?.resign().catch(() => {});
    this.campaign = undefined;
  }
}
