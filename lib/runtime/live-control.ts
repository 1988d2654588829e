import { performance } from 'node:perf_hooks';
import { AdminUnavailableError } from '../errors.js';
import type { AdminHandlers } from '../observe/admin.js';
import { type ConnectionFilter, matchesFilter } from '../observe/connection-query.js';
import type { Logger } from '../observe/logger.js';
import type { ConnectionSnapshot, LiveConnection } from '../pipeline/record.js';
import type { Supervisor } from './supervisor.js';

/** The open connections matching `filter`, each with the snapshot it was matched on (all read at one instant). */
function matching(supervisor: Supervisor, filter: ConnectionFilter): Array<{ connection: LiveConnection; snapshot: ConnectionSnapshot }> {
  const now = performance.now();
  const found: Array<{ connection: LiveConnection; snapshot: ConnectionSnapshot }> = [];
  for (const connection of supervisor.liveConnections()) {
    const snapshot = connection.snapshot(now);
    if (matchesFilter(snapshot, filter)) found.push({ connection, snapshot });
  }
  return found;
}

/**
 * What the admin endpoint may see and do to the running proxy's traffic:
 * list open connections, close some, drain backends. The operator's actions
 * are logged, each with what it acted on.
 */
export function liveControl(supervisor: Supervisor, logger: Logger): Pick<AdminHandlers, 'connections' | 'closeConnections' | 'drainBackend'> {
  return {
    connections: (filter) => matching(supervisor, filter).map(({ snapshot }) => snapshot),
    closeConnections(filter, reason) {
      // Matched first, then closed: closing must not change the sets being iterated.
      const found = matching(supervisor, filter);
      for (const { connection } of found) connection.closeByAdmin(reason);
      logger.info({ filter, reason, closed: found.length }, 'connections closed by admin');
      return found.length;
    },
    drainBackend(address, drained) {
      const status = supervisor.setBackendDrained(address, drained);
      if (status !== null) logger.info({ backend: address, active: status.active }, drained ? 'backend drained' : 'backend undrained');
      return status;
    },
  };
}

/**
 * With worker processes the connections live in the workers, and the
 * primary answers for none of them: listing, closing and draining say so
 * (501) rather than answer for an empty process.
 */
export function liveControlUnavailable(): Pick<AdminHandlers, 'connections' | 'closeConnections' | 'drainBackend'> {
  const unavailable = (): never => {
    throw new AdminUnavailableError('live connections and drain are not available with workers > 1 (the connections are in the worker processes)');
  };
  return { connections: unavailable, closeConnections: unavailable, drainBackend: unavailable };
}
