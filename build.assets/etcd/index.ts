import { defineAsset } from "../../core/image/assets.ts";

/** etcd at the minor Kubernetes 1.37 is built against (its go.mod requires the 3.7 client). */
export default defineAsset({
  name: "etcd",
  version: "3.7.3",
  description: "etcd server, etcdctl, etcdutl",
  source: {
    kind: "gomod",
    module: "go.etcd.io/etcd/server/v3",
    version: "v3.7.3",
    with: ["go.etcd.io/etcd/etcdctl/v3", "go.etcd.io/etcd/etcdutl/v3"],
    ldflags: ["-X go.etcd.io/etcd/api/v3/version.GitSHA=${commit}"],
    binaries: {
      etcd: "go.etcd.io/etcd/server/v3",
      etcdctl: "go.etcd.io/etcd/etcdctl/v3",
      etcdutl: "go.etcd.io/etcd/etcdutl/v3",
    },
  },
  files: { etcd: "/usr/bin/etcd", etcdctl: "/usr/bin/etcdctl", etcdutl: "/usr/bin/etcdutl" },
});
