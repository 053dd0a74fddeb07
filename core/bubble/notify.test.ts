import { describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listenNotify, NotifyParser } from "./notify.ts";

const hex = (s: string) => [...Buffer.from(s)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
const dump = (s: string) => `> 2026/11/24 07:52:01.000054791  length=${Buffer.byteLength(s)} from=0 to=9\n ${hex(s)}\n`;

describe("READY=1 from systemd", () => {
  test("messages without a terminator, two in one read, one split across reads: each stays itself", () => {
    const p = new NotifyParser();
    const both = dump("STATUS=Starting") + dump("READY=1\nSTATUS=Ready");
    expect(p.feed(both)).toEqual([{ STATUS: "Starting" }, { READY: "1", STATUS: "Ready" }]);
    const third = dump("STOPPING=1");
    expect(p.feed(third.slice(0, 40))).toEqual([]);
    expect(p.feed(third.slice(40))).toEqual([{ STOPPING: "1" }]);
  });

  test.if(Bun.which("socat") !== null && Bun.which("setpriv") !== null)(
    "the real listener, fed by a datagram sender",
    async () => {
      const sock = join(tmpdir(), `planet-notify-${process.pid}.sock`);
      const got: Record<string, string>[] = [];
      const child = listenNotify(sock, (f) => got.push(f));
      try {
        for (let i = 0; i < 50 && !(await Bun.file(sock).exists()); i++) await Bun.sleep(20);
        for (const msg of ["STATUS=a", "READY=1\nSTATUS=b"])
          Bun.spawnSync(["socat", "-u", "STDIN", `UNIX-SENDTO:${sock}`], { stdin: new Blob([msg]) });
        for (let i = 0; i < 50 && got.length < 2; i++) await Bun.sleep(20);
        expect(got).toEqual([{ STATUS: "a" }, { READY: "1", STATUS: "b" }]);
      } finally {
        child.kill();
        rmSync(sock, { force: true });
      }
    },
  );
});
