/**
 * One error type for the whole project. Errors are created with a stable UPPER_SNAKE `code`,
 * and — when a plugin or a build phase is involved — name both, like rollup's `[plugin x]`.
 * They are handled at three edges only: the CLI, the agent's `app.onError`, the build summary.
 */
/**
 * Every error code the project raises, in one place (a test checks each is used). A caller that
 * matches on a code gets a compile error when it is renamed.
 */
export type ErrorCode =
  | "AGENT_ERROR"
  | "AGENT_UNREACHABLE"
  | "ALREADY_RUNNING"
  | "APISERVER_UNREACHABLE"
  | "ASSET_BUILD"
  | "ASSET_CHECKSUM"
  | "ASSET_FETCH"
  | "ASSET_MISSING_FILE"
  | "BACKUP_INVALID"
  | "BAD_CIDR"
  | "BAD_DOMAIN"
  | "BAD_FLAG"
  | "BAD_HOST"
  | "BAD_IP"
  | "BAD_KUBECONFIG"
  | "BAD_ROLE"
  | "BAD_TOKEN"
  | "BAD_VOLUME"
  | "BOOT_FAILED"
  | "BUBBLE_RUNNING"
  | "CA_CORRUPT"
  | "CA_INCOMPLETE"
  | "CA_MISMATCH"
  | "CHART_APPLY"
  | "CHART_INVALID"
  | "CLUSTER_UNHEALTHY"
  | "COMMAND_FAILED"
  | "COMMAND_MISSING"
  | "COMPILE_FAILED"
  | "CORRUPT_MANIFEST"
  | "CORRUPT_RECORD"
  | "CORRUPT_SLOT"
  | "CORRUPT_STATE"
  | "DUPLICATE_CERT"
  | "DUPLICATE_CHART"
  | "DUPLICATE_CHECK"
  | "DUPLICATE_NODE"
  | "DUPLICATE_PLUGIN"
  | "DUPLICATE_UNIT"
  | "DUPLICATE_VOLUME"
  | "ENV_CONFLICT"
  | "ENV_CYCLE"
  | "ETCD_ERROR"
  | "ETCD_PROMOTE"
  | "ETCD_UNREACHABLE"
  | "FILE_CONFLICT"
  | "FORBIDDEN"
  | "GO_CGO"
  | "GO_CHECKSUM"
  | "GO_MISSING"
  | "GO_MODULE_UNKNOWN"
  | "GO_PROXY_UNREACHABLE"
  | "GO_SUM_MISSING"
  | "GO_TOO_OLD"
  | "HOST_DIR"
  | "IMAGE_CORRUPT"
  | "IMAGE_FILE"
  | "IMAGE_LAYOUT"
  | "IMAGE_REF"
  | "IMAGE_RUN"
  | "IMPORT_FAILED"
  | "INTERNAL"
  | "JOIN_FAILED"
  | "JOIN_REFUSED"
  | "KERNEL_FEATURE"
  | "KUBE_ERROR"
  | "LAST_MEMBER"
  | "LEAVE_REFUSED"
  | "MANIFEST_APPLY"
  | "MANIFEST_INVALID"
  | "MASTER_CA_MISMATCH"
  | "MASTER_UNREACHABLE"
  | "MEMBER_EXISTS"
  | "MEMBER_PENDING"
  | "MISSING_REQUIREMENT"
  | "MISSING_SECRET"
  | "MISSING_TOOL"
  | "MMDEBSTRAP_FAILED"
  | "NOTIFY_SOCKET"
  | "NOT_AN_IMAGE"
  | "NOT_A_CHECKOUT"
  | "NOT_A_DIR"
  | "NOT_A_SLOT"
  | "NOT_FOUND"
  | "NOT_OUR_DIR"
  | "NOT_READY"
  | "NOT_ROOT"
  | "NOT_RUNNING"
  | "NO_BUNDLE"
  | "NO_CA"
  | "NO_IMPORT"
  | "NO_KEY"
  | "NO_KUBECONFIG"
  | "NO_MEMBER"
  | "NO_NETNS"
  | "NO_RECORD"
  | "NO_ROOTFS"
  | "NO_SECRETS"
  | "NO_SPACE"
  | "PERMISSION"
  | "PLUGIN_INVALID"
  | "PLUGIN_NOT_FOUND"
  | "PLUGIN_NO_INDEX"
  | "PORT_IN_USE"
  | "QUORUM_AT_RISK"
  | "RECIPE_INVALID"
  | "REGISTRY_PUSH"
  | "RENEW_FAILED"
  | "RENEW_REFUSED"
  | "REQUIREMENT_CYCLE"
  | "ROTATION_ORDER"
  | "SECRETS_OTHER_HOST"
  | "SLOT_MOUNT"
  | "SMOKE_FAILED"
  | "SNAPSHOT_INVALID"
  | "SUBNET_MISMATCH"
  | "UNIT_MISSING"
  | "UNIT_PARSE"
  | "UNIT_UNKNOWN_REFERENCE"
  | "UNKNOWN_ASSET"
  | "UNKNOWN_CERT"
  | "UNKNOWN_PACKAGE"
  | "UNKNOWN_PLUGIN"
  | "UNKNOWN_TARGET"
  | "UNWRITABLE"
  | "UPGRADE_FAILED"
  | "UPGRADE_LOCKED"
  | "UPGRADE_REFUSED"
  | "UPGRADE_ROLLED_BACK"
  | "UPGRADE_RUNNING"
  | "UPGRADE_STEP_FAILED"
  | "USAGE";

export class PlanetError extends Error {
  override readonly name = "PlanetError";
  readonly code: ErrorCode;
  readonly plugin?: string;
  readonly phase?: string;
  /** Exit code of the CLI for this error (default 1). */
  readonly exitCode: number;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { plugin?: string; phase?: string; cause?: unknown; exitCode?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.plugin = opts.plugin;
    this.phase = opts.phase;
    this.exitCode = opts.exitCode ?? 1;
  }

  /** `CODE: [plugin x] (phase) message` — the one line the CLI prints. */
  toLine(): string {
    const where = [this.plugin && `[plugin ${this.plugin}]`, this.phase && `(${this.phase})`].filter(Boolean).join(" ");
    return `${this.code}: ${where ? `${where} ` : ""}${this.message}`;
  }
}

/** Normalises anything thrown into a PlanetError, once, at an edge. */
export function toPlanetError(err: unknown): PlanetError {
  if (err instanceof PlanetError) return err;
  if (err instanceof Error) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === "ENOSPC") return new PlanetError("NO_SPACE", `no space left on device: ${err.message}`, { cause: err });
    if (errno === "EACCES" || errno === "EPERM")
      return new PlanetError("PERMISSION", `${err.message} (run as root?)`, { cause: err });
    return new PlanetError("INTERNAL", err.message, { cause: err });
  }
  return new PlanetError("INTERNAL", String(err));
}

/** Shorthand for `throw new PlanetError(...)` in expression position. */
export function fail(code: ErrorCode, message: string, opts?: ConstructorParameters<typeof PlanetError>[2]): never {
  throw new PlanetError(code, message, opts);
}
