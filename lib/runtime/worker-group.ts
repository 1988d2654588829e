import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { BackendRegistry, type HealthChange } from '../backends/health.js';
import { HostResolver } from '../backends/host-resolver.js';
import type { ProxyConfig } from '../config/types.js';
import { WorkerRefusedError } from '../errors.js';
import type { ListenSource } from '../listeners/tcp-listener.js';
import type { Logger } from '../observe/logger.js';
import { isPerWorkerFamily, mergeExpositions } from '../observe/merge-metrics.js';
import { CounterFamily, formatFamilies } from '../observe/prometheus.js';
import type { ProxyObserver } from '../pipeline/observer.js';
import type { Outcome } from '../pipeline/record.js';
import type { TlsMaterial } from '../tls/certificates.js';
import { CRASH_WINDOW_MS, restartDelay } from './restart-backoff.js';
import type { ApplySummary } from './supervisor.js';
import { type PrimaryMessage, WORKER_ENV, type WireError, type WorkerMessage } from './worker-messages.js';

export interface WorkerGroupOptions {
  count: number;
  configFile: string;
  /** The local CA's directory, as the primary resolved it. */
  stateDirectory: string;
  logger: Logger;
  /** Passed on to every worker, which logs to the same stdout. */
  log: { logLevel: string; logFormat: string };
  /** Where the active health checks (run here, once per backend) report: logs and the primary's metrics. */
  observer: ProxyObserver;
}

/** A worker that has not answered a prepare or commit by then is taken as refusing: a reload must end. */
const ANSWER_LIMIT_MS = 60_000;
/** A scrape waits this long for each worker; one that does not answer is left out of that scrape. */
const SCRAPE_LIMIT_MS = 5_000;

/** One of the `count` places a worker process fills; a replacement takes the same number. */
interface Slot {
  readonly number: number;
  worker: Worker | null;
  /** Its open connections by listener, as last reported (at most a second old). */
  open: Array<{ listener: string; open: number }>;
  /** When it crashed (performance.now()), for the restart backoff. */
  crashes: number[];
  restart: NodeJS.Timeout | null;
}

function sum(open: ReadonlyArray<{ open: number }>): number {
  return open.reduce((total, entry) => total + entry.open, 0);
}

function describeExit(code: number | null, signal: string | null): string {
  return signal ? `killed by ${signal}` : `exited with code ${code}`;
}

/**
 * The primary's side of worker processes: forks them (node:cluster, the
 * kernel spreading connections over the listening sockets they share, never
 * through this process), applies each config to all of them as one
 * transaction, replaces those that die, runs the active health checks once
 * for all, gathers their metrics, and drains them at shutdown.
 */
export class WorkerGroup {
  generation = 0;
  config: ProxyConfig | null = null;
  private readonly options: WorkerGroupOptions;
  private readonly slots: Slot[];
  private readonly registry: BackendRegistry;
  /** What the primary's health checks resolve backend names with: the config's `resolvers`, as in the workers. */
  private readonly resolver = new HostResolver();
  private tlsDigest = '';
  /** Listeners served on sockets the service manager passed: the descriptor in this process, by listener name. */
  private readonly inherited = new Map<string, number>();
  /** Transactions and worker starts, one at a time: a replacement never misses a config being applied. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private scrapes = 0;
  private readonly messages = new CounterFamily(
    'sni_passthrough_worker_messages_total',
    'Messages between the primary and its workers, by direction and type (none is per connection)',
    ['direction', 'type'],
  );

  constructor(options: WorkerGroupOptions) {
    this.options = options;
    this.slots = Array.from({ length: options.count }, (_, index) => ({ number: index + 1, worker: null, open: [], crashes: [], restart: null }));
    const broadcast: ProxyObserver = {
      ...options.observer,
      backendHealthChanged: (change: HealthChange) => {
        options.observer.backendHealthChanged(change);
        for (const slot of this.live()) this.send(slot, { type: 'health', backend: change.backend, healthy: change.state === 'up' });
      },
    };
    this.registry = new BackendRegistry(broadcast, { resolver: this.resolver });
    // The kernel, not this process, hands each connection to a worker: every worker listens on the same socket.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), args: [JSON.stringify(options.log)] });
  }

  get count(): number {
    return this.slots.length;
  }

  /**
   * Makes `config` every worker's, all or nothing (the first call forks the
   * workers): each prepares it (binds new addresses through this process,
   * loads the certificates), and only when all have does any commit. A refusal
   * rolls every worker back and throws `WorkerRefusedError` naming the worker.
   */
  apply(config: ProxyConfig, tls: TlsMaterial, inherited: ReadonlyMap<string, ListenSource> = new Map()): Promise<ApplySummary> {
    for (const [listener, source] of inherited) if (!(source instanceof net.Socket)) this.inherited.set(listener, source.fd);
    return this.serialize(async () => {
      if (this.generation === 0) await Promise.all(this.slots.map((slot) => this.fork(slot)));
      const generation = this.generation + 1;
      const starting = this.generation === 0;
      const summary = await this.transaction([...this.live()], config, tls.digest, generation);
      if (starting) for (const slot of this.live()) this.started(slot, generation);
      this.generation = generation;
      this.config = config;
      // A listener gone from the config has let its inherited socket go (node:cluster closed it with the last worker's listener).
      for (const listener of this.inherited.keys()) if (!config.listeners.some((entry) => entry.name === listener)) this.inherited.delete(listener);
      this.tlsDigest = tls.digest;
      return { ...summary, generation };
    });
  }

  private serialize<T>(run: () => Promise<T>): Promise<T> {
    const result = this.queue.then(run);
    this.queue = result.catch(() => {});
    return result;
  }

  private *live(): Iterable<Slot> {
    for (const slot of this.slots) if (slot.worker !== null) yield slot;
  }

  private async transaction(slots: Slot[], config: ProxyConfig, tlsDigest: string, generation: number): Promise<ApplySummary> {
    const { configFile, stateDirectory } = this.options;
    const prepare: PrimaryMessage = {
      type: 'prepare',
      generation,
      config,
      configFile,
      stateDirectory,
      tlsDigest,
      workers: this.slots.length,
      inherited: [...this.inherited],
    };
    const answers = await Promise.all(
      slots.map((slot) => this.ask(slot, prepare, (reply) => (reply.type === 'prepared' || reply.type === 'refused') && reply.generation === generation)),
    );
    const refusal = answers.findIndex((answer) => answer.type !== 'prepared');
    if (refusal !== -1) {
      for (const slot of slots) this.send(slot, { type: 'rollback', generation });
      const answer = answers[refusal]!;
      const error: WireError = answer.type === 'refused' ? answer.error : { name: 'Error', code: null, message: 'no answer' };
      throw new WorkerRefusedError(slots[refusal]!.number, slots[refusal]!.worker?.process.pid ?? null, error.message, error.code);
    }
    // The health checks this config asks for start now; their states so far go with the commit.
    this.registry.sync(config);
    this.resolver.useServers(config.resolvers);
    const health = this.registry.health().map(({ backend, up }): [string, boolean] => [backend, up]);
    const commits = await Promise.all(
      slots.map((slot) => this.ask(slot, { type: 'commit', generation, health }, (reply) => reply.type === 'committed' && reply.generation === generation)),
    );
    const committed = commits.find((answer) => answer.type === 'committed');
    if (committed?.type !== 'committed') throw new WorkerRefusedError(slots[0]!.number, null, 'no worker took the config', null);
    return committed.summary;
  }

  /**
   * Sends `message` and resolves with the first reply `isAnswer` accepts; a
   * worker that exits or stays silent for ANSWER_LIMIT_MS answers "refused".
   */
  private ask(slot: Slot, message: PrimaryMessage, isAnswer: (reply: WorkerMessage) => boolean): Promise<WorkerMessage> {
    const worker = slot.worker;
    const generation = 'generation' in message ? message.generation : 0;
    const refused = (text: string): WorkerMessage => ({ type: 'refused', generation, error: { name: 'Error', code: null, message: text } });
    if (worker === null) return Promise.resolve(refused('not running'));
    return new Promise((resolve) => {
      const done = (reply: WorkerMessage): void => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        resolve(reply);
      };
      const onMessage = (reply: WorkerMessage): void => {
        if (isAnswer(reply)) done(reply);
      };
      const onExit = (code: number | null, signal: string | null): void => done(refused(`it ${describeExit(code, signal)} meanwhile`));
      const timer = setTimeout(() => done(refused(`no answer within ${ANSWER_LIMIT_MS / 1000} s`)), ANSWER_LIMIT_MS);
      worker.on('message', onMessage);
      worker.on('exit', onExit);
      this.send(slot, message);
    });
  }

  private send(slot: Slot, message: PrimaryMessage): void {
    const worker = slot.worker;
    if (worker === null || !worker.isConnected()) return;
    this.messages.inc(['to_workers', message.type]);
    worker.send(message);
  }

  /** Starts a worker process in `slot` and waits until it listens for messages (it takes a config only when asked). */
  private fork(slot: Slot): Promise<void> {
    const worker = cluster.fork({ [WORKER_ENV]: String(slot.number) });
    slot.worker = worker;
    slot.open = [];
    worker.on('message', (message: WorkerMessage) => {
      this.messages.inc(['from_workers', message.type]);
      if (message.type === 'load') slot.open = message.open;
    });
    // node:cluster's own messages (bind requests, and with round-robin scheduling one per connection): counted to show there are none per connection.
    worker.process.on('internalMessage', () => this.messages.inc(['from_workers', 'cluster']));
    worker.once('exit', (code: number | null, signal: string | null) => this.exited(slot, worker, code, signal));
    return new Promise((resolve) => {
      const ready = (message: WorkerMessage): void => {
        if (message.type !== 'ready') return;
        worker.off('message', ready);
        resolve();
      };
      worker.on('message', ready);
      worker.once('exit', () => resolve());
    });
  }

  private exited(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    const openConnections = sum(slot.open);
    slot.open = [];
    if (this.stopping) return;
    const now = performance.now();
    slot.crashes = [...slot.crashes, now].filter((time) => now - time < CRASH_WINDOW_MS);
    const delayMs = restartDelay(slot.crashes, now);
    this.options.logger.error(
      { worker: slot.number, workerPid: worker.process.pid, code, signal, openConnections, restartInMs: delayMs },
      `worker ${slot.number} ${describeExit(code, signal)} with ${openConnections} open connection${openConnections === 1 ? '' : 's'}; starting another${delayMs > 0 ? ` in ${delayMs} ms (it keeps crashing)` : ''}`,
    );
    slot.restart = setTimeout(() => {
      slot.restart = null;
      void this.serialize(() => this.replace(slot));
    }, delayMs);
  }

  /** A new worker in the slot of one that died, on the same sockets and the running config. */
  private async replace(slot: Slot): Promise<void> {
    if (this.stopping || this.config === null) return;
    await this.fork(slot);
    const worker = slot.worker;
    if (worker === null) return;
    try {
      await this.transaction([slot], this.config, this.tlsDigest, this.generation);
      this.started(slot, this.generation);
    } catch (error) {
      // It could not take the running config (a certificate gone from disk, descriptors exhausted): try again later.
      this.options.logger.error({ worker: slot.number, err: error }, `worker ${slot.number} could not start: ${(error as Error).message}`);
      worker.kill('SIGKILL');
    }
  }

  private started(slot: Slot, generation: number): void {
    this.options.logger.info({ worker: slot.number, workerPid: slot.worker?.process.pid, generation }, `worker ${slot.number} started`);
  }

  /** Open connections across workers, as last reported (at most a second old). */
  openConnections(): number {
    return this.slots.reduce((total, slot) => total + sum(slot.open), 0);
  }

  /** Each listener's open connections across workers (as last reported) and its `drainTimeout`. */
  drainState(): Array<{ listener: string; open: number; drainTimeout: number }> {
    return (this.config?.listeners ?? []).map((listener) => ({
      listener: listener.name,
      open: this.slots.reduce((total, slot) => total + sum(slot.open.filter((entry) => entry.listener === listener.name)), 0),
      drainTimeout: listener.drainTimeout,
    }));
  }

  /** Every worker's metrics and the primary's (`own`) as one text; a worker that does not answer in time is left out. */
  async scrape(own: string): Promise<string> {
    const id = ++this.scrapes;
    const answers = await Promise.all(
      [...this.live()].map(async (slot) => {
        const reply = await Promise.race([
          this.ask(slot, { type: 'scrape', id }, (message) => message.type === 'scraped' && message.id === id),
          new Promise<null>((resolve) => setTimeout(() => resolve(null), SCRAPE_LIMIT_MS).unref()),
        ]);
        return reply?.type === 'scraped' ? { worker: String(slot.number), text: reply.text } : null;
      }),
    );
    const primary = `${own}\n${formatFamilies([this.messages])}`;
    return mergeExpositions([{ worker: 'primary', text: primary }, ...answers.filter((answer) => answer !== null)], isPerWorkerFamily);
  }

  /** Every worker stops accepting and drains (each up to its listeners' drainTimeout); resolves once all have exited. */
  shutdown(): Promise<void> {
    this.stopping = true;
    this.registry.stop();
    for (const slot of this.slots) if (slot.restart) clearTimeout(slot.restart);
    return this.untilExited({ type: 'shutdown' });
  }

  /** Every worker closes its connections now and exits (a second signal). */
  terminateAll(_outcome: Outcome): Promise<void> {
    return this.untilExited({ type: 'terminate' });
  }

  private untilExited(message: PrimaryMessage): Promise<void> {
    const running = [...this.live()].map((slot) => {
      const worker = slot.worker!;
      const gone = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      this.send(slot, message);
      return gone;
    });
    return Promise.all(running).then(() => {});
  }
}
