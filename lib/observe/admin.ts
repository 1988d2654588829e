import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { BackendStatus } from '../backends/health.js';
import { formatAddress } from '../config/values.js';
import type { ListenAddress } from '../config/types.js';
import { AdminRequestError, AdminUnavailableError } from '../errors.js';
import type { ConnectionSnapshot } from '../pipeline/record.js';
import { type ConnectionFilter, connectionPage, parseCloseRequest, parseConnectionQuery } from './connection-query.js';

/** What the admin endpoint serves; each answer is computed when asked. */
export interface AdminHandlers {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Listeners bound and a config loaded (false while shutting down). */
  ready(): boolean;
  config(): unknown;
  reload(): Promise<{ status: number; body: unknown }>;
  /** The open connections that match `filter`, in any order. */
  connections(filter: ConnectionFilter): ConnectionSnapshot[];
  /** Closes the open connections that match `filter`, with `reason` in their records; how many. */
  closeConnections(filter: ConnectionFilter, reason: string): number;
  /** Drains a backend of the running config or puts it back; null when it has none at `address`. */
  drainBackend(address: string, drained: boolean): BackendStatus | null;
}

function send(response: http.ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  response.end(body);
}

function sendJson(response: http.ServerResponse, status: number, body: unknown): void {
  send(response, status, 'application/json; charset=utf-8', `${JSON.stringify(body, null, 2)}\n`);
}

type Handle = (handlers: AdminHandlers, response: http.ServerResponse, params: URLSearchParams) => Promise<void> | void;

const routes: Record<string, { method: string; handle: Handle }> = {
  '/metrics': {
    method: 'GET',
    async handle(handlers, response) {
      const { contentType, body } = await handlers.metrics();
      send(response, 200, contentType, body);
    },
  },
  '/healthz': { method: 'GET', handle: (_handlers, response) => send(response, 200, 'text/plain; charset=utf-8', 'ok\n') },
  '/readyz': {
    method: 'GET',
    handle: (handlers, response) =>
      handlers.ready() ? send(response, 200, 'text/plain; charset=utf-8', 'ready\n') : send(response, 503, 'text/plain; charset=utf-8', 'not ready\n'),
  },
  '/config': { method: 'GET', handle: (handlers, response) => sendJson(response, 200, handlers.config()) },
  '/reload': {
    method: 'POST',
    async handle(handlers, response) {
      const { status, body } = await handlers.reload();
      sendJson(response, status, body);
    },
  },
  '/connections': {
    method: 'GET',
    handle(handlers, response, params) {
      const query = parseConnectionQuery(params);
      sendJson(response, 200, connectionPage(handlers.connections(query.filter), query));
    },
  },
  '/connections/close': {
    method: 'POST',
    handle(handlers, response, params) {
      const { filter, reason } = parseCloseRequest(params);
      sendJson(response, 200, { closed: handlers.closeConnections(filter, reason), reason });
    },
  },
};

/** `/backends/{address}/drain` and `/undrain`: the address as the config writes it, percent-encoded or not. */
const BACKEND_ACTION = /^\/backends\/([^/]+)\/(drain|undrain)$/;

function backendAction(path: string): { method: string; handle: Handle } | undefined {
  const found = BACKEND_ACTION.exec(path);
  if (found === null) return undefined;
  const [, encoded, action] = found;
  return {
    method: 'POST',
    handle(handlers, response, params) {
      if ([...params.keys()].length > 0) throw new AdminRequestError(`${path} takes no parameters`);
      let address: string;
      try {
        address = decodeURIComponent(encoded!);
      } catch {
        throw new AdminRequestError(`not a valid percent-encoded address: "${encoded}"`);
      }
      const status = handlers.drainBackend(address, action === 'drain');
      if (status === null) {
        sendJson(response, 404, { error: `no backend "${address}" in the running config (GET /config lists them)`, code: 'SNIP_ADMIN_UNKNOWN_BACKEND' });
        return;
      }
      sendJson(response, 200, status);
    },
  };
}

const ENDPOINTS = [...Object.keys(routes), '/backends/{address}/drain', '/backends/{address}/undrain'];

/** "127.0.0.1:9900" → "127.0.0.1", "[::1]:9900" → "::1", "localhost" → "localhost". */
export function hostnameOf(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(1, hostHeader.indexOf(']'));
  const colon = hostHeader.indexOf(':');
  return (colon === -1 ? hostHeader : hostHeader.slice(0, colon)).toLowerCase();
}

/**
 * Why a request is refused before any endpoint sees it, or null. The endpoint
 * has no authentication, so a web page open in a browser on the same machine
 * must not reach it: browsers send `Origin` on cross-site POSTs, and a DNS
 * rebinding attack arrives with its own hostname in `Host`.
 */
export function browserRefusal(headers: http.IncomingHttpHeaders, anyHost: boolean): string | null {
  if (headers.origin !== undefined) return 'requests from web pages (with an Origin header) are refused';
  if (anyHost || headers.host === undefined) return null;
  const hostname = hostnameOf(headers.host);
  if (hostname === 'localhost' || net.isIP(hostname) !== 0) return null;
  return `Host "${headers.host}" is refused: address the endpoint by IP or as localhost`;
}

/**
 * Connections served at once; more are closed as soon as they are accepted.
 * A scraper, a health check and an operator's curl need a handful; the cap
 * keeps a flood of clients from holding the process's descriptors.
 */
export const ADMIN_MAX_CONNECTIONS = 32;
/** A client must have sent its request headers this long after connecting (or after its previous request). */
export const ADMIN_HEADERS_TIMEOUT_MS = 3_000;
/** How often Node looks for clients past the header timeout (its default, 30 s, let idle clients stay that long). */
const TIMEOUT_CHECK_EVERY_MS = 500;

export interface AdminOptions {
  /** Accept any Host header (an endpoint exposed with `allowRemote`, reached by DNS name). */
  anyHost: boolean;
  /** An error of the listening socket once bound (accept failures such as EMFILE, which Node retries). */
  onError(error: Error): void;
}

/** The optional HTTP admin endpoint: metrics, health, effective config, reload, open connections, backend drain. Serves nothing else. */
export class AdminServer {
  private readonly server: http.Server;
  private readonly onError: (error: Error) => void;

  constructor(handlers: AdminHandlers, { anyHost, onError }: AdminOptions) {
    this.onError = onError;
    const timeouts = {
      headersTimeout: ADMIN_HEADERS_TIMEOUT_MS,
      requestTimeout: 10_000,
      keepAliveTimeout: ADMIN_HEADERS_TIMEOUT_MS,
      connectionsCheckingInterval: TIMEOUT_CHECK_EVERY_MS,
    };
    this.server = http.createServer(timeouts, (request, response) => {
      const refusal = browserRefusal(request.headers, anyHost);
      if (refusal !== null) return sendJson(response, 403, { error: refusal });
      const url = request.url ?? '/';
      const queryAt = url.indexOf('?');
      const path = queryAt === -1 ? url : url.slice(0, queryAt);
      const params = new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1));
      const route = routes[path] ?? backendAction(path);
      if (route === undefined) return sendJson(response, 404, { error: `not found: ${path}`, endpoints: ENDPOINTS });
      if (request.method !== route.method && !(route.method === 'GET' && request.method === 'HEAD')) {
        response.setHeader('allow', route.method);
        return sendJson(response, 405, { error: `${path} takes ${route.method}` });
      }
      // The request body is never read: no endpoint takes one (parameters are in the query string).
      request.resume();
      // Inside the promise chain, so a handler that throws synchronously also gets its 400 or 500.
      Promise.resolve()
        .then(() => route.handle(handlers, response, params))
        .catch((error: Error) =>
          error instanceof AdminRequestError || error instanceof AdminUnavailableError
            ? sendJson(response, error instanceof AdminRequestError ? 400 : 501, { error: error.message, code: error.code })
            : sendJson(response, 500, { error: error.message }),
        );
    });
    this.server.maxConnections = ADMIN_MAX_CONNECTIONS;
  }

  listen(address: ListenAddress): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: address.host ?? undefined, port: address.port }, () => {
        this.server.off('error', reject);
        this.server.on('error', this.onError);
        const bound = this.server.address() as AddressInfo;
        resolve(formatAddress(bound.address, bound.port));
      });
    });
  }

  close(): void {
    this.server.close();
    this.server.closeIdleConnections();
  }
}
