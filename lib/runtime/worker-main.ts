import { createLogger, type LogFormat } from '../observe/logger.js';
import { ProxyWorker } from './worker.js';
import { type PrimaryMessage, WORKER_ENV, type WorkerMessage } from './worker-messages.js';

/**
 * A worker process's entry point, forked by the primary (node:cluster) with
 * its log options as the one argument and its number in the environment.
 * It serves until the primary tells it to stop or goes away.
 */
const slot = Number(process.env[WORKER_ENV]);
const { logLevel, logFormat } = JSON.parse(process.argv[2] ?? '{}') as { logLevel: string; logFormat: LogFormat };
const { logger, writeLine, flush } = await createLogger({ level: logLevel, format: logFormat, env: process.env, fields: { worker: slot }, sharedStdout: true });

let exiting = false;
const exit = (code: number): void => {
  if (exiting) return;
  exiting = true;
  void flush().then(() => process.exit(code));
};
const send = (message: WorkerMessage): void => {
  // The primary gone, a worker cannot report anything any more; it drains on `disconnect`.
  if (process.connected) process.send!(message);
};

const worker = new ProxyWorker({ logger, writeLine, send, exit });
process.on('message', (message: PrimaryMessage) => void worker.handle(message));
send({ type: 'ready' });
// Ctrl-C and SIGHUP reach the whole process group: the primary decides what they mean and tells the workers.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
// SIGTERM sent to this worker alone (or to the whole cgroup by systemd) drains it like the primary would.
process.on('SIGTERM', () => void worker.shutdown());
process.on('uncaughtException', (error) => {
  // Node documents the process state after an uncaught exception as undefined: this worker ends, the primary starts another.
  logger.fatal(
    { err: error, openConnections: worker.openConnections() },
    'uncaught exception: this worker exits (its connections are lost) and the primary starts another',
  );
  exit(70);
});
