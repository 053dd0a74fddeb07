import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";

/**
 * Splits socat's hex dump (`-x`) of a datagram socket into datagrams: each is a header line
 * `> <date> <time>  length=N from=… to=…` and then N bytes as hex pairs. sd_notify messages carry
 * no terminator, and two of them can arrive in one read, so the datagram's own length is what
 * separates them — never a newline.
 */
export class NotifyParser {
  private pending = "";
  private want = -1;
  private bytes: number[] = [];

  /** Feeds more of socat's stderr; returns each complete datagram as its KEY=VALUE fields. */
  feed(text: string): Record<string, string>[] {
    const out: Record<string, string>[] = [];
    this.pending += text;
    const lines = this.pending.split("\n");
    this.pending = lines.pop() ?? "";
    for (const line of lines) {
      const head = /^> \S+ \S+\s+length=(\d+)/.exec(line);
      if (head) {
        this.want = Number(head[1]);
        this.bytes = [];
      } else if (this.want >= 0)
        for (const hex of line.trim().split(/\s+/).filter(Boolean)) this.bytes.push(Number.parseInt(hex, 16));
      if (this.want >= 0 && this.bytes.length >= this.want) {
        out.push(fields(Buffer.from(this.bytes.slice(0, this.want)).toString("utf8")));
        this.want = -1;
        this.bytes = [];
      }
    }
    return out;
  }
}

function fields(message: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of message.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** Listens on the host end of systemd's NOTIFY_SOCKET (through runc's proxy) with socat. */
export function listenNotify(path: string, onMessage: (fields: Record<string, string>) => void): ChildProcess {
  rmSync(path, { force: true });
  // pdeathsig: if `planet start` is killed -9, the listener goes with it instead of lingering.
  const child = spawn("setpriv", ["--pdeathsig", "KILL", "socat", "-u", "-x", `UNIX-RECV:${path}`, "/dev/null"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const parser = new NotifyParser();
  child.stderr?.on("data", (chunk: Buffer) => {
    for (const msg of parser.feed(chunk.toString())) onMessage(msg);
  });
  return child;
}
