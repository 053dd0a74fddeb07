import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { availableControllers, cgroupMode, cgroupRoots, memoryInUse, removeCgroupTree } from "./cgroups.ts";

const base = mkdtempSync(join(tmpdir(), "planet-cgroups-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("cgroups on v1 and v2 hosts (layouts built in a temp dir)", () => {
  test("this host's mode is what the filesystem type says", () => {
    expect(["v1", "v2"]).toContain(cgroupMode());
    expect(cgroupMode(base)).toBe("v1"); // a plain directory is no cgroup2 mount
  });

  test("v2: one tree; a crashed bubble's nested cgroups are removed deepest first", () => {
    const v2 = join(base, "v2");
    mkdirSync(join(v2, "planet-x", "system.slice", "kubelet.service"), { recursive: true });
    mkdirSync(join(v2, "planet-y"), { recursive: true });
    expect(cgroupRoots("v2", v2)).toEqual([v2]);
    expect(removeCgroupTree("planet-x", "v2", v2)).toEqual([]);
    expect(existsSync(join(v2, "planet-x"))).toBe(false);
    expect(existsSync(join(v2, "planet-y"))).toBe(true);
  });

  test("v1 (and hybrid): the bubble's cgroup in every controller's hierarchy, files at the top ignored", () => {
    const v1 = join(base, "v1");
    for (const c of ["memory", "cpu,cpuacct", "unified"]) mkdirSync(join(v1, c, "planet-x", "sub"), { recursive: true });
    writeFileSync(join(v1, "not-a-hierarchy"), "");
    expect(cgroupRoots("v1", v1).sort()).toEqual([join(v1, "cpu,cpuacct"), join(v1, "memory"), join(v1, "unified")]);
    expect(removeCgroupTree("planet-x", "v1", v1)).toEqual([]);
    for (const c of ["memory", "cpu,cpuacct", "unified"]) expect(existsSync(join(v1, c, "planet-x"))).toBe(false);
  });

  test("what cannot be removed is reported, not thrown", () => {
    const v2 = join(base, "busy");
    mkdirSync(join(v2, "planet-z"), { recursive: true });
    writeFileSync(join(v2, "planet-z", "cgroup.procs"), "123\n"); // a directory that will not rmdir
    expect(removeCgroupTree("planet-z", "v2", v2)).toEqual([join(v2, "planet-z")]);
  });

  test("controllers and memory read the way each mode writes them", () => {
    const v2 = join(base, "mem2");
    mkdirSync(join(v2, "b"), { recursive: true });
    writeFileSync(join(v2, "cgroup.controllers"), "cpuset cpu io memory pids\n");
    writeFileSync(join(v2, "b", "memory.current"), String(300 << 20));
    writeFileSync(join(v2, "b", "memory.stat"), `anon 1\ninactive_file ${100 << 20}\n`);
    expect(availableControllers("v2", v2)).toContain("memory");
    expect(memoryInUse("b", "v2", v2)).toBe(200 << 20);
    const v1 = join(base, "mem1");
    mkdirSync(join(v1, "memory", "b"), { recursive: true });
    writeFileSync(join(v1, "memory", "b", "memory.usage_in_bytes"), String(300 << 20));
    writeFileSync(join(v1, "memory", "b", "memory.stat"), `total_inactive_file ${50 << 20}\n`);
    expect(memoryInUse("b", "v1", v1)).toBe(250 << 20);
  });
});
