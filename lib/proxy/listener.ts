import net from 'node:net';
import type { ListenerConfig, RouteConfig } from '../config/types.js';
import { formatAddress } from '../config/values.js';
import { ListenError } from '../errors.js';
import { buildAccessCheck } from '../routing/access-list.js';
import { buildRouteTable } from '../routing/route-table.js';
import type { BackendRegistry } from '../backends/health.js';
import { BackendPool } from '../backends/pool.js';
import { canonicalAddress } from '../net/address.js';
import type { Outcome } from '../pipeline/record.js';
import { ProxyConnection, type ActiveRoute, type ConnectionHost, type ConnectionSettings, type Refusal } from './connection.js';
import type { ProxyObserver } from '../pipeline/observer.js';
import { ignoreError } from '../net/sockets.js';

/** Accepted clients held unread while the listener is at `maxConnections`, at most this many (the kernel's default backlog). */
const MAX_WAITING = 511;

/** Turns a listener's config into what its connections use: route table, balancers, access checks. */
export function connectionSettings(config: ListenerConfig, registry: BackendRegistry): ConnectionSettings {
  const activeRoute = (route: RouteConfig): ActiveRoute => ({
    hostnames: route.hostnames,
    alpn: route.alpn,
    pool: new BackendPool(route, registry),
    access: buildAccessCheck(route),
  });
  return {
    listener: config.name,
    clientHelloTimeout: config.clientHelloTimeout,
    connectTimeout: config.connectTimeout,
    idleTimeout: config.idleTimeout,
    acceptProxyProtocol: config.acceptProxyProtocol,
    trustedProxies: buildAccessCheck({ allow: config.proxyProtocolFrom, deny: [] }),
    access: buildAccessCheck(config),
    routes: buildRouteTable(config.routes.map(activeRoute), config.defaultRoute ? activeRoute(config.defaultRoute) : null),
  };
}

/**
 * One listening socket and the connections it accepted. Its settings can be
 * swapped while it runs; connections keep what they were routed with.
 */
export class Listener implements ConnectionHost {
  config: ListenerConfig;
  settings: ConnectionSettings;
  readonly observer: ProxyObserver;
  readonly connections = new Set<ProxyConnection>();
  private readonly server: net.Server;
  private readonly inherited: net.Socket | null;
  private readonly registry: BackendRegistry;
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

  /** `inherited`: a listening socket passed by the service manager, served instead of binding `config.listen`. */
  constructor(config: ListenerConfig, observer: ProxyObserver, registry: BackendRegistry, inherited: net.Socket | null = null) {
    this.config = config;
    this.observer = observer;
    this.registry = registry;
    this.inherited = inherited;
    this.settings = connectionSettings(config, registry);
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, this.onConnection);
  }

  /**
   * Binds the configured address (or takes the inherited socket); rejects
   * with a `ListenError`. Clients are held unread until `open`.
   */
  listen(): Promise<string> {
    const { host, port } = this.config.listen;
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(new ListenError(this.config.name, formatAddress(host, port), error.code ?? 'ERROR', error));
      };
      this.server.once('error', onError);
      const onListening = (): void => {
        this.server.off('error', onError);
        this.server.on('error', (error) => this.observer.listenerError(this.config.name, error));
        resolve(this.boundAddress());
      };
      if (this.inherited) this.server.listen(this.inherited, onListening);
      else this.server.listen({ host: host ?? undefined, port, exclusive: true }, onListening);
    });
  }

  /** The address actually bound ("127.0.0.1:41234"): differs from the config when it asked for port 0. */
  boundAddress(): string {
    const address = this.server.address();
    if (address === null || typeof address === 'string') return String(address);
    return formatAddress(address.address, address.port);
  }

  /** Starts serving the clients held since `listen` and those to come. */
  open(): void {
    this.opened = true;
    this.admitWaiting();
  }

  /** New connections use `config` from now on; open ones keep theirs. */
  update(config: ListenerConfig): void {
    this.config = config;
    this.settings = connectionSettings(config, this.registry);
    this.admitWaiting();
  }

  /** Stops accepting at once; open connections go on. */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  /** Resolves once no connection is open. */
  whenIdle(): Promise<void> {
    if (this.connections.size === 0 && this.waiting.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Ends every open connection now, recording `outcome`. */
  terminateAll(outcome: Outcome): void {
    for (const socket of this.waiting) socket.destroy();
    for (const connection of this.connections) connection.terminate(outcome);
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

  connectionEnded(connection: ProxyConnection): void {
    this.connections.delete(connection);
    this.admitWaiting();
    this.resolveIfIdle();
  }

  private readonly onConnection = (socket: net.Socket): void => {
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
  };

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

  private resolveIfIdle(): void {
    if (this.connections.size === 0 && this.waiting.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** A client waiting for a slot is not counted as accepted until it gets one. */
  private start(socket: net.Socket): void {
    this.observer.connectionAccepted(this.config.name);
    this.connections.add(new ProxyConnection(socket, this));
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
}
