import net from 'node:net';
import type { ListenerConfig } from '../config/types.js';
import { formatAddress } from '../config/values.js';
import { buildRouteTable } from '../routing/route-table.js';
import { BackendPool } from './backend-pool.js';
import { ProxyConnection, type ActiveRoute, type ConnectionObserver, type ConnectionSettings, type Outcome } from './connection.js';

const listenHints: Record<string, string> = {
  EADDRINUSE: 'address already in use: another process is listening there (find it with `ss -ltnp`)',
  EACCES:
    'permission denied: ports below 1024 need privileges: run under systemd (socket activation or AmbientCapabilities=CAP_NET_BIND_SERVICE) or grant node the capability with `sudo setcap cap_net_bind_service=+ep "$(command -v node)"`',
  EADDRNOTAVAIL: 'address not available: no local interface has that address',
};

/** Binding failed; the message is one line an operator can act on. */
export class ListenError extends Error {
  constructor(
    readonly listener: string,
    readonly address: string,
    readonly code: string,
    cause: Error,
  ) {
    super(`cannot listen on ${address} (listener "${listener}"): ${listenHints[code] ?? cause.message}`, { cause });
  }
}

/** Turns a listener's config into what its connections use (route table with balancers). */
export function connectionSettings(config: ListenerConfig): ConnectionSettings {
  const activeRoute = (route: ListenerConfig['routes'][number]): ActiveRoute => ({ hostnames: route.hostnames, pool: new BackendPool(route.backends) });
  return {
    listener: config.name,
    clientHelloTimeout: config.clientHelloTimeout,
    connectTimeout: config.connectTimeout,
    idleTimeout: config.idleTimeout,
    routes: buildRouteTable(config.routes.map(activeRoute), config.defaultRoute ? activeRoute(config.defaultRoute) : null),
  };
}

/**
 * One listening socket and the connections it accepted. Its settings can be
 * swapped while it runs; connections keep what they were routed with.
 */
export class Listener {
  config: ListenerConfig;
  settings: ConnectionSettings;
  readonly connections = new Set<ProxyConnection>();
  private readonly server: net.Server;
  private readonly observer: ConnectionObserver;
  private readonly forget = (connection: ProxyConnection): void => {
    this.connections.delete(connection);
    if (this.connections.size === 0) this.idleWaiters.splice(0).forEach((resolve) => resolve());
  };
  private idleWaiters: Array<() => void> = [];

  constructor(config: ListenerConfig, observer: ConnectionObserver) {
    this.config = config;
    this.settings = connectionSettings(config);
    this.observer = observer;
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      this.connections.add(new ProxyConnection(socket, this, this.observer, this.forget));
    });
    this.server.on('error', (error) => observer.listenerError(config.name, error));
  }

  /** Binds the configured address; rejects with a `ListenError`. */
  listen(): Promise<string> {
    const { host, port } = this.config.listen;
    const requested = formatAddress(host, port);
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(new ListenError(this.config.name, requested, error.code ?? 'ERROR', error));
      };
      this.server.once('error', onError);
      this.server.listen({ host: host ?? undefined, port, exclusive: true }, () => {
        this.server.off('error', onError);
        resolve(this.boundAddress());
      });
    });
  }

  /** The address actually bound ("127.0.0.1:41234"): differs from the config when it asked for port 0. */
  boundAddress(): string {
    const address = this.server.address();
    if (address === null || typeof address === 'string') return String(address);
    return formatAddress(address.address, address.port);
  }

  /** New connections use `config` from now on; open ones keep theirs. */
  update(config: ListenerConfig): void {
    this.config = config;
    this.settings = connectionSettings(config);
  }

  /** Stops accepting at once; open connections go on. */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  /** Resolves once no connection is open. */
  whenIdle(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Ends every open connection now, recording `outcome`. */
  terminateAll(outcome: Outcome): void {
    for (const connection of this.connections) connection.terminate(outcome);
  }
}
