import { defineAsset } from "../../core/image/assets.ts";

/**
 * busybox built here from Debian's source package, for the e2e busybox image: upstream's code
 * without Debian's patches — one of them makes ash drop environment variables whose names are not
 * shell identifiers (`data-1`), which upstream's ash, and so upstream's image, passes on — configured
 * as Debian's dynamic busybox is (debian/config/pkg/deb).
 */
export default defineAsset({
  name: "busybox",
  version: "1.37.0",
  description: "busybox from its Debian source package, upstream's code, Debian's configuration",
  source: {
    kind: "debsrc",
    package: "busybox",
    version: "1.37.0-6",
    sha256: "3ba2c096eef0c391f744f093edbe0df7b21ab118652487cc076818e92cb57e8e",
    skipPatches: true,
    script: "build.sh",
  },
  files: { busybox: "/bin/busybox" },
});
