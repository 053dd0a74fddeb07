import { AGNHOST_VERSION } from "../../build.assets/e2e/index.ts";
import { definePlugin, type ImageDef } from "../../core/plugin.ts";

/** Where e2e.test v1.37 looks for its images (test/utils/image/manifest.go), and their tags. */
const E2E = "registry.k8s.io/e2e-test-images";
const DIR = "/images";

/** Accounts upstream's images have: root, agnhost's user and group defined in the image, nobody. */
const ACCOUNTS = {
  "/etc/passwd": [
    "root:x:0:0:root:/root:/bin/sh",
    "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin",
    "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    "",
  ].join("\n"),
  "/etc/group": [
    "root:x:0:",
    "www-data:x:33:",
    "user-defined-in-image:x:1000:",
    "group-defined-in-image:x:50000:user-defined-in-image",
    "nogroup:x:65534:",
    "",
  ].join("\n"),
  "/etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n",
};

/** Links Debian's maintainer scripts would make (update-alternatives), which an extracted userland lacks. */
const ALTERNATIVES = { "/bin/nc": "nc.openbsd", "/bin/netcat": "nc.openbsd", "/usr/bin/awk": "mawk" };

const BUSYBOX_APPLETS = "/usr/libexec/busybox";

/** agnhost's userland as its upstream Dockerfile installs it (alpine's packages, from Debian here). */
const AGNHOST_USERLAND = [
  "bash",
  "bind9-dnsutils",
  "busybox",
  "coreutils",
  "curl",
  "dash",
  "findutils",
  "grep",
  "hostname",
  "iperf",
  "iproute2",
  "libc-bin",
  "mawk",
  "netcat-openbsd",
  "procps",
  "sed",
  "socat",
  "util-linux",
];

function agnhost(ref: string, extra: Partial<ImageDef> = {}): ImageDef {
  return {
    ref,
    debian: AGNHOST_USERLAND,
    files: {
      "e2e:agnhost": "/agnhost",
      "e2e:localhost.crt": "/localhost.crt",
      "e2e:localhost.key": "/localhost.key",
      "coredns:coredns": "/coredns",
      ...extra.files,
    },
    write: { ...ACCOUNTS, "/uploads/.keep": "", ...extra.write },
    links: { "/agnhost-2": "agnhost", "/usr/local/bin/iperf": "/usr/bin/iperf", ...ALTERNATIVES },
    // Alpine's busybox applets (wget, ping…) behind the real tools, as upstream's image has them.
    run: [
      ["mkdir", "-p", BUSYBOX_APPLETS],
      ["/bin/busybox", "--install", "-s", BUSYBOX_APPLETS],
    ],
    env: { PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${BUSYBOX_APPLETS}` },
    entrypoint: ["/agnhost"],
    cmd: extra.cmd ?? ["pause"],
    ports: [80, 8080, 8081, 9376, 5000],
    path: extra.path ?? `${DIR}/agnhost`,
    ...(extra.aliases ? { aliases: extra.aliases } : {}),
  };
}

function pet(name: "kitten" | "nautilus"): ImageDef {
  return agnhost(`${E2E}/${name}:1.8`, {
    files: { [`e2e:${name}/${name}.jpg`]: `/${name}.jpg`, [`e2e:${name}/data.json`]: "/data.json" },
    cmd: ["test-webserver"],
    path: `${DIR}/${name}`,
  });
}

/**
 * The images the `[Conformance]` specs of e2e.test v1.37 run, built here from their sources: the
 * test programs from the Kubernetes module (e2e asset), their userland from Debian. Not part of the
 * production images: `planet build --target conformance` makes a bundle, and `planet test
 * --conformance` imports its images into a running cluster's registry under these upstream names.
 */
export default definePlugin({
  name: "conformance",
  description: "the upstream conformance suite: e2e.test, ginkgo and the images its [Conformance] specs run",
  roles: ["master"],
  assets: ["e2e", "kubernetes", "etcd", "coredns", "busybox"],
  images: [
    agnhost(`${E2E}/agnhost:${AGNHOST_VERSION}`, { aliases: [`${E2E}/agnhost:2.55`] }),
    pet("kitten"),
    pet("nautilus"),
    {
      ref: `${E2E}/busybox:1.37.0-2`,
      // busybox 1.37 built from its source as upstream's (see build.assets/busybox): its ash passes on
      // variables with invalid names (data-1), and its messages are the ones the specs expect.
      debian: ["libc6"],
      files: { "busybox:busybox": "/bin/busybox" },
      write: ACCOUNTS,
      run: [["/bin/busybox", "--install", "-s", "/bin"]],
      cmd: ["sh"],
      path: `${DIR}/busybox`,
    },
    {
      ref: `${E2E}/nginx:1.27.0-2`,
      aliases: [`${E2E}/nginx:1.28.0-2`],
      debian: ["nginx", "dash", "coreutils"],
      write: {
        ...ACCOUNTS,
        "/etc/nginx/nginx.conf": [
          "user www-data;",
          "worker_processes 1;",
          "pid /run/nginx.pid;",
          "error_log /dev/stderr;",
          "events { worker_connections 512; }",
          "http {",
          "  include /etc/nginx/mime.types;",
          "  access_log /dev/stdout;",
          "  client_body_temp_path /tmp/nginx-body;",
          "  proxy_temp_path /tmp/nginx-proxy;",
          "  fastcgi_temp_path /tmp/nginx-fastcgi;",
          "  uwsgi_temp_path /tmp/nginx-uwsgi;",
          "  scgi_temp_path /tmp/nginx-scgi;",
          "  server { listen 80; root /usr/share/nginx/html; index index.html; }",
          "}",
          "",
        ].join("\n"),
        "/usr/share/nginx/html/index.html": "<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n",
        "/tmp/.keep": "",
        // pid /run/nginx.pid: an extracted userland has no /run.
        "/run/.keep": "",
      },
      modes: { "/tmp": 0o1777 },
      cmd: ["nginx", "-g", "daemon off;"],
      ports: [80],
      path: `${DIR}/nginx`,
    },
    {
      ref: `${E2E}/glibc-dns-testing:2.1.1`,
      debian: ["bash", "bind9-dnsutils", "coreutils", "dash", "grep", "hostname", "libc-bin", "mawk", "sed"],
      files: { "coredns:coredns": "/coredns" },
      write: ACCOUNTS,
      links: { "/usr/bin/awk": "mawk" },
      cmd: ["bash"],
      path: `${DIR}/glibc-dns-testing`,
    },
    {
      ref: `${E2E}/nonewprivs:1.4`,
      files: { "e2e:nnp": "/usr/local/bin/nnp" },
      modes: { "/usr/local/bin/nnp": 0o4755 },
      cmd: ["nnp"],
      path: `${DIR}/nonewprivs`,
    },
    {
      ref: `${E2E}/sample-apiserver:1.29.2`,
      files: { "e2e:sample-apiserver": "/sample-apiserver" },
      write: { "/tmp/.keep": "" },
      modes: { "/tmp": 0o1777 },
      entrypoint: ["/sample-apiserver"],
      path: `${DIR}/sample-apiserver`,
    },
    {
      // etcd 3.7.3 from the cluster's own etcd recipe, under the tag e2e.test v1.37 asks for.
      ref: "registry.k8s.io/etcd:3.7.0-0",
      files: { "etcd:etcd": "/usr/local/bin/etcd", "etcd:etcdctl": "/usr/local/bin/etcdctl" },
      write: { "/tmp/.keep": "" },
      modes: { "/tmp": 0o1777 },
      ports: [2379, 2380],
      path: `${DIR}/etcd`,
    },
  ],
});
