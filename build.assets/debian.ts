import { defineAsset } from "../core/build/assets.ts";

/*
 * Debian binary packages at pinned versions (bookworm). Each is fetched with `apt-get download`,
 * verified against its sha256 and installed into the base rootfs by mmdebstrap, which pulls its
 * dependencies from the same archive. `files` names the package files the manifest tracks.
 * sha256 values come from `apt-cache show <package>=<version>`.
 */

export const etcdServer = defineAsset({
  name: "etcd-server",
  version: "3.4.23",
  source: {
    kind: "deb",
    package: "etcd-server",
    version: "3.4.23-4+b4",
    sha256: "3a9445d4560ad6de1c375756b2a17d97713df44cbd20a658c871fe108af7ef5d",
  },
  files: { "usr/bin/etcd": "/usr/bin/etcd" },
});

export const etcdClient = defineAsset({
  name: "etcd-client",
  version: "3.4.23",
  source: {
    kind: "deb",
    package: "etcd-client",
    version: "3.4.23-4+b4",
    sha256: "db3a484d5d924b50bf71f459ee544ecd7b11c25dc2f6becc0c50352d67299cc8",
  },
  files: { "usr/bin/etcdctl": "/usr/bin/etcdctl" },
});

export const containerd = defineAsset({
  name: "containerd",
  version: "1.6.20",
  source: {
    kind: "deb",
    package: "containerd",
    version: "1.6.20~ds1-1+deb12u3",
    sha256: "8669d264eeb0fcdb4a0b1ba436ab88ec5dafde4a66e1278ec279d830db4c2216",
  },
  files: { "usr/bin/containerd": "/usr/bin/containerd", "usr/bin/ctr": "/usr/bin/ctr" },
});

export const runc = defineAsset({
  name: "runc",
  version: "1.1.5",
  source: {
    kind: "deb",
    package: "runc",
    version: "1.1.5+ds1-1+deb12u1",
    sha256: "a00351f8c0318de0b424ecf5cd0fdb69880a89f3511cae4f6fff7de3e57881c5",
  },
  files: { "usr/sbin/runc": "/usr/sbin/runc" },
});

export const cniPlugins = defineAsset({
  name: "cni-plugins",
  version: "1.1.1",
  source: {
    kind: "deb",
    package: "containernetworking-plugins",
    version: "1.1.1+ds1-3+b5",
    sha256: "4cac8143474d1249b19f7b0e80b8d0daaa6dfdaa8bd514bc468d38d4a108099f",
  },
  files: {
    "usr/lib/cni/bridge": "/usr/lib/cni/bridge",
    "usr/lib/cni/host-local": "/usr/lib/cni/host-local",
    "usr/lib/cni/portmap": "/usr/lib/cni/portmap",
    "usr/lib/cni/loopback": "/usr/lib/cni/loopback",
  },
});

export const kubectl = defineAsset({
  name: "kubectl",
  version: "1.20.2",
  source: {
    kind: "deb",
    package: "kubernetes-client",
    version: "1.20.5+really1.20.2-1.1+deb12u1",
    sha256: "087c42dc26c847740043cdaa8b16db666be5591a1da957f822922aa1b677494e",
  },
  files: { "usr/bin/kubectl": "/usr/bin/kubectl" },
});

/** Only its static binary is used: the bundled `busybox` pod image is made from it. */
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

export const serf = defineAsset({
  name: "serf",
  version: "0.9.4",
  source: {
    kind: "deb",
    package: "serf",
    version: "0.9.4~ds1-1+b13",
    sha256: "39377539a3c237e00f3b2fb82c9b713f83e610b7a6baec6d2e6e909bc2bde790",
  },
  files: { "usr/bin/serf": "/usr/bin/serf" },
});

export const dockerRegistry = defineAsset({
  name: "docker-registry",
  version: "2.8.2",
  source: {
    kind: "deb",
    package: "docker-registry",
    version: "2.8.2+ds1-1",
    sha256: "a9bd06c0e006854608f8469b4371743f40604ad90975532bb3b7ceeb72fe2913",
  },
  files: { "usr/bin/docker-registry": "/usr/bin/docker-registry" },
});
