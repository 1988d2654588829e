import type { BackendStatus } from '../backends/health.js';
import { AdminClientError } from '../errors.js';
import type { ConnectionPage } from '../observe/connection-query.js';
import { adminBaseUrl, adminGet } from './admin-client.js';

/** What `status` shows: read from a running proxy's GET /config and GET /connections. */
export interface StatusReport {
  generation: number;
  listeners: Array<{ listener: string; address: string; protocol: string; open: number }>;
  backends: BackendStatus[];
  /** Open connections by listener and route (route null: not routed yet, or no route matched). */
  routes: ConnectionPage['routes'];
  open: number;
}

/** Asks the admin endpoint at `admin` (a URL or host:port); rejects with `AdminClientError`. */
export async function fetchStatus(admin: string): Promise<StatusReport> {
  const base = adminBaseUrl(admin);
  const [config, connections] = await Promise.all([
    adminGet<Pick<StatusReport, 'generation' | 'listeners' | 'backends'>>(base, '/config'),
    // limit=0: the counts without the connections themselves, however many are open.
    adminGet<ConnectionPage>(base, '/connections?limit=0'),
  ]);
  // A proxy from before these endpoints (or something else answering JSON) lacks them: say so rather than print a broken table.
  if (!Array.isArray(config.listeners) || !Array.isArray(config.backends) || !Array.isArray(connections.routes)) {
    throw new AdminClientError(
      'SNIP_ADMIN_ANSWER',
      `admin endpoint ${base.host}: no listeners, backends or connections in its answers (a proxy older than \`status\`?)`,
    );
  }
  return { generation: config.generation, listeners: config.listeners, backends: config.backends, routes: connections.routes, open: connections.total };
}

type Align = 'left' | 'right';

/** Rows under a header, columns two spaces apart, numbers right-aligned; no trailing spaces. */
export function formatTable(header: string[], rows: string[][], align: Align[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => (align[column] === 'right' ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** The report as a terminal shows it: a summary line, then listeners, backends and connections per route. */
export function renderStatus(report: StatusReport): string {
  const listeners = formatTable(
    ['LISTENER', 'ADDRESS', 'PROTOCOL', 'OPEN'],
    report.listeners.map((listener) => [listener.listener, listener.address, listener.protocol, String(listener.open)]),
    ['left', 'left', 'left', 'right'],
  );
  const backends =
    report.backends.length === 0
      ? 'no backends'
      : formatTable(
          ['BACKEND', 'HEALTH', 'DRAIN', 'ACTIVE'],
          [...report.backends]
            .sort((a, b) => a.backend.localeCompare(b.backend))
            .map((backend) => [backend.backend, backend.up ? 'up' : 'down', backend.drained ? 'drained' : '-', String(backend.active)]),
          ['left', 'left', 'left', 'right'],
        );
  const routes =
    report.routes.length === 0
      ? 'no open connections'
      : formatTable(
          ['LISTENER', 'ROUTE', 'OPEN'],
          report.routes.map((route) => [route.listener, route.route ?? '(none)', String(route.open)]),
          ['left', 'left', 'right'],
        );
  return `generation ${report.generation}, ${plural(report.open, 'open connection')}\n\n${listeners}\n\n${backends}\n\n${routes}\n`;
}
