import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { formatAddress } from '../config/values.js';
import type { ListenAddress } from '../config/types.js';

/** What the admin endpoint serves; each answer is computed when asked. */
export interface AdminHandlers {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Listeners bound and a config loaded (false while shutting down). */
  ready(): boolean;
  config(): unknown;
  reload(): Promise<{ status: number; body: unknown }>;
}

function send(response: http.ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  response.end(body);
}

function sendJson(response: http.ServerResponse, status: number, body: unknown): void {
  send(response, status, 'application/json; charset=utf-8', `${JSON.stringify(body, null, 2)}\n`);
}

const routes: Record<string, { method: string; handle(handlers: AdminHandlers, response: http.ServerResponse): Promise<void> | void }> = {
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
};

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

/** The optional HTTP admin endpoint: metrics, health, effective config, reload. Serves nothing else. */
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
      const path = (request.url ?? '/').split('?')[0]!;
      const route = routes[path];
      if (route === undefined) return sendJson(response, 404, { error: `not found: ${path}`, endpoints: Object.keys(routes) });
      if (request.method !== route.method && !(route.method === 'GET' && request.method === 'HEAD')) {
        response.setHeader('allow', route.method);
        return sendJson(response, 405, { error: `${path} takes ${route.method}` });
      }
      // The request body is never read: no endpoint takes one.
      request.resume();
      // Inside the promise chain, so a handler that throws synchronously also gets its 500.
      Promise.resolve()
        .then(() => route.handle(handlers, response))
        .catch((error: Error) => sendJson(response, 500, { error: error.message }));
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
