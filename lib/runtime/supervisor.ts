import type { ListenerConfig, ProxyConfig } from '../config/types.js';
import { formatAddress } from '../config/values.js';
import { BackendRegistry } from '../backends/health.js';
import { ListenError, ShuttingDownError } from '../errors.js';
import { DescriptorBudget } from '../listeners/descriptor-budget.js';
import type { Listener } from '../listeners/listener.js';
import { type ListenerContext, type ListenSource, TcpListener } from '../listeners/tcp-listener.js';
import type { Outcome } from '../pipeline/record.js';
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
  readonly added: readonly Listener[];
}

/** After `drainTimeout` the rest are closed; a socket that never reports its close must not hold the exit longer than this. */
const CLOSE_GRACE = 1_000;

/**
 * A listener keeps its socket across configs while its address stays the
 * same; a port-0 listener (any free port) is identified by name as well,
 * since its address says nothing.
 */
function listenerKey(config: ListenerConfig): string {
  const address = formatAddress(config.listen.host, config.listen.port);
  return config.listen.port === 0 ? `${config.name}@${address}` : address;
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
  private stopping = false;

  constructor(observer: ProxyObserver, options: SupervisorOptions = {}) {
    this.registry = new BackendRegistry(observer, { activeChecks: options.activeChecks ?? true });
    const descriptors = options.descriptors === undefined ? DescriptorBudget.forThisProcess() : options.descriptors;
    this.context = { observer, registry: this.registry, descriptors, sharedSockets: options.sharedSockets ?? false };
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
    const next = new Map(config.listeners.map((listener) => [listenerKey(listener), listener]));
    const added: Listener[] = [];
    try {
      if (this.stopping) throw new ShuttingDownError();
      for (const [key, listenerConfig] of next) {
        if (this.active.has(key)) continue;
        const listener = new TcpListener(listenerConfig, this.context, tls, inherited.get(listenerConfig.name) ?? null);
        added.push(listener);
        await listener.listen();
      }
      if (this.stopping) throw new ShuttingDownError();
    } catch (error) {
      this.rollback({ config, tls, next, added });
      throw this.explainOwnPort(error);
    }
    return { config, tls, next, added };
  }

  /** Closes what `prepare` bound; the running config stays as it was. */
  rollback(prepared: PreparedConfig): void {
    for (const listener of prepared.added) {
      listener.stopAccepting();
      listener.terminateAll('shutdown');
    }
    // The listeners just built registered their backends: forget those again (health checks stay stopped at shutdown).
    if (!this.stopping) this.registry.sync(this.config ?? { workers: 1, listeners: [], admin: null, stateDir: null });
  }

  /** Opens the listeners `prepare` bound, gives kept ones their new settings and retires the removed ones, at once. */
  commit({ config, tls, next, added }: PreparedConfig): ApplySummary {
    this.registry.sync(config);
    const summary: ApplySummary = { generation: ++this.generation, added: [], removed: [], kept: [], changed: [], bound: {} };
    for (const listener of added) {
      listener.open();
      this.active.set(listenerKey(listener.config), listener);
      summary.added.push(listener.config.name);
      summary.bound[listener.config.name] = listener.boundAddress();
    }
    for (const [key, listener] of this.active) {
      const listenerConfig = next.get(key);
      if (listenerConfig === undefined) {
        this.active.delete(key);
        listener.stopAccepting();
        this.retire(listener);
        summary.removed.push(listener.config.name);
      } else if (!added.includes(listener)) {
        if (JSON.stringify(listener.config) !== JSON.stringify(listenerConfig)) summary.changed.push(listenerConfig.name);
        listener.update(listenerConfig, tls);
        summary.kept.push(listenerConfig.name);
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

  backendHealth(): Array<{ backend: string; up: boolean }> {
    return this.registry.health();
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
