import { abridgeDiff, diffConfigs, summarizeDiff } from '../config/diff.js';
import type { Logger } from '../observe/logger.js';
import { isOwnError } from '../errors.js';
import { type Generation, sameGeneration } from './generation.js';
import type { ApplySummary } from './supervisor.js';

/**
 * Past this many routes (the two configs together) a reload logs counts, not
 * the changes: comparing them holds the event loop (about 1 s at 100,000
 * routes on this machine kind), and `sni-passthrough diff` shows them anyway.
 */
const DIFF_ROUTE_LIMIT = 10_000;

function routeCount(config: Generation['config']): number {
  let count = 0;
  for (const listener of config.listeners) count += listener.routes.length;
  return count;
}

export type ReloadTrigger = 'watch' | 'signal' | 'admin';

export interface ReloadOutcome {
  result: 'applied' | 'unchanged' | 'refused';
  /** The generation running afterwards. */
  generation: number;
  /** Why it was refused: `FILE:LINE:COL: message` or the bind error. */
  error?: string;
  /** The refusal's stable code (`SNIP_CONFIG_SYNTAX`, `SNIP_LISTEN_FAILED`, ...), when it is one of ours. */
  code?: string;
}

export interface ReloaderOptions {
  /** Reads the config file and what it names (certificates); throws `ConfigError`. */
  load(): Promise<Generation>;
  /** What runs now. */
  running: Generation;
  logger: Logger;
  generation(): number;
  /** Makes a validated config the running one, all or nothing; throws `ListenError` when it cannot. */
  apply(loaded: Generation): Promise<ApplySummary>;
  /** Around each reload (systemd RELOADING=1 / READY=1, metrics). */
  started(): void;
  finished(outcome: ReloadOutcome): void;
}

/**
 * Reloads the config file: validate, then apply all or nothing. Reloads
 * never overlap: a request during one runs once more after it, so the last
 * write always wins and a burst collapses into two at most. Every load ends
 * (the loader refuses what is not a regular file and has a time limit), so
 * no file can hold up the reloads after it.
 */
export class ConfigReloader {
  private readonly options: ReloaderOptions;
  private running: Generation;
  private inProgress: Promise<ReloadOutcome> | null = null;
  private queued: Promise<ReloadOutcome> | null = null;

  constructor(options: ReloaderOptions) {
    this.options = options;
    this.running = options.running;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (this.inProgress === null) {
      this.inProgress = this.reloadOnce(trigger).finally(() => (this.inProgress = null));
      return this.inProgress;
    }
    this.queued ??= this.inProgress.then(() => {
      this.queued = null;
      return this.reload(trigger);
    });
    return this.queued;
  }

  private async reloadOnce(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const { logger } = this.options;
    this.options.started();
    const outcome = await this.load(trigger);
    if (outcome.result === 'refused') {
      logger.error({ trigger, ...outcome }, `config reload refused, still running generation ${outcome.generation}: ${outcome.error}`);
    }
    this.options.finished(outcome);
    return outcome;
  }

  private async load(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const { logger } = this.options;
    try {
      const loaded = await this.options.load();
      if (sameGeneration(this.running, loaded)) {
        logger.info({ trigger, generation: this.options.generation() }, 'config unchanged');
        return { result: 'unchanged', generation: this.options.generation() };
      }
      const before = routeCount(this.running.config);
      const after = routeCount(loaded.config);
      const diff = before + after <= DIFF_ROUTE_LIMIT ? diffConfigs(this.running.config, loaded.config) : null;
      const summary = await this.options.apply(loaded);
      this.running = loaded;
      // What `sni-passthrough diff` would have shown: one line to read, and the changes themselves (lists bounded).
      const changes =
        diff === null
          ? { changes: `${before} routes → ${after} routes (too many to compare here: sni-passthrough diff shows the changes)` }
          : { changes: summarizeDiff(diff), diff: abridgeDiff(diff) };
      logger.info({ trigger, ...summary, ...changes }, 'config reloaded');
      return { result: 'applied', generation: summary.generation };
    } catch (error) {
      const generation = this.options.generation();
      if (isOwnError(error)) return { result: 'refused', generation, error: error.message, code: error.code };
      // Anything else is a bug, but a reload must still end as refused (and say why) for later reloads to run.
      return { result: 'refused', generation, error: `unexpected error: ${(error as Error).stack ?? String(error)}` };
    }
  }
}
