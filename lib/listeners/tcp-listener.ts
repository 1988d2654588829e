import net from 'node:net';
import type { HostLookup } from '../backends/dial.js';
import type { BackendRegistry } from '../backends/health.js';
import type { ListenerConfig } from '../config/types.js';
import { formatAddress } from '../config/values.js';
import { ListenError } from '../errors.js';
import { canonicalAddress } from '../net/address.js';
import { ignoreError } from '../net/sockets.js';
import { Connection, type ConnectionHost, type Refusal } from '../pipeline/connection.js';
import type { ProxyObserver } from '../pipeline/observer.js';
import type { LiveConnection, Outcome } from '../pipeline/record.js';
import type { ListenerSettings } from '../pipeline/settings.js';
import type { DescriptorBudget } from './descriptor-budget.js';
import type { Listener } from './listener.js';
import { listenerSettings } from './settings.js';
import type { TlsMaterial } from '../tls/certificates.js';

/** Accepted clients held unread while the listener is at `maxConnections` or not yet open, at most this many (the kernel's default backlog). */
const MAX_WAITING = 511;

/** Idle time before keepalive probes start, so a peer that vanished (power loss, NAT timeout) is noticed. */
const KEEPALIVE_DELAY_MS = 60_000;
/**
 * How often backend sockets get TCP keepalive switched on. Setting it costs
 * four system calls per socket, so it is done for the connections that live
 * through one interval rather than at every dial: short connections, most of
 * them, never pay. (Client sockets inherit it from the listening socket.)
 */
const KEEPALIVE_SWEEP_MS = 30_000;

/** The listening socket's handle, where Node has one: options set on it are inherited by every accepted socket (Linux). */
interface ListeningHandle {
  setNoDelay?(enable: boolean): number;
  setKeepAlive?(enable: boolean, initialDelaySeconds: number): number;
}

/**
 * A listening socket passed by the service manager: wrapped in this process,
 * or (in a worker process) its descriptor number in the primary, which
 * node:cluster shares with every worker.
 */
export type ListenSource = net.Socket | { fd: number };

/** What every listener of a process shares: its observer, backend states, descriptor budget. */
export interface ListenerContext {
  observer: ProxyObserver;
  registry: BackendRegistry;
  /** Resolves backend names (cached), shared by all listeners and kept across reloads. */
  resolver: HostLookup;
  /** null where the descriptor limit is unknown: nothing is refused for it. */
  descriptors: DescriptorBudget | null;
  /**
   * A worker process: the listening socket is the primary's, shared with
   * every worker (node:cluster without round-robin), and the kernel hands
   * each connection to one of them. Otherwise this process binds it alone.
   */
  sharedSockets?: boolean;
}

/**
 * A TCP listener: accepts clients, holds them while the listener is not open
 * or at `maxConnections`, refuses them at the descriptor limit, and serves
 * each as a `Connection` whose first bytes are read in the protocol its
 * settings name (a TLS ClientHello today). Its settings can be swapped while
 * it runs; connections keep what they were routed with.
 */
export class TcpListener implements Listener, ConnectionHost {
  config: ListenerConfig;
  settings: ListenerSettings;
  readonly observer: ProxyObserver;
  /** The open connections: what limits count, what shutdown ends, and what the admin endpoint lists (no other registry is kept). */
  private readonly connections = new Set<Connection>();
  private readonly context: ListenerContext;
  private readonly server: net.Server;
  private readonly inherited: ListenSource | null;
  private readonly perClient = new Map<string, number>();
  /**
   * Clients accepted while at `maxConnections` or before `open`, not read
   * from until they may start. Node cannot stop accepting on a listening
   * socket without closing it, so they wait here instead of in the kernel
   * backlog; to the client it looks the same (connected, not answered yet).
   */
  private readonly waiting = new Set<net.Socket>();
  /** Whether accepted clients may start: a listener bound for a config being applied waits until it is committed. */
  private opened = false;
  private idleWaiters: Array<() => void> = [];
  private keepAliveSweep: NodeJS.Timeout | null = null;
  /** Accepted sockets need TCP_NODELAY and keepalive set one by one (they could not be inherited). */
  private perSocketOptions = true;

  /** `inherited`: a listening socket passed by the service manager, served instead of binding `config.listen`. */
  constructor(config: ListenerConfig, context: ListenerContext, tls: TlsMaterial, inherited: ListenSource | null = null) {
    this.config = config;
    this.context = context;
    this.observer = context.observer;
    this.inherited = inherited;
    this.settings = listenerSettings(config, { registry: context.registry, tls, resolver: context.resolver });
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accepted(socket));
  }

  listen(): Promise<string> {
    const { host, port } = this.config.listen;
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(new ListenError(this.config.name, formatAddress(host, port), error.code ?? 'ERROR', error));
      };
      this.server.once('error', onError);
      const onListening = (): void => {
        this.server.off('error', onError);
        this.setSocketOptions();
        this.server.on('error', (error) => this.observer.listenerError(this.config.name, error));
        resolve(this.boundAddress());
      };
      if (this.inherited) this.server.listen(this.inherited, onListening);
      else this.server.listen({ host: host ?? undefined, port, exclusive: this.context.sharedSockets !== true }, onListening);
    });
  }

  /**
   * TCP_NODELAY (a relayed TLS record must not wait for an ACK: Nagle plus
   * delayed ACKs can hold a small write 40 ms) and keepalive, set once on the
   * listening socket: Linux copies both to every socket it accepts, which
   * saves five system calls per connection. Where Node offers no handle to set
   * them on, each accepted socket gets them instead.
   */
  private setSocketOptions(): void {
    const handle = (this.server as unknown as { _handle?: ListeningHandle })._handle;
    const inherited = process.platform === 'linux' && handle?.setNoDelay?.(true) === 0 && handle.setKeepAlive?.(true, KEEPALIVE_DELAY_MS / 1000) === 0;
    this.perSocketOptions = !inherited;
  }

  boundAddress(): string {
    const address = this.server.address();
    if (address === null || typeof address === 'string') return String(address);
    return formatAddress(address.address, address.port);
  }

  open(): void {
    this.opened = true;
    this.keepAliveSweep = setInterval(() => this.sweepKeepAlive(), KEEPALIVE_SWEEP_MS);
    this.keepAliveSweep.unref();
    this.admitWaiting();
  }

  update(config: ListenerConfig, tls: TlsMaterial): void {
    this.config = config;
    this.settings = listenerSettings(config, { registry: this.context.registry, tls, resolver: this.context.resolver });
    this.admitWaiting();
  }

  stopAccepting(): void {
    if (this.server.listening) this.server.close();
    this.resolveIfIdle();
  }

  openConnections(): number {
    return this.connections.size;
  }

  liveConnections(): Iterable<LiveConnection> {
    return this.connections.values();
  }

  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  terminateAll(outcome: Outcome): void {
    for (const socket of this.waiting) socket.destroy();
    for (const connection of this.connections) connection.finish(outcome, null);
  }

  admitClient(clientAddress: string): Refusal | null {
    const refusal = this.refusal(clientAddress);
    if (refusal === null) this.perClient.set(clientAddress, (this.perClient.get(clientAddress) ?? 0) + 1);
    return refusal;
  }

  releaseClient(clientAddress: string): void {
    const count = this.perClient.get(clientAddress) ?? 1;
    if (count <= 1) this.perClient.delete(clientAddress);
    else this.perClient.set(clientAddress, count - 1);
  }

  connectionEnded(connection: Connection): void {
    this.connections.delete(connection);
    this.context.descriptors?.release();
    this.admitWaiting();
    this.resolveIfIdle();
  }

  private accepted(socket: net.Socket): void {
    // A client that will be refused anyway is refused now, not after waiting for a slot.
    if (this.opened && (!this.atCapacity() || this.refusesAtOnce(socket))) {
      this.start(socket);
      return;
    }
    if (this.waiting.size >= MAX_WAITING) {
      socket.resetAndDestroy();
      return;
    }
    this.waiting.add(socket);
    socket.on('error', ignoreError);
    socket.once('close', () => {
      this.waiting.delete(socket);
      this.resolveIfIdle();
    });
  }

  /** Whether the pipeline would close this client before reading from it (access list or per-client limit). */
  private refusesAtOnce(socket: net.Socket): boolean {
    return !this.settings.acceptProxyProtocol && this.refusal(canonicalAddress(socket.remoteAddress)) !== null;
  }

  private refusal(clientAddress: string): Refusal | null {
    if (this.settings.access && !this.settings.access(clientAddress)) return 'denied';
    const limit = this.config.maxConnectionsPerClient;
    if (limit > 0 && (this.perClient.get(clientAddress) ?? 0) >= limit) return 'client_limit';
    return null;
  }

  private atCapacity(): boolean {
    const limit = this.config.maxConnections;
    return limit > 0 && this.connections.size >= limit;
  }

  private isIdle(): boolean {
    return this.connections.size === 0 && this.waiting.size === 0;
  }

  private resolveIfIdle(): void {
    if (!this.isIdle()) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
    // A listener that stopped accepting is done once idle: nothing is left to keep alive.
    if (!this.server.listening && this.keepAliveSweep) {
      clearInterval(this.keepAliveSweep);
      this.keepAliveSweep = null;
    }
  }

  /** A client waiting for a slot is not counted as accepted until it gets one. */
  private start(socket: net.Socket): void {
    if (this.perSocketOptions) {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    }
    const { descriptors } = this.context;
    if (descriptors && !descriptors.reserve()) {
      // At the descriptor limit: refused here, where it is seen, rather than by libuv, where it is not.
      socket.on('error', ignoreError);
      socket.resetAndDestroy();
      this.observer.connectionDropped(this.config.name, 'fd_limit');
      return;
    }
    this.observer.connectionAccepted(this.config.name);
    const connection = new Connection(socket, this);
    this.connections.add(connection);
    connection.serve();
  }

  private admitWaiting(): void {
    for (const socket of this.waiting) {
      if (!this.opened || this.atCapacity()) return;
      this.waiting.delete(socket);
      socket.removeAllListeners('close');
      socket.off('error', ignoreError);
      if (!socket.destroyed) this.start(socket);
    }
  }

  private sweepKeepAlive(): void {
    for (const connection of this.connections) connection.enableBackendKeepAlive(KEEPALIVE_DELAY_MS);
  }
}
