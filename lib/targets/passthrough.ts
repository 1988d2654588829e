import type { HostLookup } from '../backends/dial.js';
import type { BackendPool } from '../backends/pool.js';
import type { Connection } from '../pipeline/connection.js';
import type { Preamble } from '../pipeline/preamble.js';
import type { Target } from '../pipeline/target.js';
import { BackendSession } from './backend-session.js';

/**
 * A route's pool for a connection, from the name it asked for and the pattern
 * that matched: the route's one pool (built on first use), or for templated
 * backends the pool of the names that connection fills in; null when it
 * cannot fill them (the connection is refused).
 */
export type PoolSource = (serverName: string | null, pattern: string | null) => BackendPool | null;

/**
 * Sends a connection to a route's backends, still encrypted: the backend gets
 * the client's bytes from its first one (the preamble is replayed), then the
 * two sockets are spliced.
 */
export class PassthroughTarget implements Target {
  readonly pool: PoolSource;
  private readonly resolver: HostLookup;

  constructor(pool: PoolSource, resolver: HostLookup) {
    this.pool = pool;
    this.resolver = resolver;
  }

  handle(connection: Connection, preamble: Preamble): void {
    const pool = this.pool(connection.sni, connection.route);
    if (pool === null) {
      connection.settings.noBackendName.handle(connection, preamble);
      return;
    }
    const { bytes, offset } = preamble;
    new BackendSession(pool, this.resolver, connection, [offset === 0 ? bytes : bytes.subarray(offset)], null).start();
  }
}
