import { performance } from 'node:perf_hooks';
import type { ConnectionRecord, Outcome } from '../pipeline/record.js';
import type { DatagramDropReason, DropReason, ProxyObserver } from '../pipeline/observer.js';
import type { LineWriter, Logger } from './logger.js';

/** Outcomes an operator should look at; the rest are clients' doing and log at info. */
const warningOutcomes = new Set<Outcome>(['backend_unreachable', 'backend_error']);

const dropMessages: Record<DropReason, string> = {
  fd_limit: 'client dropped: the process is at its open file limit (raise LimitNOFILE= or ulimit -n)',
};

const datagramDropMessages: Record<DatagramDropReason, string> = {
  not_quic: 'QUIC datagram dropped: not the Initial of a new QUIC connection, and no flow knows its address or connection ID',
  too_small: 'QUIC datagram dropped: a client Initial must be padded to 1200 bytes',
  unknown_version: 'QUIC datagram dropped: a QUIC version the proxy cannot read, and no default route',
  undecryptable: 'QUIC datagram dropped: its Initial packet does not decrypt',
  bad_hello: 'QUIC flow dropped: its ClientHello is malformed',
  hello_too_large: 'QUIC flow dropped: its ClientHello did not fit in maxHelloBytes',
  hello_timeout: 'QUIC flow dropped: its ClientHello was not complete within clientHelloTimeout',
  no_route: 'QUIC flow dropped: no route serves its name (and no default)',
  no_backend_name: 'QUIC flow dropped: its route names backends from the hostname, and this name cannot make one',
  denied: 'QUIC flow dropped: the client is not allowed',
  not_passthrough: 'QUIC flow dropped: its route terminates TLS, which the proxy does not do for QUIC',
  flow_limit: 'QUIC flow dropped: the listener is at quic.maxFlows',
  client_limit: 'QUIC flow dropped: the client address is at quic.maxFlowsPerClient',
  pending_limit: 'QUIC flow dropped: too many ClientHellos are being read at once',
  fd_limit: 'QUIC flow dropped: the process is at its open file limit (raise LimitNOFILE= or ulimit -n)',
};

const INFO = 30;
const WARN = 40;

/** A JSON string, or null. */
function jsonString(value: string | null): string {
  return value === null ? 'null' : JSON.stringify(value);
}

/**
 * A connection record as the fields of a JSON log line (no braces), built by
 * hand: it is written once per connection, and this costs a fraction of a
 * generic serializer. Parses to the record itself.
 */
export function recordFields(record: ConnectionRecord): string {
  const alpn = record.alpn.length === 0 ? '[]' : JSON.stringify(record.alpn);
  return (
    `"listener":${JSON.stringify(record.listener)},"client":${JSON.stringify(record.client)},"sni":${jsonString(record.sni)},"alpn":${alpn},` +
    `"route":${jsonString(record.route)},"backend":${jsonString(record.backend)},"attempts":${record.attempts},` +
    `"bytesFromClient":${record.bytesFromClient},"bytesToClient":${record.bytesToClient},"durationMs":${record.durationMs},` +
    `"outcome":"${record.outcome}","reason":${jsonString(record.reason)}` +
    (record.quic ? `,"transport":"quic","packetsFromClient":${record.quic.packetsFromClient},"packetsToClient":${record.quic.packetsToClient}` : '')
  );
}

export interface AccessLogOptions {
  /** Writes the connection lines without pino's serializer (JSON logs); without it they go through `logger`. */
  writeLine?: LineWriter | null;
  /** At most one line per listener (and reason or route) this often for events that can come in storms. */
  rateLimitMs?: number;
  /** Milliseconds on a monotonic clock (tests pass their own). */
  now?: () => number;
}

/**
 * Lets the first event of a kind through, then one line per window at most:
 * the events in between are counted, and the next line (or, once the window
 * ends, a line of its own) carries that count as `suppressed`. Under a
 * descriptor storm or a dead cluster every connection would otherwise log.
 */
class RateLimitedLines {
  private readonly windows = new Map<string, { endsAt: number; suppressed: number; summary: NodeJS.Timeout | null }>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** Calls `write(suppressed)` now, or later once for all the events of this window. */
  event(key: string, write: (suppressed: number) => void): void {
    const now = this.now();
    const window = this.windows.get(key);
    if (window === undefined || (now >= window.endsAt && window.summary === null)) {
      // Whatever an earlier window suppressed was reported by its own summary line.
      this.windows.set(key, { endsAt: now + this.windowMs, suppressed: 0, summary: null });
      write(0);
      return;
    }
    window.suppressed++;
    window.summary ??= setTimeout(
      () => {
        const suppressed = window.suppressed;
        this.windows.set(key, { endsAt: this.now() + this.windowMs, suppressed: 0, summary: null });
        write(suppressed);
      },
      Math.max(0, window.endsAt - now),
    ).unref();
  }
}

/** Logs: the one line per connection when it closes, backend health changes, listener failures, and (rate-limited) dropped clients and panic routing. */
export function accessLog(logger: Logger, { writeLine = null, rateLimitMs = 10_000, now = () => performance.now() }: AccessLogOptions = {}): ProxyObserver {
  const limited = new RateLimitedLines(rateLimitMs, now);
  return {
    connectionAccepted() {},
    connectionClosed(record: ConnectionRecord): void {
      const level = warningOutcomes.has(record.outcome) ? WARN : INFO;
      // Below the configured level (--log-level warn) the line is not even built.
      if (level < logger.levelVal) return;
      if (writeLine !== null) writeLine(level, recordFields(record), 'connection closed');
      else {
        const { quic, ...fields } = record;
        const line = quic ? { ...fields, transport: 'quic', ...quic } : fields;
        if (level === WARN) logger.warn(line, 'connection closed');
        else logger.info(line, 'connection closed');
      }
    },
    backendConnected() {},
    backendConnectFailed() {},
    backendHealthChanged(change): void {
      if (change.state === 'down') logger.warn(change, 'backend down');
      else logger.info(change, 'backend up');
    },
    connectionDropped(listener: string, reason: DropReason): void {
      limited.event(JSON.stringify(['dropped', listener, reason]), (suppressed) => logger.warn({ listener, reason, suppressed }, dropMessages[reason]));
    },
    panicRouting(listener: string, route: string): void {
      limited.event(JSON.stringify(['panic', listener, route]), (suppressed) =>
        logger.warn({ listener, route, suppressed }, 'every backend of the route is marked down: trying them anyway (panic routing)'),
      );
    },
    // The connection's own line says it (outcome tls_handshake_failed, with the reason); metrics count it.
    tlsHandshakeFailed() {},
    datagramDropped(listener: string, reason: DatagramDropReason): void {
      limited.event(JSON.stringify(['datagram', listener, reason]), (suppressed) =>
        logger.info({ listener, transport: 'quic', reason, suppressed }, datagramDropMessages[reason]),
      );
    },
    listenerError(listener: string, error: Error): void {
      logger.error({ listener, err: error }, 'listener error');
    },
  };
}
