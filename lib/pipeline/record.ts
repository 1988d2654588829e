/** How a connection ended; one per connection, in its log line and metrics. */
export type Outcome =
  | 'ok'
  | 'no_route'
  | 'tls_handshake_failed'
  | 'bad_hello'
  | 'hello_timeout'
  | 'bad_request'
  | 'request_timeout'
  | 'redirect'
  | 'bad_proxy_header'
  | 'denied'
  | 'client_limit'
  | 'client_closed'
  | 'backend_unreachable'
  | 'idle_timeout'
  | 'client_error'
  | 'backend_error'
  | 'shutdown'
  /** Closed through the admin endpoint (`POST /connections/close`); the record's reason is the operator's. */
  | 'closed_by_admin';

/** What is known about a connection when it closes. */
export interface ConnectionRecord {
  listener: string;
  /** The client's "address:port": from the PROXY header when the listener accepts one. */
  client: string;
  sni: string | null;
  alpn: string[];
  route: string | null;
  backend: string | null;
  /** Backends dialled (more than 1 when failover happened). */
  attempts: number;
  bytesFromClient: number;
  bytesToClient: number;
  durationMs: number;
  outcome: Outcome;
  /** Why, when the outcome alone does not say: the hello rejection, the socket error code, ... */
  reason: string | null;
  /** A QUIC flow's datagrams each way (its bytes are the bytes above); absent for TCP connections. */
  quic?: QuicCounts;
}

export interface QuicCounts {
  packetsFromClient: number;
  packetsToClient: number;
}

/** Where an open connection is in its life: reading its preamble, dialling (or a TLS handshake), relaying, or closing. */
let lastConnectionId = 0;

/** Connection ids (TCP connections and QUIC flows alike): one counter per process, so an id names one connection for as long as the process runs. */
export function nextConnectionId(): number {
  return ++lastConnectionId;
}

export type ConnectionState = 'preamble' | 'connecting' | 'relaying' | 'closing';

/** An open connection as the admin endpoint shows it: read when asked, the byte counts from the sockets at that moment. */
export interface ConnectionSnapshot {
  /** Unique in this process, increasing in the order connections were accepted. */
  id: number;
  listener: string;
  client: string;
  sni: string | null;
  alpn: string[];
  route: string | null;
  backend: string | null;
  state: ConnectionState;
  bytesFromClient: number;
  bytesToClient: number;
  ageMs: number;
}

/**
 * What the pipeline lets the rest of the process see of an open connection
 * (the admin endpoint, through the runtime): a snapshot, and one action.
 */
export interface LiveConnection {
  readonly id: number;
  /** `now`: performance.now(), read once for a whole listing. */
  snapshot(now: number): ConnectionSnapshot;
  /** Ends it now with outcome `closed_by_admin` and the operator's `reason` in its record. */
  closeByAdmin(reason: string): void;
}
