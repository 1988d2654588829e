import { performance } from 'node:perf_hooks';
import type { HostLookup, LookupCallback } from './dial.js';

/** A resolver's answer: the addresses, in the order to try them, and how long (seconds) they may be kept. */
export interface DnsAnswer {
  addresses: string[];
  ttl: number;
}

/** Asks a resolver once; calls back once, with the answer or an error code ('ENOTFOUND', 'ETIMEOUT', ...). */
export type DnsQuery = (name: string, callback: (error: string | null, answer: DnsAnswer | null) => void) => void;

export interface DnsCacheOptions {
  query: DnsQuery;
  /** Milliseconds on a monotonic clock (default performance.now); tests move it by hand. */
  now?: () => number;
  /** Names kept; past it the least recently used goes (default 10,000). */
  maxEntries?: number;
  /** Bounds on how long an answer is kept, whatever its TTL says (ms; default 1 s and 1 h). */
  minTtl?: number;
  maxTtl?: number;
  /** How long "no such name" (ENOTFOUND, ENODATA) is kept (ms; default 5 s). */
  negativeTtl?: number;
  /** How long another failure (server unreachable, timeout, SERVFAIL) is kept (ms; default 1 s): just long enough to spare the resolver a burst. */
  errorTtl?: number;
}

/** A cached answer or failure, until `expiresAt`. */
interface Entry {
  addresses: readonly string[];
  error: string | null;
  expiresAt: number;
}

const NAME_ERRORS = new Set(['ENOTFOUND', 'ENODATA']);
const NO_ADDRESSES: readonly string[] = [];

function answerLater(callback: LookupCallback, error: string | null, addresses: readonly string[]): void {
  callback(error, addresses);
}

/**
 * Answers kept for their TTL (clamped), failures for a short while, in a
 * bounded least-recently-used map; concurrent lookups of one name share one
 * query. Callbacks are always called asynchronously, cached or not, so a
 * caller never sees its callback before its own call returns.
 */
export class DnsCache implements HostLookup {
  private readonly query: DnsQuery;
  private readonly now: () => number;
  private readonly maxEntries: number;
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly negativeTtl: number;
  private readonly errorTtl: number;
  /** Map order is use order: the first key is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  /** Names being asked now, with everyone waiting for the answer. */
  private readonly pending = new Map<string, LookupCallback[]>();

  constructor(options: DnsCacheOptions) {
    this.query = options.query;
    this.now = options.now ?? (() => performance.now());
    this.maxEntries = options.maxEntries ?? 10_000;
    this.minTtl = options.minTtl ?? 1_000;
    this.maxTtl = options.maxTtl ?? 3_600_000;
    this.negativeTtl = options.negativeTtl ?? 5_000;
    this.errorTtl = options.errorTtl ?? 1_000;
  }

  /** Names cached now (expired ones included until they are asked for again or pushed out). */
  get size(): number {
    return this.entries.size;
  }

  lookup(name: string, callback: LookupCallback): void {
    const entry = this.entries.get(name);
    if (entry !== undefined) {
      if (entry.expiresAt > this.now()) {
        // Most recently used goes last.
        this.entries.delete(name);
        this.entries.set(name, entry);
        process.nextTick(answerLater, callback, entry.error, entry.addresses);
        return;
      }
      this.entries.delete(name);
    }
    const waiting = this.pending.get(name);
    if (waiting !== undefined) {
      waiting.push(callback);
      return;
    }
    this.pending.set(name, [callback]);
    this.query(name, (error, answer) => this.answered(name, error, answer));
  }

  private answered(name: string, error: string | null, answer: DnsAnswer | null): void {
    const waiting = this.pending.get(name) ?? [];
    this.pending.delete(name);
    const entry: Entry =
      error === null && answer !== null && answer.addresses.length > 0
        ? { addresses: answer.addresses, error: null, expiresAt: this.now() + this.clampTtl(answer.ttl) }
        : {
            addresses: NO_ADDRESSES,
            error: error ?? 'ENODATA',
            expiresAt: this.now() + (error === null || NAME_ERRORS.has(error) ? this.negativeTtl : this.errorTtl),
          };
    this.entries.set(name, entry);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    for (const callback of waiting) process.nextTick(answerLater, callback, entry.error, entry.addresses);
  }

  private clampTtl(seconds: number): number {
    return Math.min(this.maxTtl, Math.max(this.minTtl, seconds * 1000));
  }
}
