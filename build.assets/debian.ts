import { defineAsset } from "../core/image/assets.ts";

/*
 * Debian binary packages at pinned versions (bookworm), for what is not built from a Go module. Each is fetched with `apt-get download`,
 * verified against its sha256 and installed into the base rootfs by mmdebstrap, which pulls its
 * dependencies from the same archive. `files` names the package files the manifest tracks.
 * sha256 values come from `apt-cache show <package>=<version>`.
 */

/**
 * The in-tree example of the `deb` kind (no plugin installs it since the busybox pod image is built
 * from Debian's dynamic busybox); kept so the kind stays exercised (bump.test, a plugin's `assets`).
 */
export const busyboxStatic = defineAsset({
  name: "busybox-static",
  version: "1.35.0",
  source: {
    kind: "deb",
    package: "busybox-static",
    version: "1:1.35.0-4+deb12u1+b1",
    sha256: "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
  },
});
