import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';
export type { Logger };

export interface LoggerOptions {
  level: string;
  format: LogFormat;
}

/** The longest a log line waits to be written. */
const FLUSH_EVERY_MS = 50;
/** Log bytes kept while stdout is not taking them; later lines are dropped. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** How long an exiting process waits for its last log lines before giving up on them. */
const FLUSH_LIMIT_MS = 1000;

/**
 * JSON lines on stdout, written asynchronously so a log line never blocks the
 * event loop that is moving bytes. `flush()` before exiting: it waits for the
 * pending lines, but never hangs on a stdout nobody reads any more (EPIPE).
 */
export function createLogger(options: LoggerOptions): { logger: Logger; flush(): Promise<void> } {
  const base = { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.format === 'pretty') {
    const stream = pretty({ colorize: process.stdout.isTTY === true, sync: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
    return { logger: pino(base, stream), flush: () => Promise.resolve() };
  }
  // Lines are gathered into writes of up to 4 KiB (one write per connection line would cost a thread-pool
  // round trip each), and written at the latest FLUSH_EVERY_MS after they were logged.
  // A stdout that stops reading (a stuck pipe or journald) costs log lines past MAX_PENDING_BYTES, never unbounded memory.
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096, maxLength: MAX_PENDING_BYTES });
  let pending = false;
  let closing = false;
  setInterval(() => {
    if (!pending || closing) return;
    pending = false;
    destination.flush();
  }, FLUSH_EVERY_MS).unref();
  const hooks = {
    streamWrite(line: string): string {
      pending = true;
      return line;
    },
  };
  let broken = false;
  destination.on('error', () => {
    broken = true;
  });
  // Ending the stream writes what is pending; an EPIPE (nobody reads stdout any more) ends it too.
  const flush = (): Promise<void> =>
    new Promise<void>((resolve) => {
      closing = true;
      if (broken) return resolve();
      setTimeout(resolve, FLUSH_LIMIT_MS).unref();
      destination.once('close', resolve);
      destination.once('error', resolve);
      destination.end();
    }).then(() => {
      // pino flushes synchronously again at exit, and sonic-boom's flushSync retries a failing write
      // forever (EPIPE): the process would never exit. Everything that could be written has been.
      destination.flushSync = () => {};
    });
  return { logger: pino({ ...base, hooks }, destination), flush };
}
