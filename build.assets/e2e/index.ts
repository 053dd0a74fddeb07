import { defineAsset } from "../../core/image/assets.ts";
// The same version stamp as the cluster's binaries (e2e.test --version reports it).
import { stamp } from "../kubernetes/index.ts";

/** The agnhost version v1.37's e2e.test asks for (test/utils/image/manifest.go). */
export const AGNHOST_VERSION = "2.66.1";

/**
 * The conformance bundle's binaries, from the same Kubernetes module and version as the cluster
 * (`kubernetes` recipe): `e2e.test` as upstream builds it (`go test -c ./test/e2e`, tags
 * selinux,notest,grpcnotrace), the `ginkgo` CLI at the version Kubernetes pins, and the test images'
 * programs — agnhost, nonewprivs' nnp, the sample-apiserver (staging module k8s.io/sample-apiserver
 * at the release's v0.N.P) — plus the kitten/nautilus pictures (e2e-files.sh).
 */
export default defineAsset({
  name: "e2e",
  version: "1.37.2",
  description: "e2e.test, ginkgo, and the conformance images' programs (agnhost, nnp, sample-apiserver)",
  source: {
    kind: "gomod",
    module: "k8s.io/kubernetes",
    version: "v1.37.2",
    tags: ["selinux", "notest", "grpcnotrace"],
    binaries: {
      "e2e.test": { package: "k8s.io/kubernetes/test/e2e", test: true, ldflags: stamp },
      ginkgo: "github.com/onsi/ginkgo/v2/ginkgo",
      agnhost: { package: "k8s.io/kubernetes/test/images/agnhost", ldflags: [`-X main.Version=${AGNHOST_VERSION}`] },
      nnp: "k8s.io/kubernetes/test/images/nonewprivs",
      "sample-apiserver": { package: "k8s.io/sample-apiserver", ldflags: stamp },
    },
    script: "e2e-files.sh",
  },
  files: { "e2e.test": "/bin/e2e.test", ginkgo: "/bin/ginkgo" },
});
