import { accessLog } from '../observe/access-log.js';
import { fanOut } from '../observe/fan-out.js';
import type { LineWriter, Logger } from '../observe/logger.js';
import { createMetrics, type ProxyMetrics } from '../observe/metrics.js';
import { loadTlsMaterial } from '../tls/certificates.js';
import { Supervisor, type PreparedConfig } from './supervisor.js';
import { type PrimaryMessage, toWireError, type WorkerMessage } from './worker-messages.js';
import { workerConfig } from './worker-limits.js';

export interface WorkerOptions {
  logger: Logger;
  writeLine: LineWriter | null;
  /** Sends a message to the primary. */
  send(message: WorkerMessage): void;
  /** Called once this worker has nothing left to serve; the caller exits the process. */
  exit(code: number): void;
}

/** How often a worker tells the primary its open connections (only when they changed): for the crash line and the shutdown line. */
const LOAD_REPORT_MS = 1_000;

/**
 * One worker process: serves connections on the listening sockets it shares
 * with the other workers, with the config the primary sends. It takes a
 * config in two steps, prepare (bind what is new, load certificates) and
 * commit, so that every worker runs the new config or none does.
 */
export class ProxyWorker {
  private readonly options: WorkerOptions;
  private readonly supervisor: Supervisor;
  private readonly metrics: ProxyMetrics;
  private prepared: { generation: number; config: PreparedConfig } | null = null;
  private lastLoad = '';
  private readonly loadTimer: NodeJS.Timeout;
  private stopping = false;

  constructor(options: WorkerOptions) {
    this.options = options;
    this.metrics = createMetrics({
      openConnections: () => this.supervisor.openConnectionsByListener(),
      backendHealth: () => this.supervisor.backendHealth(),
    });
    // Active health checks run once, in the primary; their verdicts arrive as `health` messages.
    this.supervisor = new Supervisor(fanOut(accessLog(options.logger, { writeLine: options.writeLine }), this.metrics), {
      activeChecks: false,
      sharedSockets: true,
    });
    this.loadTimer = setInterval(() => this.reportLoad(), LOAD_REPORT_MS).unref();
  }

  /** Handles one message from the primary; never throws (a failure is answered, or logged). */
  async handle(message: PrimaryMessage): Promise<void> {
    switch (message.type) {
      case 'prepare':
        return this.prepare(message);
      case 'commit':
        return this.commit(message.generation, message.health);
      case 'rollback':
        if (this.prepared?.generation === message.generation) this.supervisor.rollback(this.prepared.config);
        this.prepared = null;
        return;
      case 'health':
        this.supervisor.setBackendHealth(message.backend, message.healthy);
        return;
      case 'scrape':
        // Sent first, so the primary's view of open connections is as fresh as the scrape it answers.
        this.reportLoad();
        this.metrics.enableProcessMetrics();
        this.options.send({ type: 'scraped', id: message.id, text: (await this.metrics.scrape()).body });
        return;
      case 'shutdown':
        return this.shutdown();
      case 'terminate':
        await this.supervisor.terminateAll('shutdown');
        this.options.exit(0);
    }
  }

  private async prepare(message: Extract<PrimaryMessage, { type: 'prepare' }>): Promise<void> {
    const { generation } = message;
    try {
      const config = workerConfig(message.config, message.workers);
      const openInternalCa = async () => (await import('../tls/local-ca.js')).LocalCertificateAuthority.open(message.stateDirectory);
      const tls = await loadTlsMaterial(config, message.configFile, openInternalCa);
      if (tls.digest !== message.tlsDigest) {
        throw new Error('the certificate files changed on disk while the config was being applied; the next reload reads them again');
      }
      const inherited = new Map(message.inherited.map(([listener, fd]) => [listener, { fd }]));
      this.prepared = { generation, config: await this.supervisor.prepare(config, tls, inherited) };
      this.options.send({ type: 'prepared', generation });
    } catch (error) {
      this.options.send({ type: 'refused', generation, error: toWireError(error) });
    }
  }

  private commit(generation: number, health: Array<[string, boolean]>): void {
    if (this.prepared?.generation !== generation) return;
    const summary = this.supervisor.commit(this.prepared.config);
    this.prepared = null;
    for (const [backend, healthy] of health) this.supervisor.setBackendHealth(backend, healthy);
    this.options.send({ type: 'committed', generation, summary });
    this.reportLoad();
  }

  /** Stops accepting, drains (up to each listener's drainTimeout), then exits 0. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.loadTimer);
    await this.supervisor.shutdown();
    this.options.exit(0);
  }

  openConnections(): number {
    return this.supervisor.openConnections();
  }

  private reportLoad(): void {
    const open = this.supervisor.openConnectionsByListener();
    const text = JSON.stringify(open);
    if (text === this.lastLoad) return;
    this.lastLoad = text;
    this.options.send({ type: 'load', open });
  }
}
