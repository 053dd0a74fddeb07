import { defineAsset } from "../../core/image/assets.ts";

/**
 * runc for containerd's shim: cgo with libseccomp (Debian's libseccomp-dev), without upstream's
 * default `libpathrs` tag (a Rust library Debian 12 does not package).
 */
export default defineAsset({
  name: "runc",
  version: "1.5.2",
  description: "runc (OCI runtime) with seccomp",
  source: {
    kind: "gomod",
    module: "github.com/opencontainers/runc",
    version: "v1.5.2",
    cgo: true,
    pkgConfig: ["libseccomp"],
    tags: ["seccomp", "urfave_cli_no_docs"],
    ldflags: ["-X main.gitCommit=${commit}"],
    binaries: { runc: "github.com/opencontainers/runc" },
  },
  files: { runc: "/usr/sbin/runc" },
});
