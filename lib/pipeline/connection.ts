import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { canonicalAddress, formatPeer } from '../net/address.js';
import type { ProxiedAddresses } from '../net/proxy-protocol.js';
import { closeSocket } from '../net/sockets.js';
import { match } from './match.js';
import type { ProxyObserver } from './observer.js';
import { type Preamble, PreambleReader } from './preamble.js';
import { type ConnectionSnapshot, type ConnectionState, type LiveConnection, nextConnectionId, type Outcome } from './record.js';
import type { ListenerSettings } from './settings.js';
import type { Stage } from './target.js';

/** Why a client is closed before a byte of its hello is read. */
export type Refusal = 'denied' | 'client_limit';

/** What a connection asks of the listener that accepted it. */
export interface ConnectionHost {
  /** The settings of the config running now. */
  readonly settings: ListenerSettings;
  readonly observer: ProxyObserver;
  /** Counts a connection for `clientAddress`, or says why that client is refused (nothing counted then). */
  admitClient(clientAddress: string): Refusal | null;
  releaseClient(clientAddress: string): void;
  connectionEnded(connection: Connection): void;
}

const kConnection = Symbol('connection');
type ClientSocket = net.Socket & { [kConnection]: Connection };

const NO_PROTOCOLS: string[] = [];

/** How long a connection answered and closed keeps reading what the client still sends. */
const LINGER_MS = 2_000;

function discard(): void {}

/**
 * One client connection: the context its parts share, and the one place its
 * outcome is decided and its record emitted. The path is short: admit the
 * client, read the preamble (peek only), match a target, hand the connection
 * to it; `finish` (early) or the last socket's close (normal end) records it.
 */
export class Connection implements LiveConnection {
  readonly id = nextConnectionId();
  /** The client's TCP socket: its bytes are the record's, its close is the connection's. */
  readonly client: net.Socket;
  /**
   * Where the client's bytes are read and written: the socket itself, or the
   * TLS session over it when a target terminates TLS.
   */
  stream: net.Socket;
  readonly host: ConnectionHost;
  /** The settings it was accepted with, then those it was routed with. */
  settings: ListenerSettings;
  readonly startedAt = performance.now();
  /** The client's address: the socket's peer, or the one a PROXY header named. */
  clientAddress: string;
  clientPort: number | undefined;
  /** Set from a PROXY header: the addresses the upstream load balancer saw. */
  proxied: ProxiedAddresses | null = null;
  /** Bytes of the incoming PROXY header, which are not the client's. */
  proxyHeaderBytes = 0;
  sni: string | null = null;
  alpn: string[] = NO_PROTOCOLS;
  /** The pattern that matched ("default" for the default route), null before matching or when none did. */
  route: string | null = null;
  /** The backend dialled last: the one spliced to, or the last that failed. */
  backend: string | null = null;
  /** Backends dialled (more than 1 when failover happened). */
  attempts = 0;
  /** Bytes flow between the client and a backend: from now on the outcome is `ok` unless something fails. */
  relaying = false;
  private stage: Stage | null = null;
  private backendSocket: net.Socket | null = null;
  private outcome: Outcome | null = null;
  private reason: string | null = null;
  private admitted = false;
  /** The preamble is read and the connection matched. */
  private routed = false;
  private keptAlive = false;
  private openSockets = 1;

  constructor(client: net.Socket, host: ConnectionHost) {
    this.client = client;
    this.stream = client;
    this.host = host;
    this.settings = host.settings;
    this.clientAddress = canonicalAddress(client.remoteAddress);
    this.clientPort = client.remotePort;
    (client as ClientSocket)[kConnection] = this;
    client.on('error', clientOnError);
    client.on('close', socketOnClose);
    client.on('timeout', clientOnTimeout);
  }

  /** Starts the pipeline: a client that is refused is closed before a byte of it is read. */
  serve(): void {
    const { settings } = this;
    if (settings.acceptProxyProtocol) {
      // The peer is a load balancer: the client it speaks for is known only from the PROXY header.
      if (settings.trustedProxies && !settings.trustedProxies(this.clientAddress)) {
        this.finish('denied', 'untrusted_proxy');
        return;
      }
    } else if (!this.admit()) {
      return;
    }
    this.stage = new PreambleReader(this, settings.protocol, settings.acceptProxyProtocol, settings.clientHelloTimeout);
  }

  /** A PROXY header named the client (null: it did not, keep the peer's address); false if that client is refused. */
  identifyClient(addresses: ProxiedAddresses | null, headerBytes: number): boolean {
    this.proxyHeaderBytes = headerBytes;
    if (addresses) {
      this.proxied = addresses;
      this.clientAddress = canonicalAddress(addresses.source.address);
      this.clientPort = addresses.source.port;
    }
    return this.admit();
  }

  /** The preamble is read: route with the config running now (a reload during the hello counts) and hand over. */
  preambleRead(preamble: Preamble): void {
    this.stage = null;
    this.routed = true;
    this.settings = this.host.settings;
    const { request } = preamble;
    this.sni = request.serverName;
    this.alpn = request.alpn;
    const { target, route } = match(this.settings, request, this.clientAddress);
    this.route = route;
    target.handle(this, preamble);
  }

  /** The target's work for this connection, stopped when the connection finishes. */
  setStage(stage: Stage | null): void {
    this.stage = stage;
  }

  /** From now on the client's bytes go through `stream` (a TLS session over the socket): its errors and timeouts are the client's. */
  useClientStream(stream: net.Socket): void {
    this.stream = stream;
    (stream as ClientSocket)[kConnection] = this;
    stream.on('error', clientOnError);
    stream.on('timeout', clientOnTimeout);
  }

  /** Counts `socket` as part of this connection: it closes with it, and the record waits for its close. */
  adoptBackend(socket: net.Socket): void {
    this.backendSocket = socket;
    this.openSockets++;
    socket.on('close', socketOnClose);
    (socket as ClientSocket)[kConnection] = this;
  }

  /** Gives `socket` up (a backend abandoned for the next one); the caller closes it. */
  releaseBackend(socket: net.Socket): void {
    socket.off('close', socketOnClose);
    this.backendSocket = null;
    this.openSockets--;
  }

  /** Turns TCP keepalive on for the backend side of a relaying connection (once), so a backend that vanished is noticed. */
  enableBackendKeepAlive(delay: number): void {
    if (!this.relaying || this.keptAlive) return;
    this.keptAlive = true;
    this.backendSocket?.setKeepAlive(true, delay);
  }

  /**
   * Ends the connection now for `outcome` (the first cause recorded wins):
   * stops what runs and closes both sides, passing a peer's reset on as a
   * reset. The record follows once every socket has closed.
   */
  finish(outcome: Outcome, reason: string | null, error?: NodeJS.ErrnoException): void {
    this.decide(outcome, reason);
    this.stopStage();
    const reset = error?.code === 'ECONNRESET';
    if (this.stream !== this.client) this.stream.destroy();
    closeSocket(this.client, reset);
    if (this.backendSocket) closeSocket(this.backendSocket, reset);
  }

  /**
   * Ends the connection after writing `bytes` to the client (a TLS alert, an
   * HTTP answer). The close lingers, as nginx's does: a client still sending
   * (a request body) would get a reset that can destroy the answer before it
   * is read, so what it sends is read and dropped until it closes too, for at
   * most LINGER_MS.
   */
  respondAndClose(bytes: Buffer, outcome: Outcome, reason: string | null): void {
    this.decide(outcome, reason);
    this.stopStage();
    const { stream } = this;
    stream.on('data', discard);
    stream.setTimeout(LINGER_MS);
    stream.resume();
    stream.end(bytes);
  }

  closeByAdmin(reason: string): void {
    this.finish('closed_by_admin', reason);
  }

  snapshot(now: number): ConnectionSnapshot {
    const { client } = this;
    return {
      id: this.id,
      listener: this.settings.listener,
      client: formatPeer(this.clientAddress, this.clientPort),
      sni: this.sni,
      alpn: this.alpn,
      route: this.route,
      backend: this.backend,
      state: this.state(),
      // The sockets' own counters, read now: nothing is counted per chunk for this.
      bytesFromClient: client.bytesRead - this.proxyHeaderBytes,
      bytesToClient: client.bytesWritten,
      ageMs: Math.round(now - this.startedAt),
    };
  }

  private state(): ConnectionState {
    if (this.outcome !== null) return 'closing';
    if (this.relaying) return 'relaying';
    return this.routed ? 'connecting' : 'preamble';
  }

  private decide(outcome: Outcome, reason: string | null): void {
    if (this.outcome !== null) return;
    this.outcome = outcome;
    this.reason = reason;
  }

  private stopStage(): void {
    const { stage } = this;
    if (stage === null) return;
    this.stage = null;
    stage.stop();
  }

  private admit(): boolean {
    const refusal = this.host.admitClient(this.clientAddress);
    if (refusal !== null) {
      this.finish(refusal, refusal === 'denied' ? 'listener_access_list' : null);
      return false;
    }
    this.admitted = true;
    return true;
  }

  onClientError(error: NodeJS.ErrnoException): void {
    const code = error.code ?? error.message;
    if (!this.relaying) this.finish('client_closed', code, error);
    // Clients such as curl reset instead of closing once they have their answer: the client decides when it is
    // done, so that is a normal end (the reset is still passed on to the backend).
    else if (error.code === 'ECONNRESET') this.finish('ok', 'client_reset', error);
    else this.finish('client_error', code, error);
  }

  onTimeout(): void {
    // A splice arms the client socket's timer: with `idleTimeout`, and with `halfCloseTimeout` once a side is done.
    const { stream } = this;
    this.finish('idle_timeout', stream.readableEnded || stream.writableEnded ? 'half_closed' : null);
  }

  onSocketClose(): void {
    if (--this.openSockets > 0) return;
    // The last socket closed: whatever still runs (a dial after the client left) stops, and the record is written.
    this.stopStage();
    if (this.admitted) this.host.releaseClient(this.clientAddress);
    const { client } = this;
    this.host.observer.connectionClosed({
      listener: this.settings.listener,
      client: formatPeer(this.clientAddress, this.clientPort),
      sni: this.sni,
      alpn: this.alpn,
      route: this.route,
      backend: this.backend,
      attempts: this.attempts,
      bytesFromClient: client.bytesRead - this.proxyHeaderBytes,
      bytesToClient: client.bytesWritten,
      durationMs: Math.round((performance.now() - this.startedAt) * 10) / 10,
      outcome: this.outcome ?? (this.relaying ? 'ok' : 'client_closed'),
      reason: this.reason,
    });
    this.host.connectionEnded(this);
  }
}

// Shared handlers (no closure per connection); `this` is the socket.
function clientOnError(this: ClientSocket, error: NodeJS.ErrnoException): void {
  this[kConnection].onClientError(error);
}

function clientOnTimeout(this: ClientSocket): void {
  this[kConnection].onTimeout();
}

function socketOnClose(this: ClientSocket): void {
  this[kConnection].onSocketClose();
}
