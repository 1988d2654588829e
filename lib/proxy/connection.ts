import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { BackendConfig } from '../config/types.js';
import { matchRoute, type RouteTable } from '../routing/route-table.js';
import { UNRECOGNIZED_NAME_ALERT } from '../tls/alert.js';
import { parseClientHello, type ClientHello } from '../tls/client-hello.js';
import type { BackendPool } from './backend-pool.js';

/** How a connection ended; one per connection, in its log line and metrics. */
export type Outcome =
  | 'ok'
  | 'no_route'
  | 'bad_hello'
  | 'hello_timeout'
  | 'client_closed'
  | 'backend_unreachable'
  | 'idle_timeout'
  | 'client_error'
  | 'backend_error'
  | 'shutdown';

/** What is known about a connection when it closes. */
export interface ConnectionRecord {
  listener: string;
  client: string;
  sni: string | null;
  alpn: string[];
  route: string | null;
  backend: string | null;
  bytesFromClient: number;
  bytesToClient: number;
  durationMs: number;
  outcome: Outcome;
  /** Why, when the outcome alone does not say: the hello rejection or the socket error code. */
  reason: string | null;
}

export interface ActiveRoute {
  hostnames: readonly string[];
  pool: BackendPool;
}

/** Everything a connection needs from its listener, independent of where the config came from. */
export interface ConnectionSettings {
  listener: string;
  clientHelloTimeout: number;
  connectTimeout: number;
  idleTimeout: number;
  routes: RouteTable<ActiveRoute>;
}

export interface ConnectionObserver {
  connectionClosed(record: ConnectionRecord): void;
  /** The listening socket failed after it was bound (e.g. out of file descriptors on accept). */
  listenerError(listener: string, error: Error): void;
}

const enum Phase {
  Hello,
  Connecting,
  Spliced,
  Closed,
}

/**
 * One client connection through the pipeline: read the ClientHello, route on
 * its SNI, connect to a backend (trying the next on failure), replay the bytes
 * read so far, then splice both directions until both are done.
 */
export class ProxyConnection {
  private readonly client: net.Socket;
  private readonly settingsSource: { readonly settings: ConnectionSettings };
  private readonly observer: ConnectionObserver;
  private readonly startedAt = performance.now();
  private readonly clientAddress: string;
  private readonly listenerName: string;
  private readonly onClosed: (connection: ProxyConnection) => void;

  private phase = Phase.Hello;
  private chunks: Buffer[] = [];
  private received = 0;
  private need = 1;
  private helloTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private backend: net.Socket | null = null;
  private backendAddress: string | null = null;
  private hello: ClientHello | null = null;
  private routePattern: string | null = null;
  private outcome: Outcome | null = null;
  private reason: string | null = null;
  private openSockets = 1;

  constructor(
    client: net.Socket,
    settingsSource: { readonly settings: ConnectionSettings },
    observer: ConnectionObserver,
    onClosed: (connection: ProxyConnection) => void,
  ) {
    this.client = client;
    this.settingsSource = settingsSource;
    this.observer = observer;
    this.onClosed = onClosed;
    this.clientAddress = formatPeer(client.remoteAddress, client.remotePort);

    const { clientHelloTimeout, listener } = settingsSource.settings;
    this.listenerName = listener;
    if (clientHelloTimeout > 0) this.helloTimer = setTimeout(this.onHelloTimeout, clientHelloTimeout);
    client.on('data', this.onHelloData);
    client.on('end', this.onHelloEnd);
    client.on('error', this.onClientError);
    client.on('close', this.onSocketClose);
  }

  /** Ends the connection now (drain timeout at shutdown). */
  terminate(outcome: Outcome): void {
    this.fail(outcome, null);
  }

  private readonly onHelloData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.received < this.need) return;
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.received)];
    const result = parseClientHello(this.chunks[0]!);
    if (result.status === 'incomplete') {
      this.need = result.need;
    } else if (result.status === 'invalid') {
      this.fail('bad_hello', result.reason);
    } else {
      this.hello = result.hello;
      this.route(result.hello);
    }
  };

  private readonly onHelloEnd = (): void => {
    this.fail('client_closed', this.received > 0 ? 'incomplete_hello' : null);
  };

  private readonly onHelloTimeout = (): void => {
    this.helloTimer = null;
    this.fail('hello_timeout', null);
  };

  private route(hello: ClientHello): void {
    this.clearHelloState();
    const settings = this.settingsSource.settings;
    const match = matchRoute(settings.routes, hello.serverName);
    if (match === null) {
      this.outcome = 'no_route';
      this.phase = Phase.Closed;
      this.client.end(UNRECOGNIZED_NAME_ALERT, () => this.client.destroy());
      return;
    }
    this.routePattern = match.pattern;
    this.phase = Phase.Connecting;
    this.connect(match.route.pool.connectionOrder(), 0, settings.connectTimeout);
  }

  private clearHelloState(): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.client.pause();
    this.client.off('data', this.onHelloData);
    this.client.off('end', this.onHelloEnd);
  }

  private connect(candidates: BackendConfig[], index: number, connectTimeout: number): void {
    if (this.phase !== Phase.Connecting) return;
    const candidate = candidates[index];
    if (candidate === undefined) {
      this.fail('backend_unreachable', this.reason);
      return;
    }
    this.backendAddress = candidate.address;
    const backend = net.connect({ host: candidate.host, port: candidate.port, allowHalfOpen: true, noDelay: true });
    this.backend = backend;
    const giveUp = (reason: string): void => {
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = null;
      backend.removeAllListeners();
      backend.on('error', ignoreError);
      backend.destroy();
      this.backend = null;
      this.reason = reason;
      this.connect(candidates, index + 1, connectTimeout);
    };
    backend.once('error', (error: NodeJS.ErrnoException) => giveUp(error.code ?? error.message));
    if (connectTimeout > 0) this.connectTimer = setTimeout(() => giveUp('connect_timeout'), connectTimeout);
    backend.once('connect', () => {
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = null;
      backend.removeAllListeners('error');
      this.reason = null;
      this.splice(backend);
    });
  }

  private splice(backend: net.Socket): void {
    this.phase = Phase.Spliced;
    this.openSockets++;
    const { client } = this;
    backend.on('error', this.onBackendError);
    backend.on('close', this.onSocketClose);
    backend.write(this.chunks[0]!);
    this.chunks = [];
    client.pipe(backend);
    backend.pipe(client);
    const { idleTimeout } = this.settingsSource.settings;
    if (idleTimeout > 0) {
      // The client socket sees every byte in either direction (read or written), so one timer covers both.
      client.setTimeout(idleTimeout, this.onIdle);
    }
  }

  private readonly onIdle = (): void => {
    this.fail('idle_timeout', null);
  };

  private readonly onClientError = (error: NodeJS.ErrnoException): void => {
    this.fail(this.phase === Phase.Spliced ? 'client_error' : 'client_closed', error.code ?? error.message, error);
  };

  private readonly onBackendError = (error: NodeJS.ErrnoException): void => {
    this.fail('backend_error', error.code ?? error.message, error);
  };

  /** Records why the connection ends (first cause wins) and closes both sides; a peer's reset is passed on as a reset. */
  private fail(outcome: Outcome, reason: string | null, error?: NodeJS.ErrnoException): void {
    if (this.outcome === null) {
      this.outcome = outcome;
      this.reason = reason;
    }
    if (this.helloTimer) clearTimeout(this.helloTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.helloTimer = this.connectTimer = null;
    this.phase = Phase.Closed;
    const reset = error?.code === 'ECONNRESET';
    closeSocket(this.client, reset);
    if (this.backend) closeSocket(this.backend, reset);
  }

  private readonly onSocketClose = (): void => {
    if (--this.openSockets > 0) return;
    // The client left while a backend was still being dialled: stop dialling.
    if (this.phase === Phase.Connecting) this.fail('client_closed', null);
    const outcome = this.outcome ?? (this.phase === Phase.Spliced ? 'ok' : 'client_closed');
    this.phase = Phase.Closed;
    this.onClosed(this);
    const { client, hello } = this;
    this.observer.connectionClosed({
      listener: this.listenerName,
      client: this.clientAddress,
      sni: hello?.serverName ?? null,
      alpn: hello?.alpn ?? [],
      route: this.routePattern,
      backend: this.backendAddress,
      bytesFromClient: client.bytesRead,
      bytesToClient: client.bytesWritten,
      durationMs: Math.round((performance.now() - this.startedAt) * 10) / 10,
      outcome,
      reason: this.reason,
    });
  };
}

function ignoreError(): void {}

function closeSocket(socket: net.Socket, reset: boolean): void {
  if (socket.destroyed) return;
  if (reset) socket.resetAndDestroy();
  else socket.destroy();
}

export function formatPeer(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return 'unknown';
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
