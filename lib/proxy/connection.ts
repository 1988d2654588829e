import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { AccessCheck } from '../routing/access-list.js';
import { matchRoute, type RouteTable } from '../routing/route-table.js';
import { UNRECOGNIZED_NAME_ALERT } from '../tls/alert.js';
import { parseClientHello, type ClientHello } from '../tls/client-hello.js';
import type { BackendAttempt, BackendPool, BackendTarget } from '../backends/pool.js';
import { dial } from '../backends/dial.js';
import type { ProxyObserver } from '../pipeline/observer.js';
import { encodeProxyV1, encodeProxyV2, parseProxyHeader, type ProxiedAddresses } from '../net/proxy-protocol.js';
import { canonicalAddress, formatPeer } from '../net/address.js';
import { closeSocket, ignoreError } from '../net/sockets.js';
import type { Outcome } from '../pipeline/record.js';

export interface ActiveRoute {
  hostnames: readonly string[];
  alpn: readonly string[];
  pool: BackendPool;
  access: AccessCheck | null;
}

/** Everything a connection needs from its listener's config, independent of where the config came from. */
export interface ConnectionSettings {
  listener: string;
  clientHelloTimeout: number;
  connectTimeout: number;
  idleTimeout: number;
  acceptProxyProtocol: boolean;
  /** Which peers may send the PROXY header; null: any. */
  trustedProxies: AccessCheck | null;
  access: AccessCheck | null;
  routes: RouteTable<ActiveRoute>;
}

/** What a connection asks of the listener that accepted it. */
export interface ConnectionHost {
  readonly settings: ConnectionSettings;
  readonly observer: ProxyObserver;
  /** Counts a connection for `clientAddress`, or says why that client is refused (nothing counted then). */
  admitClient(clientAddress: string): Refusal | null;
  releaseClient(clientAddress: string): void;
  connectionEnded(connection: ProxyConnection): void;
}

/** Why a client is closed before a byte of its hello is read. */
export type Refusal = 'denied' | 'client_limit';

/** Client bytes kept while the backend is dialled before reading pauses. */
const MAX_BUFFERED_BEFORE_SPLICE = 128 * 1024;

/** Idle time before TCP keepalive probes start, so a peer that vanished (power loss, NAT timeout) is noticed. */
const KEEPALIVE_DELAY = 60_000;

enum Phase {
  ProxyHeader,
  Hello,
  Connecting,
  Spliced,
  Closed,
}

/**
 * One client connection through the pipeline: (PROXY header,) ClientHello,
 * route on its SNI and ALPN, connect to a backend (the next on failure),
 * replay the bytes read so far, then splice both directions until both are done.
 */
export class ProxyConnection {
  private readonly client: net.Socket;
  private readonly host: ConnectionHost;
  private settings: ConnectionSettings;
  private readonly startedAt = performance.now();

  private phase: Phase;
  private clientAddress: string;
  private clientPort: number | undefined;
  private admitted = false;
  /** Set from a PROXY header: the addresses the upstream load balancer saw. */
  private proxied: ProxiedAddresses | null = null;
  private chunks: Buffer[] = [];
  private received = 0;
  private need = 1;
  /** Where the ClientHello starts in the buffer (after a PROXY header). */
  private helloOffset = 0;
  private helloTimer: NodeJS.Timeout | null = null;
  /** Stops the dial in progress, or the wait for the dialled backend's first byte. */
  private cancelDial: (() => void) | null = null;
  private pool: BackendPool | null = null;
  /** The backends to try, in order, and the next one's index. */
  private plan: BackendTarget[] = [];
  private planIndex = 0;
  /**
   * What the spliced backend was sent from the buffer (the hello and any
   * early bytes), kept until it sends its first byte: if it resets before
   * that, the next backend gets the same bytes.
   */
  private unanswered: Buffer[] | null = null;
  /** `client.bytesRead` at the splice: any more means bytes went to the backend that are not in `unanswered`. */
  private clientBytesAtSplice = 0;
  /** The backend being dialled or waited on, then the one spliced to. */
  private attempt: BackendAttempt | null = null;
  private backend: net.Socket | null = null;
  private backendAddress: string | null = null;
  private attempts = 0;
  private hello: ClientHello | null = null;
  private routePattern: string | null = null;
  private outcome: Outcome | null = null;
  private reason: string | null = null;
  private openSockets = 1;

  constructor(client: net.Socket, host: ConnectionHost) {
    this.client = client;
    this.host = host;
    this.settings = host.settings;
    this.clientAddress = canonicalAddress(client.remoteAddress);
    this.clientPort = client.remotePort;
    client.on('error', this.onClientError);
    client.on('close', this.onSocketClose);

    if (this.settings.acceptProxyProtocol) {
      this.phase = Phase.ProxyHeader;
      const { trustedProxies } = this.settings;
      if (trustedProxies && !trustedProxies(this.clientAddress)) {
        this.fail('denied', 'untrusted_proxy');
        return;
      }
    } else {
      this.phase = Phase.Hello;
      // Refused clients are closed before a byte of theirs is read.
      if (!this.admit()) return;
    }
    this.helloTimer = setTimeout(this.onHelloTimeout, this.settings.clientHelloTimeout);
    client.on('data', this.onData);
    client.on('end', this.onClientEnd);
    client.resume();
  }

  /** Ends the connection now (drain timeout at shutdown). */
  terminate(outcome: Outcome): void {
    this.fail(outcome, null);
  }

  private admit(): boolean {
    const refusal = this.host.admitClient(this.clientAddress);
    if (refusal !== null) {
      this.fail(refusal, refusal === 'denied' ? 'listener_access_list' : null);
      return false;
    }
    this.admitted = true;
    return true;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.phase === Phase.Connecting) {
      this.holdEarlyData(chunk);
      return;
    }
    if (this.phase === Phase.Closed) return;
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.received < this.need) return;
    const buffer = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.received);
    this.chunks = [buffer];
    if (this.phase === Phase.ProxyHeader && !this.readProxyHeader(buffer)) return;
    if (this.phase === Phase.Hello) this.readHello(buffer);
  };

  /** True once the header is read and the client admitted, so the hello can follow. */
  private readProxyHeader(buffer: Buffer): boolean {
    const result = parseProxyHeader(buffer);
    if (result.status === 'incomplete') {
      this.need = result.need;
      return false;
    }
    if (result.status === 'invalid') {
      this.fail('bad_proxy_header', result.reason);
      return false;
    }
    this.helloOffset = result.length;
    this.need = result.length + 1;
    if (result.addresses) {
      this.proxied = result.addresses;
      this.clientAddress = canonicalAddress(result.addresses.source.address);
      this.clientPort = result.addresses.source.port;
    }
    this.phase = Phase.Hello;
    return this.admit() && buffer.length > this.helloOffset;
  }

  private readHello(buffer: Buffer): void {
    const result = parseClientHello(this.helloOffset === 0 ? buffer : buffer.subarray(this.helloOffset));
    if (result.status === 'incomplete') {
      this.need = this.helloOffset + result.need;
    } else if (result.status === 'invalid') {
      this.fail('bad_hello', result.reason);
    } else {
      this.hello = result.hello;
      this.route(result.hello);
    }
  }

  /**
   * Bytes the client sends while its backend is being dialled (TLS 1.3 early
   * data, or a client that does not wait): kept for the backend. Reading on
   * is how a client that resets meanwhile is noticed; past a bound, reading
   * stops until the splice (backpressure).
   */
  private holdEarlyData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.received > MAX_BUFFERED_BEFORE_SPLICE) this.client.pause();
  }

  private readonly onClientEnd = (): void => {
    // A client may half-close right after its hello and still wait for the answer: the FIN goes on after the splice.
    if (this.phase === Phase.Connecting || this.phase === Phase.Closed) return;
    this.fail('client_closed', this.received > 0 ? 'incomplete_hello' : null);
  };

  private readonly onHelloTimeout = (): void => {
    this.helloTimer = null;
    this.fail('hello_timeout', null);
  };

  private route(hello: ClientHello): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;

    // Route with the listener's current config: a reload applied while this client was still sending its hello counts.
    this.settings = this.host.settings;
    const match = matchRoute(this.settings.routes, hello.serverName, hello.alpn);
    if (match === null) {
      this.outcome = 'no_route';
      this.phase = Phase.Closed;
      this.client.end(UNRECOGNIZED_NAME_ALERT, () => this.client.destroy());
      return;
    }
    this.routePattern = match.pattern;
    const route = match.route;
    if (route.access && !route.access(this.clientAddress)) {
      this.fail('denied', 'route_access_list');
      return;
    }
    const plan = route.pool.plan(this.clientAddress);
    if (plan.length === 0) {
      this.fail('backend_unreachable', 'no_backend_available');
      return;
    }
    this.phase = Phase.Connecting;
    this.pool = route.pool;
    this.plan = plan;
    this.connectNext();
  }

  /** Dials the next backend of the plan, or ends the connection when none is left. */
  private connectNext(): void {
    if (this.phase !== Phase.Connecting) return;
    const target = this.plan[this.planIndex++];
    if (target === undefined) {
      this.fail('backend_unreachable', this.reason);
      return;
    }
    const pool = this.pool!;
    const attempt = pool.beginAttempt(target);
    // Another connection is already the one retrying this backend after its failTimeout.
    if (attempt === null) {
      this.connectNext();
      return;
    }
    this.attempt = attempt;
    this.backendAddress = target.config.address;
    this.attempts++;
    const dialStartedAt = performance.now();
    this.cancelDial = dial(target.config.host, target.config.port, this.settings.connectTimeout, (error, socket) => {
      this.cancelDial = null;
      if (socket === null) {
        this.attempt = null;
        pool.attemptFailed(attempt);
        this.host.observer.backendConnectFailed(this.settings.listener, target.config.address, error ?? 'unknown');
        this.reason = error;
        return this.connectNext();
      }
      pool.attemptSucceeded(attempt);
      this.host.observer.backendConnected(this.settings.listener, target.config.address, performance.now() - dialStartedAt);
      this.reason = null;
      this.splice(socket, target);
    });
  }

  private splice(backend: net.Socket, target: BackendTarget): void {
    this.phase = Phase.Spliced;
    this.backend = backend;
    this.openSockets++;
    const { client } = this;
    backend.on('error', this.onBackendError);
    backend.on('close', this.onSocketClose);
    backend.once('data', this.onBackendAnswer);
    client.off('data', this.onData);
    client.off('end', this.onClientEnd);
    client.pause();
    const version = target.config.proxyProtocol;
    // The hello (chunks[0], possibly with a PROXY header in front) and whatever arrived while dialling.
    const [buffer, ...early] = this.chunks;
    this.unanswered = this.chunks;
    this.chunks = [];
    this.clientBytesAtSplice = client.bytesRead;
    backend.cork();
    if (version !== null) {
      const header = this.proxyHeader(version);
      // Only a client socket that closed before its address was read has nothing to put in the header.
      if (header === null) {
        this.fail('client_closed', 'no_client_address');
        return;
      }
      backend.write(header);
    }
    backend.write(this.helloOffset === 0 ? buffer! : buffer!.subarray(this.helloOffset));
    for (const chunk of early) backend.write(chunk);
    backend.uncork();
    client.pipe(backend);
    backend.pipe(client);
    client.setKeepAlive(true, KEEPALIVE_DELAY);
    backend.setKeepAlive(true, KEEPALIVE_DELAY);
    const { idleTimeout } = this.settings;
    if (idleTimeout > 0) {
      // The client socket sees every byte in either direction (read or written), so one timer covers both.
      client.setTimeout(idleTimeout, this.onIdle);
    }
  }

  private readonly onBackendAnswer = (): void => {
    this.unanswered = null;
  };

  /**
   * Whether a backend error can still move the connection to the next
   * backend: the backend has sent nothing, so the client has seen nothing of
   * it, and every byte it was sent is still in `unanswered`. This is what a
   * backend going down does to the connections in its accept queue (a reset).
   */
  private canRetryElsewhere(): boolean {
    const { client } = this;
    return this.unanswered !== null && client.bytesRead === this.clientBytesAtSplice && !client.readableEnded && this.planIndex < this.plan.length;
  }

  /**
   * Undoes the splice to a backend that reset before answering and dials the
   * next one with the same bytes. Not held against the backend's health: a
   * hello a backend rejects with a reset would otherwise let any client take
   * backends out.
   */
  private retryElsewhere(reason: string): void {
    const backend = this.backend!;
    const { client } = this;
    client.unpipe(backend);
    backend.unpipe(client);
    backend.off('error', this.onBackendError);
    backend.off('close', this.onSocketClose);
    backend.off('data', this.onBackendAnswer);
    backend.on('error', ignoreError);
    backend.destroy();
    this.backend = null;
    this.openSockets--;
    client.setTimeout(0);
    client.off('timeout', this.onIdle);
    this.pool!.release(this.attempt!);
    this.attempt = null;
    this.host.observer.backendConnectFailed(this.settings.listener, this.backendAddress!, reason);
    this.reason = reason;
    this.chunks = this.unanswered!;
    this.unanswered = null;
    this.phase = Phase.Connecting;
    client.on('data', this.onData);
    client.on('end', this.onClientEnd);
    client.resume();
    this.connectNext();
  }

  private proxyHeader(version: 'v1' | 'v2'): Buffer | null {
    const { client } = this;
    const addresses = this.proxied ?? {
      source: { address: this.clientAddress, port: this.clientPort ?? 0 },
      destination: { address: canonicalAddress(client.localAddress), port: client.localPort ?? 0 },
    };
    try {
      return version === 'v1' ? encodeProxyV1(addresses) : encodeProxyV2(addresses, this.hello?.serverName ?? null);
    } catch {
      return null;
    }
  }

  private readonly onIdle = (): void => {
    this.fail('idle_timeout', null);
  };

  private readonly onClientError = (error: NodeJS.ErrnoException): void => {
    if (this.phase !== Phase.Spliced) {
      this.fail('client_closed', error.code ?? error.message, error);
      return;
    }
    // Clients such as curl reset instead of closing once they have their answer: the client decides when it is
    // done, so that is a normal end (the reset is still passed on to the backend).
    if (error.code === 'ECONNRESET') {
      this.fail('ok', 'client_reset', error);
      return;
    }
    this.fail('client_error', error.code ?? error.message, error);
  };

  private readonly onBackendError = (error: NodeJS.ErrnoException): void => {
    if (this.canRetryElsewhere()) {
      this.retryElsewhere(error.code ?? error.message);
      return;
    }
    this.fail('backend_error', error.code ?? error.message, error);
  };

  /** Records why the connection ends (the first cause wins) and closes both sides; a peer's reset is passed on as a reset. */
  private fail(outcome: Outcome, reason: string | null, error?: NodeJS.ErrnoException): void {
    if (this.outcome === null) {
      this.outcome = outcome;
      this.reason = reason;
    }
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    if (this.cancelDial) {
      this.cancelDial();
      this.cancelDial = null;
      this.pool!.attemptAbandoned(this.attempt!);
      this.attempt = null;
    }
    this.phase = Phase.Closed;
    const reset = error?.code === 'ECONNRESET';
    closeSocket(this.client, reset);
    if (this.backend) closeSocket(this.backend, reset);
  }

  private readonly onSocketClose = (): void => {
    if (--this.openSockets > 0) return;
    // The client left while a backend was being dialled: stop dialling.
    if (this.phase === Phase.Connecting) this.fail('client_closed', null);
    const outcome = this.outcome ?? (this.phase === Phase.Spliced ? 'ok' : 'client_closed');
    this.phase = Phase.Closed;
    if (this.attempt) this.pool!.release(this.attempt);
    if (this.admitted) this.host.releaseClient(this.clientAddress);
    this.host.connectionEnded(this);
    const { client, hello } = this;
    this.host.observer.connectionClosed({
      listener: this.settings.listener,
      client: formatPeer(this.clientAddress, this.clientPort),
      sni: hello?.serverName ?? null,
      alpn: hello?.alpn ?? [],
      route: this.routePattern,
      backend: this.backendAddress,
      attempts: this.attempts,
      bytesFromClient: client.bytesRead,
      bytesToClient: client.bytesWritten,
      durationMs: Math.round((performance.now() - this.startedAt) * 10) / 10,
      outcome,
      reason: this.reason,
    });
  };
}
