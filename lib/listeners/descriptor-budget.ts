import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Descriptors one connection holds at most: the client's socket and the backend's. */
const PER_CONNECTION = 2;
/** Counting open descriptors reads a directory: near the limit, at most this often. */
const RECOUNT_EVERY_MS = 100;

/** The soft limit on open files (RLIMIT_NOFILE) from /proc/self/limits; null where unknown or unlimited. */
export function openFileLimit(limitsText = readProcFile('/proc/self/limits')): number | null {
  const match = limitsText === null ? null : /^Max open files\s+(\d+)/m.exec(limitsText);
  return match ? Number(match[1]) : null;
}

function readProcFile(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Descriptors open in this process now (Linux); null where that cannot be read. */
export function openFileCount(): number | null {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return null;
  }
}

/**
 * Keeps the process clear of its file descriptor limit. At the limit, libuv
 * accepts clients and closes them at once without telling anyone (its EMFILE
 * trick), and connections already accepted cannot dial their backend. So each
 * connection reserves its two descriptors when it is accepted, and a client
 * that would leave less than a margin (for health checks, DNS, the admin
 * endpoint, config loads) is refused at once, where it can be logged and
 * counted. Descriptors opened elsewhere are counted from /proc, when the budget runs
 * low (at most every 100 ms).
 */
export class DescriptorBudget {
  private readonly limit: number;
  private readonly margin: number;
  private readonly count: () => number | null;
  /** Descriptors reserved by open connections. */
  private reserved = 0;
  /** Descriptors open outside connections, at the last count. */
  private others: number;
  private countedAt = Number.NEGATIVE_INFINITY;

  constructor(limit: number, count: () => number | null = openFileCount) {
    this.limit = limit;
    this.margin = Math.max(16, Math.ceil(limit / 50));
    this.count = count;
    this.others = count() ?? 0;
  }

  /** The budget for this process, or null where its limit cannot be read (nothing is refused then). */
  static forThisProcess(): DescriptorBudget | null {
    const limit = openFileLimit();
    return limit === null ? null : new DescriptorBudget(limit);
  }

  /** Reserves a new connection's descriptors; false when that would leave less than the margin. */
  reserve(): boolean {
    // Within a second margin of the limit, descriptors opened or closed elsewhere matter: count them again.
    if (this.headroom() < this.margin) this.recount();
    if (this.headroom() < 0) return false;
    this.reserved += PER_CONNECTION;
    return true;
  }

  release(): void {
    this.reserved -= PER_CONNECTION;
  }

  /** Descriptors left above the margin once one more connection has its own. */
  private headroom(): number {
    return this.limit - this.margin - this.others - this.reserved - PER_CONNECTION;
  }

  private recount(): void {
    const now = performance.now();
    if (now - this.countedAt < RECOUNT_EVERY_MS) return;
    this.countedAt = now;
    const open = this.count();
    // Connections still dialling hold fewer than they reserved: `others` errs low by that many, the margin covers it.
    if (open !== null) this.others = Math.max(0, open - this.reserved);
  }
}
