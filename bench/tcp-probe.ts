#!/usr/bin/env bun
/**
 * TCP between two network namespaces, for bench/cluster.ts: `serve PORT` echoes what it reads back
 * on connections that send a 1-byte request and sinks the rest; `client IP PORT [MiB]` prints JSON
 * with the request/response round trip (p50/p99 of 2000, one connection) and the throughput of
 * sending MiB (default 256) over one connection. Run inside a pod's namespace with nsenter, or a
 * test host's with `ip netns exec`.
 */
import { connect, createServer } from "node:net";

const [mode, a = "", b = "", c = "256"] = process.argv.slice(2);

if (mode === "serve") {
  // First byte says what the connection is for: "e" echo each byte back, "s" sink until close.
  createServer((sock) => {
    let kind = "";
    let received = 0;
    sock.on("data", (buf) => {
      if (!kind) kind = String.fromCharCode((buf as Buffer)[0] ?? 0);
      if (kind === "e") sock.write(buf);
      else received += (buf as Buffer).length;
    });
    sock.on("end", () => (kind === "s" ? sock.end(`${received}\n`) : sock.end()));
    sock.on("error", () => {});
  }).listen(Number(a), "0.0.0.0");
} else if (mode === "client") {
  const host = a;
  const port = Number(b);
  const mib = Number(c);
  const rtt = await new Promise<number[]>((resolve, reject) => {
    const times: number[] = [];
    const sock = connect(port, host, () => {
      let t0 = performance.now();
      sock.setNoDelay(true);
      sock.on("data", () => {
        times.push(performance.now() - t0);
        if (times.length === 2000) {
          sock.end();
          resolve(times);
          return;
        }
        t0 = performance.now();
        sock.write("e");
      });
      sock.write("e");
    });
    sock.on("error", reject);
  });
  const sorted = rtt.sort((x, y) => x - y);
  const pct = (p: number) => Number((sorted[Math.floor((sorted.length - 1) * p)] ?? 0).toFixed(3));
  const mbps = await new Promise<number>((resolve, reject) => {
    const chunk = Buffer.alloc(1024 * 1024, 1);
    chunk[0] = "s".charCodeAt(0);
    const sock = connect(port, host, async () => {
      const t0 = performance.now();
      for (let i = 0; i < mib; i++) if (!sock.write(chunk)) await new Promise((r) => sock.once("drain", r));
      sock.end();
      sock.on("data", () => resolve((mib * 8 * 1.048576) / ((performance.now() - t0) / 1000)));
    });
    sock.on("error", reject);
  });
  process.stdout.write(`${JSON.stringify({ rttP50: pct(0.5), rttP99: pct(0.99), mbps: Math.round(mbps) })}\n`);
} else {
  process.stderr.write("usage: tcp-probe.ts serve PORT | client IP PORT [MiB]\n");
  process.exit(2);
}
