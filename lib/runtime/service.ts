import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { AdminConfig, WorkersSetting } from '../config/types.js';
import { formatAddress, formatDuration, resolveWorkers } from '../config/values.js';
import { accessLog } from '../observe/access-log.js';
import type { AdminServer } from '../observe/admin.js';
import { fanOut } from '../observe/fan-out.js';
import type { LineWriter, Logger } from '../observe/logger.js';
import { createMetrics, type ProxyMetrics } from '../observe/metrics.js';
import { ListenError } from '../errors.js';
import type { LeafIssuer } from '../tls/certificates.js';
import { defaultStateDirectory } from '../tls/state-directory.js';
import { type Generation, loadGeneration } from './generation.js';
import { liveControl, liveControlUnavailable } from './live-control.js';
import { ConfigReloader, type ReloadOutcome, type ReloadTrigger } from './reload.js';
import { onSignals } from './signals.js';
import { adoptPassedSockets, inheritedDescriptors, matchInheritedSockets, passedDescriptors } from './socket-activation.js';
import { Supervisor, type ApplySummary } from './supervisor.js';
import { monotonicMicroseconds, systemdNotifier, type Notifier } from './systemd-notify.js';
import type { ListenSource } from '../listeners/tcp-listener.js';
import type { FileWatch } from './watch.js';
import type { WorkerGroup } from './worker-group.js';

export interface ServiceOptions {
  configFile: string;
  /** Reload when the file changes (SIGHUP and POST /reload reload either way). */
  watch: boolean;
  logger: Logger;
  /** The fast path for the access log's connection lines (JSON logs only). */
  writeLine?: LineWriter | null;
  env: NodeJS.ProcessEnv;
  /** The local CA's directory from the command line: it wins over the config's `stateDir`. */
  stateDirectory?: string | null;
  /** Called once everything is closed (or on a forced exit); the caller exits the process. */
  exit(code: number): void;
  /** Worker processes from the command line (`--workers`): wins over the config's `workers`. */
  workers?: WorkersSetting | null;
  /** How workers log (they write to the same stdout). */
  log?: { logLevel: string; logFormat: string };
}

/** What runs the listeners: this process (`Supervisor`), or worker processes (`WorkerGroup`). */
type Runner = Pick<Supervisor, 'generation' | 'config' | 'openConnections' | 'drainState' | 'shutdown' | 'terminateAll'> & {
  apply(config: Generation['config'], tls: Generation['tls'], inherited?: ReadonlyMap<string, ListenSource>): Promise<ApplySummary>;
};

/** How long an exiting process waits for its last sd_notify messages (STOPPING=1) to be sent. */
const NOTIFY_CLOSE_LIMIT_MS = 3_000;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The shutdown line: how long the drain may take (the longest `drainTimeout`
 * among listeners that have open connections) and how to cut it short.
 */
export function shutdownLine(listeners: ReadonlyArray<{ open: number; drainTimeout: number }>): {
  message: string;
  openConnections: number;
  drainTimeoutMs: number;
} {
  const busy = listeners.filter((listener) => listener.open > 0);
  const openConnections = busy.reduce((sum, listener) => sum + listener.open, 0);
  const drainTimeoutMs = Math.max(0, ...busy.map((listener) => listener.drainTimeout));
  if (openConnections === 0) return { message: 'shutting down: no open connections, exiting now', openConnections, drainTimeoutMs };
  const connections = `${openConnections} open connection${openConnections === 1 ? '' : 's'}`;
  const closeThem = openConnections === 1 ? 'close it' : 'close them';
  return {
    message: `shutting down: waiting up to ${formatDuration(drainTimeoutMs)} for ${connections} (send SIGTERM or press Ctrl-C again to ${closeThem} and exit now)`,
    openConnections,
    drainTimeoutMs,
  };
}

/**
 * The running proxy: config, listeners (through the supervisor), reloads,
 * the admin endpoint, systemd integration and signals, wired together.
 */
export class ProxyService {
  private readonly options: ServiceOptions;
  private readonly logger: Logger;
  /** The listeners of this process; null when worker processes run them. */
  private supervisor: Supervisor | null = null;
  private workers: WorkerGroup | null = null;
  private runner!: Runner;
  private readonly metrics: ProxyMetrics;
  private readonly notifier: Notifier | null;
  private admin: { config: AdminConfig; server: AdminServer; address: string } | null = null;
  private reloader: ConfigReloader | null = null;
  private readonly authorities = new Map<string, Promise<LeafIssuer>>();
  private stopping = false;

  constructor(options: ServiceOptions) {
    this.options = options;
    this.logger = options.logger;
    // With workers, these come from each worker's own metrics, gathered when scraped.
    this.metrics = createMetrics({
      openConnections: () => this.supervisor?.openConnectionsByListener() ?? [],
      backendHealth: () => this.supervisor?.backendHealth() ?? [],
    });
    this.notifier = systemdNotifier(options.env, (error) => this.logger.warn({ err: error }, 'systemd notification failed'));
  }

  /**
   * Loads the config, binds (or inherits) every listener, then serves until
   * a signal ends it. Resolves once serving, with each listener's bound
   * address by name; rejects before serving with `ConfigError`,
   * `ListenError` or an `Error` about inherited sockets.
   */
  async start(): Promise<Record<string, string>> {
    const { logger, options } = this;
    // SIGHUP's default action is to exit; until reloads are wired up, one must not kill a proxy that is starting.
    const ignoreEarlyReload = (): void => logger.info('SIGHUP while starting: the config is being read now anyway');
    process.on('SIGHUP', ignoreEarlyReload);
    const load = (): Promise<Generation> => loadGeneration(options.configFile, (stateDir) => this.openInternalCa(stateDir));
    const loaded = await load();
    await this.createRunner(options.workers ?? loaded.config.workers);
    const descriptors = passedDescriptors(options.env, process.pid);
    // As sd_listen_fds(unset_environment=1): processes we start must not think the sockets are theirs.
    delete options.env.LISTEN_PID;
    delete options.env.LISTEN_FDS;
    delete options.env.LISTEN_FDNAMES;
    const adopted = adoptPassedSockets(descriptors);
    const matched = matchInheritedSockets(loaded.config.listeners, adopted);
    // Workers listen on the descriptors themselves, shared through this process; the wrapped sockets stay here unread.
    const inherited: ReadonlyMap<string, ListenSource> = this.workers ? inheritedDescriptors(matched, adopted) : matched;
    const summary = await this.apply(loaded, inherited);
    for (const [listener, address] of Object.entries(summary.bound)) {
      logger.info({ listener, address, inherited: inherited.has(listener) }, 'listening');
    }
    for (const [listener, address] of Object.entries(summary.boundQuic)) logger.info({ listener, address, transport: 'quic' }, 'listening');

    let watcher: FileWatch | null = null;
    this.reloader = new ConfigReloader({
      load,
      running: loaded,
      logger,
      generation: () => this.runner.generation,
      apply: async (next) => {
        const summary = await this.apply(next);
        // A renewed certificate is picked up like an edited config: watch what this generation reads.
        await watcher?.update([options.configFile, ...next.tls.files]);
        return summary;
      },
      // After STOPPING=1, systemd must hear of no reload either.
      started: () => {
        if (!this.stopping) this.notifier?.notify({ RELOADING: '1', MONOTONIC_USEC: monotonicMicroseconds() });
      },
      finished: (outcome) => this.reloadFinished(outcome),
    });
    // chokidar is loaded only when the file is watched.
    watcher = options.watch
      ? await (await import('./watch.js')).watchFiles(
          [options.configFile, ...loaded.tls.files],
          () => void this.reload('watch'),
          (error) => logger.error({ err: error }, 'config file watch failed; SIGHUP still reloads'),
        )
      : null;

    process.on('uncaughtException', (error) => {
      // One connection's unforeseen failure must not take every other connection down with the process.
      logger.error({ err: error }, 'uncaught exception (connection state may be lost; the proxy keeps running)');
    });
    onSignals({
      shutdown: (signal) => {
        this.stopping = true;
        // Listeners stop accepting synchronously here, before the line below says so.
        const drained = this.runner.shutdown();
        const { message, openConnections, drainTimeoutMs } = shutdownLine(this.runner.drainState());
        logger.info({ signal, openConnections, drainTimeoutMs }, message);
        this.notifier?.notify({ STOPPING: '1', STATUS: `draining ${openConnections} connections` });
        void watcher?.close();
        // The admin endpoint stays up while draining: /readyz answers 503, /metrics shows the drain.
        void drained.then(() => {
          this.admin?.server.close();
          logger.info('stopped');
          void this.exit(0);
        });
      },
      forceExit: (signal) => {
        logger.warn({ signal, openConnections: this.runner.openConnections() }, 'second signal: closing open connections and exiting now');
        // Closing takes a turn of the event loop; each connection still gets its log line, but never wait long.
        const deadline = new Promise((resolve) => setTimeout(resolve, 250));
        void Promise.race([this.runner.terminateAll('shutdown'), deadline]).then(() => this.exit(0));
      },
      reload: () => void this.reload('signal'),
    });
    process.off('SIGHUP', ignoreEarlyReload);

    logger.info(
      {
        generation: summary.generation,
        file: options.configFile,
        listeners: summary.added.length,
        watch: options.watch,
        admin: this.admin?.address ?? null,
        ...(this.workers ? { workers: this.workers.count } : {}),
      },
      'ready',
    );
    this.notifier?.notify({ READY: '1', STATUS: this.status() });
    return summary.bound;
  }

  /**
   * This process runs the listeners (one worker: today's single process, no
   * other), or becomes the primary of `workers` worker processes.
   */
  private async createRunner(setting: WorkersSetting): Promise<void> {
    const observer = fanOut(accessLog(this.logger, { writeLine: this.options.writeLine ?? null }), this.metrics);
    const count = resolveWorkers(setting, availableParallelism());
    if (count === 1) {
      this.supervisor = new Supervisor(observer);
      this.runner = this.supervisor;
      return;
    }
    // Loaded only for workers: a single process does not carry node:cluster.
    const { WorkerGroup } = await import('./worker-group.js');
    const { configFile, stateDirectory, env, log } = this.options;
    this.workers = new WorkerGroup({
      count,
      configFile,
      // The directory a `tls: internal` route would use; workers open the CA the primary created there.
      stateDirectory: stateDirectory ?? defaultStateDirectory(env),
      logger: this.logger,
      log: log ?? { logLevel: 'info', logFormat: 'json' },
      observer,
    });
    this.runner = this.workers;
  }

  /** Sends the sd_notify messages still queued (STOPPING=1 above all), then lets the caller exit. */
  private async exit(code: number): Promise<void> {
    await this.notifier?.close(NOTIFY_CLOSE_LIMIT_MS);
    this.options.exit(code);
  }

  /**
   * The local CA for `tls: internal` routes, opened (and created, the first
   * time) when a config first has one: in the command line's directory, else
   * the config's `stateDir`, else the default. Kept while the directory stays.
   */
  private openInternalCa(configured: string | null): Promise<LeafIssuer> {
    const directory = this.options.stateDirectory ?? configured ?? defaultStateDirectory(this.options.env);
    let opened = this.authorities.get(directory);
    if (opened === undefined) {
      opened = import('../tls/local-ca.js').then(async ({ LocalCertificateAuthority }) => {
        const ca = await LocalCertificateAuthority.open(directory);
        if (ca.created) this.logger.info({ directory }, 'local CA created: run `sni-passthrough trust` so browsers and curl trust it');
        return ca;
      });
      this.authorities.set(directory, opened);
      // A directory that could not be used is tried again by the next reload.
      opened.catch(() => this.authorities.delete(directory));
    }
    return opened;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    return this.reloader!.reload(trigger);
  }

  /** Applies a loaded config all or nothing: the admin endpoint first (rolled back if the listeners fail), then the listeners. */
  private async apply(loaded: Generation, inherited?: Parameters<Supervisor['apply']>[2]): Promise<ApplySummary> {
    const previousAdmin = this.admin;
    const nextAdmin = loaded.config.admin;
    const adminChanged = JSON.stringify(previousAdmin?.config.listen ?? null) !== JSON.stringify(nextAdmin?.listen ?? null);
    let startedAdmin: { server: AdminServer; address: string } | null = null;
    if (adminChanged && nextAdmin) startedAdmin = await this.startAdmin(nextAdmin);
    let summary: ApplySummary;
    try {
      summary = await this.runner.apply(loaded.config, loaded.tls, inherited);
    } catch (error) {
      startedAdmin?.server.close();
      throw error;
    }
    if (adminChanged) {
      previousAdmin?.server.close();
      this.admin = nextAdmin && startedAdmin ? { config: nextAdmin, ...startedAdmin } : null;
    } else if (previousAdmin && nextAdmin) {
      previousAdmin.config = nextAdmin;
    }
    this.metrics.configApplied(summary.generation, sha256(loaded.text));
    const wanted = resolveWorkers(this.options.workers ?? loaded.config.workers, availableParallelism());
    const running = this.workers?.count ?? 1;
    if (wanted !== running) this.logger.warn({ workers: running, configured: wanted }, `workers: still ${running}; a changed count takes effect at restart`);
    for (const warning of loaded.tls.warnings) this.logger.warn({ generation: summary.generation }, `certificate: ${warning}`);
    return summary;
  }

  private async startAdmin(config: AdminConfig): Promise<{ server: AdminServer; address: string }> {
    // The endpoint's HTTP server is loaded only for a config that has one (and prom-client at its first scrape).
    const { AdminServer } = await import('../observe/admin.js');
    this.metrics.enableProcessMetrics();
    const server = new AdminServer(
      {
        metrics: () => this.scrape(),
        ready: () => !this.stopping && this.runner.generation > 0,
        config: () => ({
          generation: this.runner.generation,
          config: this.runner.config,
          ...(this.supervisor ? { listeners: this.supervisor.listenerStatus(), backends: this.supervisor.backendHealth() } : {}),
        }),
        reload: async () => {
          const outcome = await this.reload('admin');
          return { status: outcome.result === 'refused' ? 422 : 200, body: outcome };
        },
        ...(this.supervisor ? liveControl(this.supervisor, this.logger) : liveControlUnavailable()),
      },
      {
        anyHost: config.allowRemote,
        onError: (error) => this.logger.error({ err: error }, 'admin endpoint error'),
      },
    );
    try {
      const address = await server.listen(config.listen);
      this.logger.info({ address }, 'admin endpoint listening');
      return { server, address };
    } catch (error) {
      const cause = error as NodeJS.ErrnoException;
      throw new ListenError('admin', formatAddress(config.listen.host, config.listen.port), cause.code ?? 'ERROR', cause);
    }
  }

  /** The metrics of this process, and with workers theirs too, merged. */
  private async scrape(): Promise<{ contentType: string; body: string }> {
    const own = await this.metrics.scrape();
    if (this.workers === null) return own;
    return { contentType: own.contentType, body: await this.workers.scrape(own.body) };
  }

  private reloadFinished(outcome: ReloadOutcome): void {
    this.metrics.reloadFinished(outcome.result);
    // After STOPPING=1, systemd must not be told the service is ready again.
    if (!this.stopping) this.notifier?.notify({ READY: '1', STATUS: this.status() });
  }

  private status(): string {
    const workers = this.workers ? `, ${this.workers.count} workers` : '';
    return `generation ${this.runner.generation}${workers}, ${this.runner.openConnections()} open connections`;
  }
}
