import type { ConnectionObserver, ConnectionRecord, Outcome } from '../proxy/connection.js';
import type { Logger } from './logger.js';

/** Outcomes an operator should look at; the rest are clients' doing and log at info. */
const warningOutcomes = new Set<Outcome>(['backend_unreachable', 'backend_error']);

/** The one log line per connection, written when it closes. */
export function accessLog(logger: Logger): ConnectionObserver {
  return {
    connectionClosed(record: ConnectionRecord): void {
      if (warningOutcomes.has(record.outcome)) logger.warn(record, 'connection closed');
      else logger.info(record, 'connection closed');
    },
    listenerError(listener: string, error: Error): void {
      logger.error({ listener, err: error }, 'listener error');
    },
  };
}
