import type { BackendPool } from '../backends/pool.js';
import type { Connection } from '../pipeline/connection.js';
import type { Preamble } from '../pipeline/preamble.js';
import type { Target } from '../pipeline/target.js';
import { BackendSession } from './backend-session.js';

/**
 * Sends a connection to a route's backends, still encrypted: the backend gets
 * the client's bytes from its first one (the preamble is replayed), then the
 * two sockets are spliced.
 */
export class PassthroughTarget implements Target {
  /** The route's pool (built on first use). */
  readonly pool: () => BackendPool;

  constructor(pool: () => BackendPool) {
    this.pool = pool;
  }

  handle(connection: Connection, preamble: Preamble): void {
    const { bytes, offset } = preamble;
    new BackendSession(this.pool(), connection, [offset === 0 ? bytes : bytes.subarray(offset)], null).start();
  }
}
