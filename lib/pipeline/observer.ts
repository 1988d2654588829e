import type { HealthObserver } from '../backends/health.js';
import type { ConnectionRecord } from './record.js';

/**
 * What the proxy reports as it works: logs and metrics subscribe here, so the
 * pipeline never knows how it is observed.
 */
export interface ProxyObserver extends HealthObserver {
  connectionAccepted(listener: string): void;
  /** Once per connection, when both sides are closed. */
  connectionClosed(record: ConnectionRecord): void;
  backendConnected(listener: string, backend: string, latencyMs: number): void;
  backendConnectFailed(listener: string, backend: string, reason: string): void;
  /** The listening socket failed after it was bound. */
  listenerError(listener: string, error: Error): void;
  /**
   * A client was closed as soon as it was accepted, before it became a
   * connection: `fd_limit` when the process is at its file descriptor limit
   * (the descriptors left are kept for the backend dials of open connections).
   */
  connectionDropped(listener: string, reason: DropReason): void;
  /**
   * Every backend of a route is marked down, so a connection tries them all
   * anyway (panic routing: a single backend is never locked out after it
   * recovers). Once per connection that does so.
   */
  panicRouting(listener: string, route: string): void;
  /**
   * A QUIC datagram the proxy did not pass on, with why: garbage, an unknown
   * version, a hello it cannot read or route, a limit. Nothing is sent back
   * (the proxy never sends a packet of its own to a client).
   */
  datagramDropped(listener: string, reason: DatagramDropReason): void;
  /** A terminating route's TLS handshake with the client failed (`reason`: the TLS error's code, or `timeout`). */
  tlsHandshakeFailed(listener: string, route: string, reason: string): void;
}

export type DropReason = 'fd_limit';

export type DatagramDropReason =
  | 'not_quic'
  | 'too_small'
  | 'unknown_version'
  | 'undecryptable'
  | 'bad_hello'
  | 'hello_too_large'
  | 'hello_timeout'
  | 'no_route'
  | 'no_backend_name'
  | 'denied'
  | 'not_passthrough'
  | 'flow_limit'
  | 'client_limit'
  | 'pending_limit'
  | 'fd_limit';
