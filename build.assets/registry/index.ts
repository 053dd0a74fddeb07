import { defineAsset } from "../../core/image/assets.ts";

const pkg = "github.com/distribution/distribution/v3";

/** The CNCF distribution registry v3 (what `docker-registry` was). */
export default defineAsset({
  name: "registry",
  version: "3.1.2",
  description: "distribution registry",
  source: {
    kind: "gomod",
    module: pkg,
    version: "v3.1.2",
    ldflags: [`-X ${pkg}/version.version=\${version}`, `-X ${pkg}/version.revision=\${commit}`],
    binaries: { registry: `${pkg}/cmd/registry` },
  },
  files: { registry: "/usr/bin/registry" },
});
