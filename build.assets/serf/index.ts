import { defineAsset } from "../../core/image/assets.ts";

/** HashiCorp serf (gossip membership), stamped as upstream's GNUmakefile does. */
export default defineAsset({
  name: "serf",
  version: "0.10.4",
  description: "serf agent and CLI",
  source: {
    kind: "gomod",
    module: "github.com/hashicorp/serf",
    version: "v0.10.4",
    ldflags: [
      "-X github.com/hashicorp/serf/version.Version=${semver}",
      "-X github.com/hashicorp/serf/version.VersionPrerelease=",
      "-X github.com/hashicorp/serf/version.GitCommit=${commit}",
    ],
    binaries: { serf: "github.com/hashicorp/serf/cmd/serf" },
  },
  files: { serf: "/usr/bin/serf" },
});
