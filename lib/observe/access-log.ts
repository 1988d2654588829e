import type { ConnectionRecord, Outcome } from '../pipeline/record.js';
import type { ProxyObserver } from '../pipeline/observer.js';
import type { Logger } from './logger.js';

/** Outcomes an operator should look at; the rest are clients' doing and log at info. */
const warningOutcomes = new Set<Outcome>(['backend_unreachable', 'backend_error']);

/** Logs: the one line per connection when it closes, backend health changes and listener failures. */
export function accessLog(logger: Logger): ProxyObserver {
  return {
    connectionAccepted() {},
    connectionClosed(record: ConnectionRecord): void {
      if (warningOutcomes.has(record.outcome)) logger.warn(record, 'connection closed');
      else logger.info(record, 'connection closed');
    },
    backendConnected() {},
    backendConnectFailed() {},
    backendHealthChanged(change): void {
      if (change.state === 'down') logger.warn(change, 'backend down');
      else logger.info(change, 'backend up');
    },
    connectionDropped() {},
    panicRouting() {},
    listenerError(listener: string, error: Error): void {
      logger.error({ listener, err: error }, 'listener error');
    },
  };
}
