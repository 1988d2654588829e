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
  /** The listening socket failed after it was bound (e.g. out of file descriptors on accept). */
  listenerError(listener: string, error: Error): void;
}
