import { isIP } from "node:net";
import { logger } from "../log.ts";
import type { LeaderView } from "./api.ts";

const log = logger("agent:follow");
/** `name:ip` of a master, as the masters' agents list them. */
const MASTER = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*:[0-9.]+$/;

/**
 * Who leads, learned from the masters' agents instead of etcd: what a host without an etcd
 * credential (a node) does. Every `everyMs` it asks the masters' `GET /leader` (over mTLS, as a
 * node) in turn, starting with the last one that answered, and takes the first answer that names a
 * leader by IP. It never campaigns.
 */
export class LeaderFollower {
  leader: string | null = null;
  readonly isLeader = false;
  readonly paused = true;
  /** Whether the master that answered last reaches etcd. */
  etcdUp = false;
  error?: string;
  private timer?: ReturnType<typeof setTimeout>;
  private closed = false;
  private first = 0;

  /** The masters as the last answer named them (`name:ip`), empty until one does. */
  known: string[] = [];

  constructor(
    private masters: string[],
    private readonly ask: (master: string) => Promise<LeaderView>,
    private readonly onLeader?: (leader: string) => void,
    private readonly everyMs = 2000,
    /** Called when the masters' list changes (a master joined or left); only well-formed entries. */
    private readonly onMasters?: (masters: string[]) => void,
  ) {}

  /** Takes the masters a master's agent named: asked from now on, and handed to `onMasters`. */
  private learn(named: unknown): void {
    if (!Array.isArray(named)) return;
    const list = named.filter((m): m is string => typeof m === "string" && MASTER.test(m) && isIP(m.split(":")[1] ?? "") === 4);
    if (!list.length || list.join(",") === this.known.join(",")) return;
    this.known = list;
    const ips = list.map((m) => m.split(":")[1] as string);
    this.masters = ips;
    this.onMasters?.(list);
  }

  async start(): Promise<void> {
    await this.poll();
  }

  private async poll(): Promise<void> {
    if (this.closed) return;
    const leader = await this.currentLeader();
    if (leader !== this.leader) {
      this.leader = leader;
      if (leader) this.onLeader?.(leader);
    }
    if (!this.closed) this.timer = setTimeout(() => void this.poll(), this.everyMs);
  }

  /** Asks the masters now; null when none answers with a leader. */
  async currentLeader(): Promise<string | null> {
    const errors: string[] = [];
    for (let i = 0; i < this.masters.length; i++) {
      const at = (this.first + i) % this.masters.length;
      const master = this.masters[at] as string;
      try {
        const view = await this.ask(master);
        this.etcdUp = view.etcd === "up";
        this.learn(view.masters);
        if (typeof view.leader === "string" && isIP(view.leader)) {
          this.first = Math.max(0, this.masters.indexOf(master));
          this.error = undefined;
          return view.leader;
        }
        errors.push(`${master}: ${view.leader === null ? "no leader" : "a leader that is not an IP"}`);
      } catch (e) {
        errors.push(`${master}: ${(e as Error).message}`);
      }
    }
    if (this.error !== errors.join("; ")) log.debug(`no leader from the masters: ${errors.join("; ")}`);
    this.error = `no master named a leader (${errors.join("; ")})`;
    if (!errors.length) this.error = "no masters to ask";
    return null;
  }

  async pause(): Promise<void> {}
  async resume(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
