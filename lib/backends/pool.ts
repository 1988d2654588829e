import { performance } from 'node:perf_hooks';
import type { BackendConfig, BalanceMode, RouteConfig } from '../config/types.js';
import type { BackendRegistry, BackendState } from './health.js';

/** Where a pool gets each backend's state: the registry (shared, kept across reloads), or a templated route's own. */
export type BackendStates = Pick<BackendRegistry, 'get'>;

export interface BackendTarget {
  config: BackendConfig;
  state: BackendState;
}

/** One connection's dial to one backend, from `beginAttempt` until it fails, is abandoned or the connection ends. */
export interface BackendAttempt {
  target: BackendTarget;
  /** This dial is the one retry a down backend gets after its `failTimeout`. */
  probe: boolean;
}

/** 32-bit FNV-1a: a stable, cheap hash for `source` balancing. */
function hashString(text: string, seed = 0x811c9dc5): number {
  let hash = seed;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Murmur3's finalizer: spreads the bits of a combined hash. */
function mix(value: number): number {
  let hash = value;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/** A route's pool, built on its first connection: a config with many routes pays only for the balancers of those in use. */
export function lazyPool(route: RouteConfig, registry: BackendRegistry): () => BackendPool {
  let pool: BackendPool | null = null;
  return () => (pool ??= new BackendPool(route, registry));
}

/**
 * A route's backends and how new connections are spread over them:
 * - roundrobin: smooth weighted round robin (as nginx: weights 1 and 2 give
 *   A B B A B B..., interleaved rather than in runs);
 * - leastconn: fewest open connections relative to weight;
 * - source: weighted rendezvous hashing of the client address, so a client
 *   keeps its backend while the set of usable backends stays the same, and
 *   only the clients of a backend that leaves move.
 * Backends with weight 0, drained by the operator, skipped after failures,
 * or failing health checks take no new connections.
 */
export class BackendPool {
  readonly targets: readonly BackendTarget[];
  private readonly balance: BalanceMode;
  private readonly retries: number | null;
  private readonly maxFails: number;
  private readonly failTimeout: number;
  private readonly useHealthChecks: boolean;
  private readonly currentWeights: number[];
  private readonly addressHashes: number[];
  /** Every target's index: the usable set when health is ignored. */
  private readonly everyIndex: number[];
  private tieBreak = 0;

  constructor(route: RouteConfig, registry: BackendStates) {
    this.targets = route.backends.filter((backend) => backend.weight > 0).map((config) => ({ config, state: registry.get(config.address) }));
    this.balance = route.balance;
    this.retries = route.retries;
    this.maxFails = route.maxFails;
    this.failTimeout = route.failTimeout;
    this.useHealthChecks = route.healthCheck !== null;
    this.currentWeights = this.targets.map(() => 0);
    this.addressHashes = this.targets.map((target) => hashString(target.config.address));
    this.everyIndex = this.targets.map((_, index) => index);
  }

  /**
   * The backends to try for one connection, in order: the balancer's choice,
   * then the other usable ones, for at most `retries + 1` attempts (default:
   * each once). Empty when none is usable.
   */
  plan(clientAddress: string): BackendTarget[] {
    const now = performance.now();
    const usable: number[] = [];
    for (let index = 0; index < this.targets.length; index++) {
      if (this.targets[index]!.state.isAvailable(now, this.useHealthChecks)) usable.push(index);
    }
    if (usable.length === 0) return [];
    return this.order(usable, clientAddress);
  }

  /**
   * Every backend (weight above 0) in the balancer's order, as if all were
   * up: for when none is usable. Like Envoy's panic threshold and nginx's
   * single upstream server, a route whose backends are all marked down still
   * tries them, so one that has recovered is used at once instead of after
   * its `failTimeout` or health checks. Drained backends are never in it.
   */
  panicPlan(clientAddress: string): BackendTarget[] {
    // A drained backend is the operator's decision, not a health verdict that may be wrong: panic routing leaves it out too.
    const undrained = this.everyIndex.filter((index) => !this.targets[index]!.state.drained);
    return undrained.length === 0 ? [] : this.order(undrained, clientAddress);
  }

  private order(usable: number[], clientAddress: string): BackendTarget[] {
    const chosen = this.choose(usable, clientAddress);
    const attempts = this.retries === null ? usable.length : this.retries + 1;
    const start = usable.indexOf(chosen);
    const order: BackendTarget[] = [];
    for (let attempt = 0; attempt < attempts; attempt++) order.push(this.targets[usable[(start + attempt) % usable.length]!]!);
    return order;
  }

  /**
   * Claims a dial to `target`, counted as one of its connections from now on
   * (so leastconn sees dials in flight); null when another connection is
   * already the one retrying it after its `failTimeout`, or when it was
   * drained since the plan was made. `ignoreHealth` (panic routing) dials it
   * whatever its health.
   */
  beginAttempt(target: BackendTarget, ignoreHealth = false): BackendAttempt | null {
    const { state } = target;
    // Drained since this connection's plan was made: it gets no new connection, not even in panic routing.
    if (state.drained) return null;
    const probe = !ignoreHealth && state.downUntil !== 0;
    if (!ignoreHealth && !state.startAttempt(performance.now())) return null;
    state.active++;
    return { target, probe };
  }

  /** The dial connected; the connection stays counted until `release`. */
  attemptSucceeded(attempt: BackendAttempt): void {
    attempt.target.state.connectSucceeded();
  }

  attemptFailed(attempt: BackendAttempt): void {
    attempt.target.state.active--;
    attempt.target.state.connectFailed(performance.now(), this.maxFails, this.failTimeout);
  }

  /** The client left before the dial ended: no verdict on the backend, and if it was the retry, another may try. */
  attemptAbandoned(attempt: BackendAttempt): void {
    attempt.target.state.active--;
    if (attempt.probe) attempt.target.state.abandonProbe();
  }

  /** A connection spliced to `attempt`'s backend ended. */
  release(attempt: BackendAttempt): void {
    attempt.target.state.active--;
  }

  private choose(usable: number[], clientAddress: string): number {
    if (usable.length === 1) return usable[0]!;
    if (this.balance === 'source') return this.chooseBySource(usable, clientAddress);
    if (this.balance === 'leastconn') return this.chooseLeastConnected(usable);
    return this.chooseRoundRobin(usable);
  }

  private chooseRoundRobin(usable: number[]): number {
    let total = 0;
    let chosen = usable[0]!;
    for (const index of usable) {
      const weight = this.targets[index]!.config.weight;
      total += weight;
      this.currentWeights[index]! += weight;
      if (this.currentWeights[index]! > this.currentWeights[chosen]!) chosen = index;
    }
    this.currentWeights[chosen]! -= total;
    return chosen;
  }

  private chooseLeastConnected(usable: number[]): number {
    // Rotate the starting point so ties (e.g. all idle) spread instead of all landing on the first backend.
    const offset = this.tieBreak++ % usable.length;
    let chosen = usable[offset]!;
    let best = Number.POSITIVE_INFINITY;
    for (let step = 0; step < usable.length; step++) {
      const index = usable[(offset + step) % usable.length]!;
      const target = this.targets[index]!;
      const load = target.state.active / target.config.weight;
      if (load < best) {
        best = load;
        chosen = index;
      }
    }
    return chosen;
  }

  private chooseBySource(usable: number[], clientAddress: string): number {
    const clientHash = hashString(clientAddress);
    let chosen = usable[0]!;
    let best = Number.NEGATIVE_INFINITY;
    for (const index of usable) {
      // Weighted rendezvous: score = weight / -ln(u), u uniform in (0, 1) from the pair's hash.
      const unit = (mix(clientHash ^ this.addressHashes[index]!) + 0.5) / 4294967296;
      const score = this.targets[index]!.config.weight / -Math.log(unit);
      if (score > best) {
        best = score;
        chosen = index;
      }
    }
    return chosen;
  }
}
