import { fstatSync } from 'node:fs';
import { pino, type Logger } from 'pino';

export type LogFormat = 'json' | 'pretty';
export type { Logger };

/**
 * Writes one line whose fields are already JSON (`"a":1,"b":"x"`), framed as
 * pino frames its own (level, time, pid, the fields, msg). For the one line
 * per connection, where pino's generic serialization of an object would be
 * most of its cost.
 */
export type LineWriter = (level: number, fields: string, msg: string) => void;

export interface ProxyLogger {
  logger: Logger;
  /** Null where lines are not JSON (pretty): log through `logger` then. */
  writeLine: LineWriter | null;
  flush(): Promise<void>;
}

export interface LoggerOptions {
  level: string;
  format: LogFormat;
  /** Read for JOURNAL_STREAM: whether stdout is the systemd journal. */
  env: NodeJS.ProcessEnv;
  /** Fields on every line after `pid` (a worker's number). */
  fields?: Record<string, number | string>;
  /**
   * Other processes write to the same stdout (workers): each write then holds
   * whole lines and at most PIPE_BUF bytes, which a pipe keeps in one piece.
   */
  sharedStdout?: boolean;
}

/** The most a write to a pipe may carry and still never interleave with another process's writes (Linux). */
const PIPE_BUF = 4096;

/** The longest a log line waits to be written while the proxy is quiet (sonic-boom's `periodicFlush`). */
const FLUSH_EVERY_MS = 100;
/** Log bytes kept while stdout is not taking them; later lines are dropped. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** How long an exiting process waits for its last log lines before giving up on them. */
const FLUSH_LIMIT_MS = 1000;

/** Syslog priority of a pino level, as journald reads it from a `<N>` line prefix: trace/debug 7, info 6, warn 4, error 3, fatal 2. */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

/**
 * Whether stdout is the journal: systemd sets JOURNAL_STREAM to "<dev>:<inode>"
 * of the stream it connected, and a process whose stdout was redirected
 * elsewhere inherits the variable anyway, so the descriptor must match (sd-daemon(3)).
 */
export function isJournalStream(journalStream: string | undefined, stdout: { dev: bigint; ino: bigint } | null): boolean {
  const match = /^(\d+):(\d+)$/.exec(journalStream ?? '');
  return match !== null && stdout !== null && BigInt(match[1]!) === stdout.dev && BigInt(match[2]!) === stdout.ino;
}

function stdoutIdentity(): { dev: bigint; ino: bigint } | null {
  try {
    return fstatSync(1, { bigint: true });
  } catch {
    return null;
  }
}

/**
 * JSON lines on stdout, written asynchronously so a log line never blocks the
 * event loop that is moving bytes; `<N>` priority prefixes when stdout is the
 * journal. `flush()` before exiting: it waits for the pending lines, but never
 * hangs on a stdout nobody reads any more (EPIPE).
 */
export async function createLogger(options: LoggerOptions): Promise<ProxyLogger> {
  const fields = options.fields ?? {};
  const base = { level: options.level, base: { pid: process.pid, ...fields }, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.format === 'pretty') {
    // Loaded only when asked for: a service logging JSON does not pay for it.
    const { default: pretty } = await import('pino-pretty');
    const stream = pretty({ colorize: process.stdout.isTTY === true, sync: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
    return { logger: pino(base, stream), writeLine: null, flush: () => Promise.resolve() };
  }
  // Lines are gathered into writes of 32 to 64 KiB: each write is a thread-pool round trip. At 4 KiB the event
  // loop spent about 6 µs per connection line starting them, under 1 µs now (`npm run bench:profile`, 5 s of
  // churn: 90-124 ms in fs writes, then 8-18). sonic-boom's periodic flush writes what is left below that; it
  // retries while a write is in flight, so a quiet proxy's last line is never held back (an empty write when
  // nothing is pending). Workers share stdout: their writes stay within PIPE_BUF, whole lines, never interleaved.
  // A stdout that stops reading (a stuck pipe or journald) costs log lines past MAX_PENDING_BYTES, never unbounded memory.
  const sizes = options.sharedStdout ? { minLength: PIPE_BUF / 2, maxWrite: PIPE_BUF } : { minLength: 32768, maxWrite: 65536 };
  const destination = pino.destination({ dest: 1, sync: false, ...sizes, maxLength: MAX_PENDING_BYTES, periodicFlush: FLUSH_EVERY_MS });
  let broken = false;
  destination.on('error', (error: NodeJS.ErrnoException) => {
    broken = true;
    // Nobody reads stdout any more: stop retrying the same write every period (pino stops writing on EPIPE likewise).
    if (error.code === 'EPIPE') destination.flush = () => {};
  });
  const journal = isJournalStream(options.env.JOURNAL_STREAM, stdoutIdentity());
  if (journal) (destination as unknown as Record<symbol, boolean>)[Symbol.for('pino.metadata')] = true;
  const hooks = journal
    ? { streamWrite: (line: string): string => `<${syslogPriority((destination as unknown as { lastLevel: number }).lastLevel)}>${line}` }
    : {};
  // Ending the stream writes what is pending; an EPIPE (nobody reads stdout any more) ends it too.
  const flush = (): Promise<void> =>
    new Promise<void>((resolve) => {
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
  const logger = pino({ ...base, hooks }, destination);
  const framing = `,${JSON.stringify({ pid: process.pid, ...fields }).slice(1, -1)},`;
  const writeLine: LineWriter = (level, fields, msg) => {
    if (level < logger.levelVal) return;
    const line = `{"level":${level},"time":"${new Date().toISOString()}"${framing}${fields},"msg":${JSON.stringify(msg)}}\n`;
    destination.write(journal ? `<${syslogPriority(level)}>${line}` : line);
  };
  return { logger, writeLine, flush };
}
