import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';
export type { Logger };

export interface LoggerOptions {
  level: string;
  format: LogFormat;
}

/**
 * JSON lines on stdout, written asynchronously so a log line never blocks the
 * event loop that is moving bytes; `flush()` before exiting.
 */
export function createLogger(options: LoggerOptions): { logger: Logger; flush(): void } {
  const base = { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.format === 'pretty') {
    const stream = pretty({ colorize: process.stdout.isTTY === true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
    return { logger: pino(base, stream), flush: () => {} };
  }
  const destination = pino.destination({ dest: 1, sync: false });
  return { logger: pino(base, destination), flush: () => destination.flushSync() };
}
