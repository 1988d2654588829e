import type { BackendRegistry } from '../backends/health.js';
import { BackendPool } from '../backends/pool.js';
import type { RouteConfig } from '../config/types.js';
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
  private readonly route: RouteConfig;
  private readonly registry: BackendRegistry;
  private balancer: BackendPool | null = null;

  constructor(route: RouteConfig, registry: BackendRegistry) {
    this.route = route;
    this.registry = registry;
  }

  /** Built on the first connection: a config with many routes pays for the balancers of those in use only. */
  get pool(): BackendPool {
    this.balancer ??= new BackendPool(this.route, this.registry);
    return this.balancer;
  }

  handle(connection: Connection, preamble: Preamble): void {
    const { bytes, offset } = preamble;
    new BackendSession(this.pool, connection, [offset === 0 ? bytes : bytes.subarray(offset)], null).start();
  }
}
