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
  | 'shutdown';

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
