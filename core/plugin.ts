/**
 * The plugin contract. A plugin is data: a folder under `plugins/` (or anywhere, for your own)
 * holding `index.ts` that default-exports `definePlugin({...})`, its real systemd unit files beside
 * it, and an optional `files/` overlay. Core never names a component; everything a component needs
 * is declared here and lands in the image, its manifest, and the agent's checks.
 */

/** Where a plugin's units are enabled when the bubble starts (`planet start --role`). */
export type Role = "master" | "node";
export const ROLES: readonly Role[] = ["master", "node"];

/** What a certificate is for; decides key usage and extended key usage. */
export type CertUsage = "server" | "client" | "peer" | "ca";

/**
 * A certificate the plugin needs. `planet secrets init` issues the union of all plugins' requests;
 * no plugin makes its own keys. Files land as `<name>.cert` / `<name>.key` in the secrets dir,
 * mounted read-only at `/var/state` inside the bubble.
 */
export interface CertificateRequest {
  /** File base name, unique in the image, e.g. `apiserver` → `apiserver.cert`, `apiserver.key`. */
  name: string;
  /** Subject common name, e.g. `kube-apiserver` or `system:node:$NODE_NAME`. */
  cn: string;
  /** Subject organisations (Kubernetes groups), e.g. `["system:masters"]`. */
  org?: string[];
  /**
   * Subject alternative names. Placeholders: `$DOMAIN`, `$SERVICE_IP` (first IP of the service
   * subnet), `$PUBLIC_IP`, `$HOSTS` (every `--host`), `$IPS` (every `--ip`). Plain entries are DNS
   * names unless they parse as IP addresses.
   */
  sans?: string[];
  /** e.g. `["server", "client"]`. `ca` makes a CA (for a second CA such as `front-proxy-ca`). */
  usage: CertUsage[];
  /** Name of the issuing CA request; default `root` (the cluster CA). */
  issuer?: string;
  /** Also write `<name>.kubeconfig` using this cert, pointing at this server URL. */
  kubeconfig?: string;
  /**
   * For a CA: hosts with one of these roles get its key in their secrets (`planet secrets host`),
   * e.g. the signer of the controller-manager's CSRs on masters. Other CA keys never leave the
   * directory `planet secrets init` wrote.
   */
  keyRoles?: Role[];
  /**
   * Issued only to hosts with one of these roles (default: the plugin's), e.g. a writer that only
   * masters run. The cluster directory `planet secrets init` writes holds every request.
   */
  roles?: Role[];
}

/** Whether a host with these roles is issued the request (a certificate's own `roles`, when it names them). */
export function issuedTo(c: CertRequest, roles: readonly Role[]): boolean {
  return !("cn" in c) || !c.roles || c.roles.some((r) => roles.includes(r));
}

/** An RSA key pair, `<name>.key` / `<name>.pub`, shared by the hosts that need it (service accounts). */
export interface KeyPairRequest {
  name: string;
  keyPair: true;
}

/** `<name>.key` holding this many random bytes, base64, shared by every host (serf's gossip key). */
export interface RandomSecretRequest {
  name: string;
  randomBytes: number;
}

/** `<name>.pem`: these CAs' certificates in one file (a trust bundle). */
export interface BundleRequest {
  name: string;
  bundle: string[];
}

/** What a plugin asks `planet secrets` for: a certificate, a key pair, a random secret or a CA bundle. */
export type CertRequest = CertificateRequest | KeyPairRequest | RandomSecretRequest | BundleRequest;

/** A certificate request (not a key pair, random secret or bundle). */
export const isCertificate = (r: CertRequest): r is CertificateRequest => "usage" in r;
/** A certificate request for a CA. */
export const isCA = (r: CertRequest): r is CertificateRequest => isCertificate(r) && r.usage.includes("ca");

/** How bad it is when a check fails. */
export type Severity = "critical" | "warning";

interface CheckBase {
  /** Unique in the image, kebab-case, e.g. `etcd-healthz`. */
  name: string;
  /** Default `critical`. */
  severity?: Severity;
  /** Per-attempt timeout in ms (default 5000). */
  timeoutMs?: number;
  /** Only run on these roles (default: the plugin's roles). */
  roles?: Role[];
}

/** GET a URL; healthy on 2xx (and `expect` in the body when given). */
export interface HttpCheck extends CheckBase {
  /** e.g. `https://127.0.0.1:6443/healthz`. */
  http: string;
  /** Name of a cert request used as the client certificate for https (CA is `root`). */
  tls?: string;
  /** Substring the body must contain, e.g. `ok`. */
  expect?: string;
}
/** Open a TCP connection to `host:port`. */
export interface TcpCheck extends CheckBase {
  tcp: string;
}
/** A systemd unit must be active. */
export interface UnitCheck extends CheckBase {
  unit: string;
}
/** A command inside the bubble must exit 0. */
export interface CommandCheck extends CheckBase {
  command: string[];
}
/** Checks are data: the agent runs them, `planet status` reports them. */
export type CheckDef = HttpCheck | TcpCheck | UnitCheck | CommandCheck;

/** A unit shipped by the plugin; a bare string means enabled for the plugin's roles. */
export interface UnitDef {
  /** File name beside `index.ts`, e.g. `etcd.service` or `secrets-renew.timer`. */
  name: string;
  /** Enable for these roles instead of the plugin's. */
  roles?: Role[];
  /** `false` ships the unit without enabling it (started by another unit or by hand). */
  enabled?: boolean;
}

/**
 * An OCI image the build assembles from asset files (and, when it names `debian` packages, their
 * Debian userland) and bundles into the rootfs as an OCI layout folder. Bundled images are pushed into
 * the cluster's registry at boot and run under their upstream names.
 */
export interface ImageDef {
  /** Full reference it is tagged with, e.g. `registry.k8s.io/pause:3.10.2`. */
  ref: string;
  /** More references for the same image, e.g. `docker.io/library/busybox:1.35`. */
  aliases?: string[];
  /** Debian packages (with their dependencies) unpacked as the image's userland, e.g. `["busybox"]`. */
  debian?: string[];
  /** Files from assets: `{ "asset-name:path/in/asset": "/path/in/image" }`. */
  files?: Record<string, string>;
  /** Files written with this text: `{ "/etc/nginx/nginx.conf": "…" }` (a `#!` text is made executable). */
  write?: Record<string, string>;
  /** Symlinks in the image: `{ "/bin/sh": "busybox" }`. */
  links?: Record<string, string>;
  /** Permission bits to set, e.g. `{ "/usr/local/bin/nnp": 0o4755, "/tmp": 0o1777 }`. */
  modes?: Record<string, number>;
  /** Commands run in the finished image tree by chroot, without network, like a Dockerfile's RUN. */
  run?: string[][];
  entrypoint?: string[];
  cmd?: string[];
  env?: Record<string, string>;
  workdir?: string;
  user?: string;
  ports?: number[];
  /** Where the layout folder lands in the rootfs, e.g. `/usr/share/planet/images/pause`. */
  path: string;
}

/** How far one of a plugin's assets may move in one upgrade (Kubernetes' and etcd's skew rules). */
export interface SkewRule {
  /** Asset name, e.g. `etcd`. */
  asset: string;
  /** Minors one upgrade may advance (default 1); a lower version is always refused. */
  maxMinorStep?: number;
  /** Minor reached → lowest running version it can be reached from, e.g. `{ "3.7": "3.6.11" }`. */
  floors?: Record<string, string>;
}

/** What a version change of a plugin needs, so `planet upgrade` names no component. */
export interface UpgradeDef {
  skew?: SkewRule[];
  /** Commands run in the running bubble before it stops (e.g. drain this node), in plugin order. */
  before?: string[][];
  /** Commands run in the bubble that runs once the upgrade ends, committed or rolled back (e.g. uncordon). */
  after?: string[][];
  /**
   * Data volumes copied aside while the old bubble is stopped and put back when the upgrade rolls
   * back, if `if` (run in the old bubble before it stops) exits 0: e.g. etcd's, when it is the only member.
   */
  restore?: { volumes: string[]; if?: string[] };
}

export interface PluginDef {
  /** kebab-case, equal to the folder name; also the log tag and the `--without` value. */
  name: string;
  /** One line for `planet plugins`. */
  description: string;
  /** Plugin version recorded in the manifest (default the planet version). */
  version?: string;
  /** Plugins that must be in the same image. Composition only: units order the boot. */
  requires?: string[];
  /** Roles whose bubble enables this plugin's units, e.g. `["master"]`. */
  roles: Role[];
  /** Names of `build.assets/` recipes whose files this plugin installs, e.g. `["kubernetes"]`. */
  assets?: string[];
  /** Extra Debian packages (latest of the pinned archive) installed into the base rootfs. */
  packages?: string[];
  /** Unit files beside `index.ts`, e.g. `["etcd.service"]`. */
  units?: (string | UnitDef)[];
  /** Overlay folders copied into the rootfs: `{ "files/": "/" }`. */
  files?: Record<string, string>;
  /** Defaults merged into `/etc/container-environment`, e.g. `{ ETCD_PORT: "2379" }`. */
  env?: Record<string, string>;
  /** Certificates this plugin needs; issued by `planet secrets init`. */
  certs?: CertRequest[];
  /** Health checks run by the agent. */
  checks?: CheckDef[];
  /** OCI images bundled into the rootfs. */
  images?: ImageDef[];
  /** TCP ports its units listen on; `planet start` refuses to boot when one is taken, naming the process. */
  ports?: number[];
  /**
   * Host folders the bubble mounts for its data, name → path inside, e.g. `{ etcd: "/ext/etcd" }`:
   * `<data-dir>/<name>` on the host, kept across restarts, on the roles the plugin runs on. The
   * agent watches their disks.
   */
  volumes?: Record<string, string>;
  /**
   * Folder beside `index.ts` with Kubernetes YAML (`manifests/`), validated at build time and
   * applied at boot (server-side apply) once the apiserver answers; objects a newer image no longer
   * ships are pruned. `${VAR}` is replaced from the container environment, e.g. `${KUBE_DNS_IP}`.
   */
  manifests?: string;
  /**
   * Checks of Kubernetes objects that any plugin of the image ships in its manifests, run at build
   * time: e.g. the storage plugin refuses a StorageClass parameter its provisioner does not take.
   */
  validates?: ObjectRule[];
  /**
   * Folder beside `index.ts` holding Helm charts, one per sub-folder named as its `Chart.yaml` says
   * (`charts/`): rendered at build time, installed at boot as Helm releases named after the chart (in
   * the namespace its `planet/namespace` annotation names, else `default`), upgraded when a newer
   * image ships another chart or values, uninstalled when it ships none. `${VAR}` in `values.yaml`
   * is replaced from the container environment. Needs the `helm` plugin.
   */
  charts?: string;
  /** What an upgrade to this image needs from this plugin: version rules, steps around the swap. */
  upgrade?: UpgradeDef;
}

/** A build-time check of every shipped object of one kind. */
export interface ObjectRule {
  /** The kind it looks at, e.g. `StorageClass`. */
  kind: string;
  /** Why the object is refused (one line), or undefined when it is fine. */
  check: (object: Record<string, unknown>) => string | undefined;
}

/**
 * Identity helper that gives a plugin its type — like citty's `defineCommand`.
 * @example export default definePlugin({ name: "hello", description: "…", roles: ["node"] })
 */
export function definePlugin<const T extends PluginDef>(def: T): T {
  return def;
}

export function checkKind(c: CheckDef): "http" | "tcp" | "unit" | "command" {
  if ("http" in c) return "http";
  if ("tcp" in c) return "tcp";
  if ("unit" in c) return "unit";
  return "command";
}
