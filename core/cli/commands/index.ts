import type { CommandDef } from "citty";

const lazy =
  <M extends Record<string, unknown>>(load: () => Promise<M>, key: keyof M = "default") =>
  () =>
    load().then((m) => m[key] as CommandDef);

/** Subcommands, loaded lazily so `planet exec` never pays for the build code. */
export const commands: Record<string, () => Promise<CommandDef>> = {
  version: lazy(() => import("./version.ts")),
  build: lazy(() => import("./build.ts")),
  plugins: lazy(() => import("./plugins.ts")),
  start: lazy(() => import("./bubble.ts"), "startCmd"),
  stop: lazy(() => import("./bubble.ts"), "stopCmd"),
  exec: lazy(() => import("./bubble.ts"), "execCmd"),
  enter: lazy(() => import("./bubble.ts"), "enterCmd"),
  "dev-host": lazy(() => import("./dev-host.ts")),
  secrets: lazy(() => import("./secrets.ts")),
  token: lazy(() => import("./token.ts")),
  agent: lazy(() => import("./agent.ts"), "agentCmd"),
  status: lazy(() => import("./status.ts"), "statusCmd"),
  leader: lazy(() => import("./status.ts"), "leaderCmd"),
  test: lazy(() => import("./test.ts")),
  manifests: lazy(() => import("./manifests.ts")),
  charts: lazy(() => import("./charts.ts")),
  images: lazy(() => import("./images.ts")),
  kv: lazy(() => import("./kv.ts")),
  "join-check": lazy(() => import("./join-check.ts")),
  install: lazy(() => import("./upgrade.ts"), "installCmd"),
  upgrade: lazy(() => import("./upgrade.ts"), "upgradeCmd"),
  etcd: lazy(() => import("./etcd.ts")),
  backup: lazy(() => import("./backup.ts"), "backupCmd"),
  restore: lazy(() => import("./backup.ts"), "restoreCmd"),
  leave: lazy(() => import("./leave.ts"), "leaveCmd"),
  remove: lazy(() => import("./leave.ts"), "removeCmd"),
};
