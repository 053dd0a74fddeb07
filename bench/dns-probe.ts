#!/usr/bin/env bun
/**
 * Sends DNS queries one at a time over UDP and prints latency percentiles as JSON. Run inside a pod's
 * network namespace (`nsenter -t <pod pid> -n bun bench/dns-probe.ts SERVER COUNT`) by bench/kube.ts.
 * `cached`: the same name every time; `uncached`: a new name each time (the kubernetes plugin answers
 * NXDOMAIN, nothing in the cache).
 */
const [server = "10.100.0.10", countArg = "1000"] = process.argv.slice(2);
const count = Number(countArg);

function query(id: number, name: string): Uint8Array {
  const labels = name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  return new Uint8Array([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, 1, 0, 1]);
}

const pending = new Map<number, (rcode: number) => void>();
const socket = await Bun.udpSocket({
  socket: {
    data(_s, buf) {
      const id = (buf[0] ?? 0) * 256 + (buf[1] ?? 0);
      pending.get(id)?.((buf[3] ?? 0) & 15);
      pending.delete(id);
    },
  },
});

async function one(id: number, name: string): Promise<{ ms: number; rcode: number }> {
  const t0 = performance.now();
  const rcode = await new Promise<number>((resolve, reject) => {
    pending.set(id, resolve);
    socket.send(query(id, name), 53, server);
    setTimeout(() => reject(new Error(`no answer for ${name} within 2 s`)), 2000);
  });
  return { ms: performance.now() - t0, rcode };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

const result: Record<string, { p50: number; p99: number; errors: number }> = {};
let id = 1;
for (const [kind, name] of [
  ["cached", () => "kubernetes.default.svc.cluster.local"],
  ["uncached", (i: number) => `probe-${i}-${Date.now()}.default.svc.cluster.local`],
] as const) {
  const times: number[] = [];
  let errors = 0;
  for (let i = 0; i < count; i++) {
    const r = await one(id++ % 65535, name(i)).catch(() => null);
    if (!r) errors++;
    else times.push(r.ms);
  }
  result[kind] = { p50: pct(times, 50), p99: pct(times, 99), errors };
}
socket.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
