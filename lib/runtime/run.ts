import { loadConfigFile } from '../config/load.js';
import { accessLog } from '../observe/access-log.js';
import type { Logger } from '../observe/logger.js';
import { ConfigReloader } from './reload.js';
import { onSignals } from './signals.js';
import { Supervisor } from './supervisor.js';
import { watchConfigFile } from './watch.js';

export interface RunOptions {
  configFile: string;
  /** Reload when the file changes (SIGHUP reloads either way). */
  watch: boolean;
  logger: Logger;
  /** Called once everything is closed (or on a forced exit); the caller exits the process. */
  exit(code: number): void;
}

/**
 * Loads the config, binds every listener and serves until a signal ends it,
 * reloading on file changes and SIGHUP. Rejects (before anything is bound)
 * with `ConfigError` or `ListenError`.
 */
export async function runProxy(options: RunOptions): Promise<void> {
  const { logger, configFile } = options;
  const loaded = await loadConfigFile(configFile);
  const supervisor = new Supervisor(accessLog(logger));
  const summary = await supervisor.apply(loaded.config);
  for (const [listener, address] of Object.entries(summary.bound)) logger.info({ listener, address }, 'listening');

  const reloader = new ConfigReloader({ file: configFile, text: loaded.text, supervisor, logger });
  const watcher = options.watch
    ? await watchConfigFile(
        configFile,
        () => void reloader.reload('watch'),
        (error) => logger.error({ err: error }, 'config file watch failed; SIGHUP still reloads'),
      )
    : null;
  logger.info({ generation: summary.generation, file: configFile, listeners: summary.added.length, watch: options.watch }, 'ready');

  process.on('uncaughtException', (error) => {
    // One connection's unforeseen failure must not take every other connection down with the process.
    logger.error({ err: error }, 'uncaught exception (connection state may be lost; the proxy keeps running)');
  });

  onSignals({
    shutdown(signal) {
      logger.info({ signal, openConnections: supervisor.openConnections() }, 'shutting down: no new connections, draining open ones');
      void watcher?.close();
      void supervisor.shutdown().then(() => {
        logger.info('stopped');
        options.exit(0);
      });
    },
    forceExit(signal) {
      logger.warn({ signal, openConnections: supervisor.openConnections() }, 'second signal: exiting now');
      options.exit(0);
    },
    reload() {
      void reloader.reload('signal');
    },
  });
}
