import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import type { Logger } from '../observe/logger.js';
import { ListenError } from '../proxy/listener.js';
import type { Supervisor } from './supervisor.js';

export type ReloadTrigger = 'watch' | 'signal' | 'admin';
export type ReloadResult = 'applied' | 'unchanged' | 'refused';

/**
 * Reloads the config file into the supervisor: validate, then apply all or
 * nothing. Reloads never overlap: a request during one runs once more after
 * it, so the last write always wins and a burst collapses into two at most.
 */
export class ConfigReloader {
  private readonly file: string;
  private readonly supervisor: Supervisor;
  private readonly logger: Logger;
  private text: string;
  private running: Promise<ReloadResult> | null = null;
  private queued: Promise<ReloadResult> | null = null;

  constructor(options: { file: string; text: string; supervisor: Supervisor; logger: Logger }) {
    this.file = options.file;
    this.text = options.text;
    this.supervisor = options.supervisor;
    this.logger = options.logger;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadResult> {
    if (this.running === null) {
      this.running = this.reloadOnce(trigger).finally(() => (this.running = null));
      return this.running;
    }
    this.queued ??= this.running.then(() => {
      this.queued = null;
      return this.reload(trigger);
    });
    return this.queued;
  }

  private async reloadOnce(trigger: ReloadTrigger): Promise<ReloadResult> {
    const generation = this.supervisor.generation;
    try {
      const loaded = await loadConfigFile(this.file);
      if (loaded.text === this.text) {
        this.logger.info({ trigger, generation }, 'config unchanged');
        return 'unchanged';
      }
      const summary = await this.supervisor.apply(loaded.config);
      this.text = loaded.text;
      this.logger.info({ trigger, ...summary }, 'config reloaded');
      return 'applied';
    } catch (error) {
      if (!(error instanceof ConfigError || error instanceof ListenError)) throw error;
      this.logger.error({ trigger, generation, error: error.message }, `config reload refused, still running generation ${generation}: ${error.message}`);
      return 'refused';
    }
  }
}
