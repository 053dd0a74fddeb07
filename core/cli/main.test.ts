import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const CLI = [process.execPath, join(import.meta.dir, "main.ts")];
const planet = (...args: string[]) => {
  const r = Bun.spawnSync([...CLI, ...args], { stdin: "ignore" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString().trim() };
};

describe("the CLI's boundaries: a typo is an error, never a silent success", () => {
  test("an unknown command exits 1 with one line", () => {
    const r = planet("bogus");
    expect(r.code).toBe(1);
    expect(r.err).toBe("USAGE: Unknown command bogus (see planet --help)");
    // With --help too, at the top and under a command with subcommands; a known one still shows its help.
    expect(planet("bogus", "--help")).toMatchObject({ code: 1, err: "USAGE: Unknown command bogus (see planet --help)" });
    expect(planet("secrets", "bogus", "-h")).toMatchObject({ code: 1, err: "USAGE: Unknown command bogus (see planet --help)" });
    expect(planet("secrets", "init", "--help").code).toBe(0);
  });

  test("plugins show of a plugin the target lacks names the ones it has", () => {
    const r = planet("plugins", "show", "nope");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^UNKNOWN_PLUGIN: plugin nope is not in target dev; its plugins: secrets, .*kube-master.*, storage$/);
  });

  test("an unknown flag exits 1 naming the flag and the command", () => {
    expect(planet("version", "--bogus")).toMatchObject({
      code: 1,
      err: "USAGE: unknown flag --bogus for planet version (see --help)",
    });
    expect(planet("secrets", "init", "--domian=x", "/tmp/nowhere").err).toBe(
      "USAGE: unknown flag --domian for planet secrets init (see --help)",
    );
  });

  test("declared flags, aliases, --no-<boolean>, values that look like flags and exec's own flags all pass", () => {
    expect(planet("version", "--json", "--debug").code).toBe(0);
    expect(planet("version", "--no-json").code).toBe(0);
    // A flag's value may start with dashes; exec passes everything after its command through.
    expect(planet("start", "--kubelet-options", "--v=2", "--rootfs", "/nonexistent").err).toStartWith("NO_ROOTFS");
    expect(planet("exec", "-t", "--rootfs", "/nonexistent", "ls", "--whatever").err).toStartWith("NOT_RUNNING");
  });
});

describe("exec's command line", () => {
  test("the command starts at the first positional; a -- before it ends planet's flags, one after it is the command's", async () => {
    const { commandAfterFlags } = await import("./commands/bubble.ts");
    expect(
      commandAfterFlags(["--rootfs", "/r", "kubectl", "create", "deployment", "x", "--image=y", "--", "sleep", "1"]),
    ).toEqual(["kubectl", "create", "deployment", "x", "--image=y", "--", "sleep", "1"]);
    expect(commandAfterFlags(["-t", "--", "--odd-binary", "a"])).toEqual(["--odd-binary", "a"]);
    expect(commandAfterFlags(["--rootfs", "/r"])).toEqual([]);
  });
});

describe("start's command line, kept for planet upgrade", () => {
  test("every flag but --rootfs (either form) and --detach, values as given", async () => {
    const { restartArgs } = await import("./commands/bubble.ts");
    expect(
      restartArgs(["--rootfs", "/r", "--netns", "h1", "--detach", "--rootfs=/s", "--kubelet-options", "--v=2", "--role", "node"]),
    ).toEqual(["--netns", "h1", "--kubelet-options", "--v=2", "--role", "node"]);
  });

  test("upgrade and install refuse bad input with one line", () => {
    expect(planet("upgrade", "--plan", "/nonexistent.json").err).toStartWith("BAD_FLAG: --plan /nonexistent.json does not exist");
    expect(planet("upgrade", "--resume", "/some/image").err).toStartWith("BAD_FLAG: --resume carries on the journaled upgrade");
    expect(planet("upgrade", "--plan", "/x.json", "--concurrency", "0").err).toStartWith("BAD_FLAG: --concurrency 0");
    expect(planet("install", "/nonexistent", "--data-dir", "/tmp/planet-none").err).toStartWith("NOT_AN_IMAGE");
  });
});
