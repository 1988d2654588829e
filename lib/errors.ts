// Every error this program raises on purpose, in one place (as undici does):
// each has a `name` and a stable `code`, so callers, logs and tests match the
// code and the message can improve without breaking anyone.

/** A position in the config file, 1-based like editors show it. */
export interface SourcePosition {
  line: number;
  col: number;
}

/** Where a value sits in the config document: keys and list indexes from the root. */
export type ConfigPath = ReadonlyArray<string | number>;

export type ConfigErrorCode =
  /** The file cannot be opened or read (missing, permission, I/O error). */
  | 'SNIP_CONFIG_UNREADABLE'
  /** The path is not a regular file (a FIFO, device, directory or socket). */
  | 'SNIP_CONFIG_NOT_A_FILE'
  /** The file is larger than the loader accepts, or needs more memory to load than it allows. */
  | 'SNIP_CONFIG_TOO_LARGE'
  /** Reading and parsing took longer than the loader allows. */
  | 'SNIP_CONFIG_TIMEOUT'
  /** The loader itself failed (its thread could not start, or a bug): not a verdict on the file. */
  | 'SNIP_CONFIG_LOADER_FAILED'
  /** Not valid YAML, or YAML past the loader's limits (aliases, nesting). */
  | 'SNIP_CONFIG_SYNTAX'
  /** Valid YAML that is not a valid config. */
  | 'SNIP_CONFIG_INVALID'
  /** A certificate, key or CA file a route names cannot be read or used. */
  | 'SNIP_CONFIG_CERTIFICATE';

/** Base of the errors below. */
export abstract class SniPassthroughError extends Error {
  abstract readonly code: string;
}

/**
 * A config problem, tied to the YAML node that caused it when there is one:
 * prints as `FILE:LINE:COL: message` (or `FILE: message` when the file itself
 * could not be read).
 */
export class ConfigError extends SniPassthroughError {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly file: string;
  readonly position: SourcePosition | null;
  readonly detail: string;

  constructor(file: string, position: SourcePosition | null, detail: string, code: ConfigErrorCode = 'SNIP_CONFIG_INVALID') {
    super(position ? `${file}:${position.line}:${position.col}: ${detail}` : `${file}: ${detail}`);
    this.code = code;
    this.file = file;
    this.position = position;
    this.detail = detail;
  }
}

/** A config scalar that does not parse; the message can be shown as is after `FILE:LINE:COL:`. */
export class ValueError extends SniPassthroughError {
  override readonly name = 'ValueError';
  readonly code = 'SNIP_CONFIG_VALUE';
}

/** A config value of the wrong shape, at `path` (the loader turns it into a `ConfigError` with the position). */
export class ShapeError extends SniPassthroughError {
  override readonly name = 'ShapeError';
  readonly code = 'SNIP_CONFIG_SHAPE';

  constructor(
    readonly path: ConfigPath,
    message: string,
    /** Point at the key of the last path element instead of its value (unknown keys). */
    readonly onKey = false,
  ) {
    super(message);
  }
}

const listenHints: Record<string, string> = {
  EADDRINUSE: 'address already in use: another process is listening there (find it with `ss -ltnp`)',
  EACCES:
    'permission denied: ports below 1024 need privileges: run under systemd (socket activation or AmbientCapabilities=CAP_NET_BIND_SERVICE) or grant node the capability with `sudo setcap cap_net_bind_service=+ep "$(command -v node)"`',
  EADDRNOTAVAIL: 'address not available: no local interface has that address',
};

/** Binding failed; the message is one line an operator can act on. `errno` is the system's code (`EADDRINUSE`). */
export class ListenError extends SniPassthroughError {
  override readonly name = 'ListenError';
  readonly code = 'SNIP_LISTEN_FAILED';

  constructor(
    readonly listener: string,
    readonly address: string,
    readonly errno: string,
    cause: Error,
    hint: string = listenHints[errno] ?? cause.message,
  ) {
    super(`cannot listen on ${address} (listener "${listener}"): ${hint}`, { cause });
  }
}

/** A config applied after shutdown began: nothing changes. */
export class ShuttingDownError extends SniPassthroughError {
  override readonly name = 'ShuttingDownError';
  readonly code = 'SNIP_SHUTTING_DOWN';

  constructor() {
    super('the proxy is shutting down');
  }
}

/** A socket passed by the service manager that cannot be served (not TCP, or no listener claims it). */
export class InheritedSocketError extends SniPassthroughError {
  override readonly name = 'InheritedSocketError';
  readonly code = 'SNIP_INHERITED_SOCKET';
}

/**
 * The state directory (where the local CA lives) cannot be used:
 * `SNIP_STATE_DIR_UNSAFE` when others could read or replace what is in it (its
 * mode or owner, or the CA key file's), `SNIP_STATE_DIR_UNUSABLE` when it
 * cannot be created or read.
 */
export class StateDirectoryError extends SniPassthroughError {
  override readonly name = 'StateDirectoryError';

  constructor(
    readonly code: 'SNIP_STATE_DIR_UNSAFE' | 'SNIP_STATE_DIR_UNUSABLE',
    readonly directory: string,
    message: string,
  ) {
    super(message);
  }
}

/** The local CA's files exist but do not make a usable CA (unreadable, not a matching key and certificate, expired). */
export class LocalCaError extends SniPassthroughError {
  override readonly name = 'LocalCaError';
  readonly code = 'SNIP_CA_INVALID';
}

/** A name a certificate cannot be issued for (a catch-all, a malformed name). */
export class CertificateHostnameError extends SniPassthroughError {
  override readonly name = 'CertificateHostnameError';
  readonly code = 'SNIP_CERT_HOSTNAME';
}

/** An admin endpoint request that cannot be served as asked (a bad query parameter, a missing `reason`): answered 400. */
export class AdminRequestError extends SniPassthroughError {
  override readonly name = 'AdminRequestError';
  readonly code = 'SNIP_ADMIN_BAD_REQUEST';
}

/** An admin endpoint feature this process cannot serve as it runs (live connections with worker processes): answered 501. */
export class AdminUnavailableError extends SniPassthroughError {
  override readonly name = 'AdminUnavailableError';
  readonly code = 'SNIP_ADMIN_UNAVAILABLE';
}

/**
 * A command that talks to a running proxy's admin endpoint (`status`, and
 * `route` and `diff` with `--admin`) could not get an answer from it:
 * `SNIP_ADMIN_URL` for an `--admin` value that is not an http URL or
 * host:port, `SNIP_ADMIN_UNREACHABLE` when nothing answers there,
 * `SNIP_ADMIN_ANSWER` when what answers is not the endpoint.
 */
export class AdminClientError extends SniPassthroughError {
  override readonly name = 'AdminClientError';

  constructor(
    readonly code: 'SNIP_ADMIN_URL' | 'SNIP_ADMIN_UNREACHABLE' | 'SNIP_ADMIN_ANSWER',
    message: string,
  ) {
    super(message);
  }
}

export type QuicErrorCode =
  /** Not a QUIC packet this proxy can read: a header or frame that breaks RFC 9000's rules, or cut short. */
  | 'QUIC_MALFORMED'
  /** An Initial packet whose protection does not verify with the keys of its connection ID (garbage, or another DCID's keys). */
  | 'QUIC_DECRYPT_FAILED'
  /** A long header of a QUIC version other than 1 and 2: its Initial packets cannot be read. */
  | 'QUIC_UNSUPPORTED_VERSION'
  /** CRYPTO data reaching past the bytes a flow may buffer before it is routed. */
  | 'QUIC_CRYPTO_TOO_LARGE'
  /** The CRYPTO stream does not start with a ClientHello the TLS parser accepts. */
  | 'QUIC_INVALID_HELLO';

/** A datagram that cannot be read as the client's first flight; the flow is not routed on it. */
export class QuicError extends SniPassthroughError {
  override readonly name = 'QuicError';

  constructor(
    readonly code: QuicErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Whether `error` is one of ours, so its message is meant for the operator (no stack trace). */
export function isOwnError(error: unknown): error is SniPassthroughError {
  return error instanceof SniPassthroughError;
}

/**
 * A worker process could not take a config (or exited while it was being
 * applied): `worker` is its number (1..workers), `reason` what it said,
 * `reasonCode` its own error's code when it had one.
 */
export class WorkerRefusedError extends SniPassthroughError {
  override readonly name = 'WorkerRefusedError';
  readonly code = 'SNIP_WORKER_REFUSED';

  constructor(
    readonly worker: number,
    readonly pid: number | null,
    readonly reason: string,
    readonly reasonCode: string | null,
  ) {
    super(`worker ${worker}${pid === null ? '' : ` (pid ${pid})`} refused the config: ${reason}`);
  }
}
