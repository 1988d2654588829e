import type { ListenerConfig, ProxyConfig } from '../config/types.js';
import { listenerSocketKey } from '../config/diff.js';
import { formatAddress } from '../config/values.js';
import { BackendRegistry, type BackendStatus } from '../backends/health.js';
import { HostResolver } from '../backends/host-resolver.js';
import { ListenError, ShuttingDownError } from '../errors.js';
import { DescriptorBudget } from '../listeners/descriptor-budget.js';
import type { Listener } from '../listeners/listener.js';
import { type ListenerContext, type ListenSource, TcpListener } from '../listeners/tcp-listener.js';
import { UdpListener } from '../listeners/udp-listener.js';
import type { LiveConnection, Outcome } from '../pipeline/record.js';
import type { ProxyObserver } from '../pipeline/observer.js';
import { NO_TLS_MATERIAL, type TlsMaterial } from '../tls/certificates.js';

/** What one `apply` changed, by listener name. */
export interface ApplySummary {
  generation: number;
  added: string[];
  removed: string[];
  kept: string[];
  /** Kept listeners whose routes, backends or timeouts differ. */
  changed: string[];
  /** Bound address of every added listener, by name (the real port when the config asked for port 0). */
  bound: Record<string, string>;
  /** Listeners that started taking QUIC on UDP (at the same address), by name. */
  boundQuic: Record<string, string>;
}

export interface SupervisorOptions {
  /** null where the descriptor limit is unknown (default: this process's). */
  descriptors?: DescriptorBudget | null;
  /** Run the active health checks here (default); a worker gets their verdicts from the primary instead. */
  activeChecks?: boolean;
  /** Listen on sockets shared by every worker process (node:cluster) rather than bound by this process alone. */
  sharedSockets?: boolean;
}

/** A config bound but not yet running: what `commit` opens or `rollback` closes. */
export interface PreparedConfig {
  readonly config: ProxyConfig;
  readonly tls: TlsMaterial;
  readonly next: ReadonlyMap<string, ListenerConfig>;
  /** The listeners bound for it, by key (a QUIC side under its TCP side's key with QUIC_KEY before it). */
  readonly added: ReadonlyMap<string, Listener>;
}

/** After `drainTimeout` the rest are closed; a socket that never reports its close must not hold the exit longer than this. */
const CLOSE_GRACE = 1_000;

/** A listener's QUIC side is a listener of its own (on UDP), kept under its TCP side's key with this prefix. */
const QUIC_KEY = 'quic ';

/** The listeners a config asks for, by key: each TLS/HTTP listener, and right after it its QUIC side where it has one. */
function listenersOf(config: ProxyConfig): Map<string, ListenerConfig> {
  const listeners = new Map<string, ListenerConfig>();
  for (const listener of config.listeners) {
    const key = listenerSocketKey(listener);
    listeners.set(key, listener);
    if (listener.quic) listeners.set(QUIC_KEY + key, listener);
  }
  return listeners;
}

/**
 * Every datagram of a QUIC flow must reach the one process that holds the
 * flow, which a UDP socket shared by worker processes cannot promise.
 */
function quicNeedsOneProcess(listener: ListenerConfig): ListenError {
  const address = `udp ${formatAddress(listener.listen.host, listener.listen.port)}`;
  const cause = new Error('quic with workers');
  return new ListenError(
    listener.name,
    address,
    'EWORKERS',
    cause,
    '"quic: true" needs "workers: 1": every datagram of a flow must reach the process that holds it',
  );
}

/** The port a QUIC side binds: its TCP side's, which knows the real one when the config said 0. */
function portOf(listener: Listener): number {
  const address = listener.boundAddress();
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/**
 * Owns the listeners: binds, swaps and retires them as configs are applied,
 * and drains them at shutdown. All listener lifecycle lives here.
 */
export class Supervisor {
  generation = 0;
  config: ProxyConfig | null = null;
  private readonly active = new Map<string, Listener>();
  /** Removed listeners whose connections have not all ended yet. */
  private readonly retired = new Set<Listener>();
  /** Backend health and load and the descriptor budget, shared by all listeners and kept across reloads. */
  private readonly context: ListenerContext;
  private readonly registry: BackendRegistry;
  /** Backend names resolved and cached; the config's `resolvers` take effect when it commits. */
  private readonly resolver = new HostResolver();
  private stopping = false;

  constructor(observer: ProxyObserver, options: SupervisorOptions = {}) {
    this.registry = new BackendRegistry(observer, { resolver: this.resolver, activeChecks: options.activeChecks ?? true });
    const descriptors = options.descriptors === undefined ? DescriptorBudget.forThisProcess() : options.descriptors;
    this.context = { observer, registry: this.registry, resolver: this.resolver, descriptors, sharedSockets: options.sharedSockets ?? false };
  }

  /** An active health check's verdict on `address`, reached elsewhere (a worker's checks run in the primary). */
  setBackendHealth(address: string, healthy: boolean): void {
    this.registry.setHealthy(address, healthy);
  }

  /**
   * Makes `config` the running one, all or nothing: `prepare`, then `commit`.
   * The `ListenError` of an address that cannot be bound is rethrown (a
   * `ShuttingDownError` once shutdown began), and nothing changes.
   */
  async apply(config: ProxyConfig, tls: TlsMaterial = NO_TLS_MATERIAL, inherited: ReadonlyMap<string, ListenSource> = new Map()): Promise<ApplySummary> {
    return this.commit(await this.prepare(config, tls, inherited));
  }

  /**
   * Binds the addresses `config` adds (their clients wait unread) without
   * touching what runs; if one fails, those just bound are closed and the
   * error is rethrown. The result is then committed or rolled back, before
   * any other config is prepared.
   * `tls`: the certificates this config's terminating routes serve, already loaded.
   * `inherited` maps listener names to sockets passed by the service manager.
   */
  async prepare(config: ProxyConfig, tls: TlsMaterial = NO_TLS_MATERIAL, inherited: ReadonlyMap<string, ListenSource> = new Map()): Promise<PreparedConfig> {
    const next = listenersOf(config);
    const addedByKey = new Map<string, Listener>();
    try {
      if (this.stopping) throw new ShuttingDownError();
      for (const [key, listenerConfig] of next) {
        if (this.active.has(key)) continue;
        if (key.startsWith(QUIC_KEY) && this.context.sharedSockets) throw quicNeedsOneProcess(listenerConfig);
        const listener = key.startsWith(QUIC_KEY)
          ? new UdpListener(
              listenerConfig,
              this.context,
              tls,
              portOf(addedByKey.get(key.slice(QUIC_KEY.length)) ?? this.active.get(key.slice(QUIC_KEY.length))!),
            )
          : new TcpListener(listenerConfig, this.context, tls, inherited.get(listenerConfig.name) ?? null);
        addedByKey.set(key, listener);
        await listener.listen();
      }
      if (this.stopping) throw new ShuttingDownError();
    } catch (error) {
      this.rollback({ config, tls, next, added: addedByKey });
      throw this.explainOwnPort(error);
    }
    return { config, tls, next, added: addedByKey };
  }

  /** Closes what `prepare` bound; the running config stays as it was. */
  rollback(prepared: PreparedConfig): void {
    for (const listener of prepared.added.values()) {
      listener.stopAccepting();
      listener.terminateAll('shutdown');
    }
    // The listeners just built registered their backends: forget those again (health checks stay stopped at shutdown).
    if (!this.stopping) this.registry.sync(this.config ?? { workers: 1, listeners: [], admin: null, stateDir: null, resolvers: [] });
  }

  /** Opens the listeners `prepare` bound, gives kept ones their new settings and retires the removed ones, at once. */
  commit({ config, tls, next, added: addedByKey }: PreparedConfig): ApplySummary {
    this.registry.sync(config);
    this.resolver.useServers(config.resolvers);
    const summary: ApplySummary = { generation: ++this.generation, added: [], removed: [], kept: [], changed: [], bound: {}, boundQuic: {} };
    for (const [key, listener] of addedByKey) {
      listener.open();
      this.active.set(key, listener);
      if (key.startsWith(QUIC_KEY)) {
        summary.boundQuic[listener.config.name] = listener.boundAddress();
        continue;
      }
      summary.added.push(listener.config.name);
      summary.bound[listener.config.name] = listener.boundAddress();
    }
    for (const [key, listener] of this.active) {
      const listenerConfig = next.get(key);
      const quicSide = key.startsWith(QUIC_KEY);
      if (listenerConfig === undefined) {
        this.active.delete(key);
        listener.stopAccepting();
        this.retire(listener);
        if (!quicSide) summary.removed.push(listener.config.name);
      } else if (!addedByKey.has(key)) {
        if (!quicSide && JSON.stringify(listener.config) !== JSON.stringify(listenerConfig)) summary.changed.push(listenerConfig.name);
        listener.update(listenerConfig, tls);
        if (!quicSide) summary.kept.push(listenerConfig.name);
      }
    }
    this.config = config;
    return summary;
  }

  /** A port "in use" by one of this proxy's own listeners: say so, not "another process". */
  private explainOwnPort(error: unknown): unknown {
    if (!(error instanceof ListenError) || error.errno !== 'EADDRINUSE') return error;
    const port = Number(error.address.slice(error.address.lastIndexOf(':') + 1));
    const owner = [...this.active.values()].find((listener) => listener.boundAddress().endsWith(`:${port}`));
    if (!owner) return error;
    const hint = `the port is held by this proxy's listener "${owner.config.name}" on ${owner.boundAddress()}; changing the host of a listener on the same port needs a restart`;
    return new ListenError(error.listener, error.address, error.errno, error.cause as Error, hint);
  }

  /** Open connections across active and retired listeners. */
  openConnections(): number {
    let count = 0;
    for (const listener of this.listeners()) count += listener.openConnections();
    return count;
  }

  /** Open connections by listener name (retired listeners included). */
  openConnectionsByListener(): Array<{ listener: string; open: number }> {
    const counts = new Map<string, number>();
    for (const listener of this.listeners()) counts.set(listener.config.name, (counts.get(listener.config.name) ?? 0) + listener.openConnections());
    return [...counts].map(([listener, open]) => ({ listener, open }));
  }

  /** Each listener's open connections and `drainTimeout` (retired listeners included): what a shutdown would wait for. */
  drainState(): Array<{ listener: string; open: number; drainTimeout: number }> {
    return [...this.listeners()].map((listener) => ({
      listener: listener.config.name,
      open: listener.openConnections(),
      drainTimeout: listener.config.drainTimeout,
    }));
  }

  backendHealth(): BackendStatus[] {
    return this.registry.health();
  }

  /** Drains `address` (or puts it back into rotation); null when the running config has no such backend. */
  setBackendDrained(address: string, drained: boolean): BackendStatus | null {
    return this.registry.setDrained(address, drained);
  }

  /** The listeners serving now: name, the address actually bound, what they speak, connections open. */
  listenerStatus(): Array<{ listener: string; address: string; protocol: string; open: number }> {
    return [...this.active.values()].map((listener) => ({
      listener: listener.config.name,
      address: listener.boundAddress(),
      protocol: listener.config.protocol,
      open: listener.openConnections(),
    }));
  }

  /** Every open connection (retired listeners included), as read-only views. */
  *liveConnections(): Iterable<LiveConnection> {
    for (const listener of this.listeners()) yield* listener.liveConnections();
  }

  /**
   * Stops accepting everywhere and refuses later configs, waits for open
   * connections up to each listener's `drainTimeout`, then ends the rest.
   */
  async shutdown(): Promise<void> {
    this.stopping = true;
    const listeners = [...this.listeners()];
    for (const listener of listeners) listener.stopAccepting();
    this.registry.stop();
    await Promise.all(listeners.map((listener) => drain(listener)));
  }

  /** Ends every open connection now (a forced exit), recording `outcome`; resolves once they are all closed. */
  async terminateAll(outcome: Outcome): Promise<void> {
    const listeners = [...this.listeners()];
    for (const listener of listeners) listener.terminateAll(outcome);
    await Promise.all(listeners.map((listener) => listener.whenIdle()));
  }

  private *listeners(): Iterable<Listener> {
    yield* this.active.values();
    yield* this.retired;
  }

  private retire(listener: Listener): void {
    if (listener.openConnections() === 0) return;
    this.retired.add(listener);
    void listener.whenIdle().then(() => this.retired.delete(listener));
  }
}

function drain(listener: Listener): Promise<void> {
  return new Promise((resolve) => {
    let grace: NodeJS.Timeout | undefined;
    const terminate = setTimeout(() => {
      listener.terminateAll('shutdown');
      grace = setTimeout(resolve, CLOSE_GRACE);
    }, listener.config.drainTimeout);
    void listener.whenIdle().then(() => {
      clearTimeout(terminate);
      clearTimeout(grace);
      resolve();
    });
  });
}
