import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { BackendConfig, HealthCheckConfig, ProxyConfig } from '../config/types.js';

export type HealthChange = { backend: string; state: 'up' | 'down'; cause: 'connect_failures' | 'health_check' | 'recovered' };

export interface HealthObserver {
  backendHealthChanged(change: HealthChange): void;
}

/**
 * What the proxy knows about one backend address, shared by every route that
 * lists it and kept across reloads while the address stays in the config.
 */
export class BackendState {
  readonly address: string;
  /** Connections spliced to it or dialling it right now (for leastconn). */
  active = 0;
  /** Consecutive failed connects. */
  failures = 0;
  /** Passive health: skipped until this time (performance.now() ms); 0 when up. */
  downUntil = 0;
  /** A connection is trying it after `failTimeout`; others keep skipping it until that one's result. */
  probing = false;
  /** Active health: false once `fall` checks failed, until `rise` pass. */
  healthy = true;
  private readonly observer: HealthObserver;

  constructor(address: string, observer: HealthObserver) {
    this.address = address;
    this.observer = observer;
  }

  /** Whether a new connection may try it: not skipped after failures (or it is time for its one retry). */
  isAvailable(now: number, useHealthChecks: boolean): boolean {
    if (useHealthChecks && !this.healthy) return false;
    return this.downUntil === 0 || (now >= this.downUntil && !this.probing);
  }

  /** Claims the attempt; false when another connection is already the one retrying it. */
  startAttempt(now: number): boolean {
    if (this.downUntil === 0) return true;
    if (now < this.downUntil || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** The connection retrying it went away before the dial ended: another may retry it. */
  abandonProbe(): void {
    this.probing = false;
  }

  connectSucceeded(): void {
    this.failures = 0;
    this.probing = false;
    if (this.downUntil !== 0) {
      this.downUntil = 0;
      this.observer.backendHealthChanged({ backend: this.address, state: 'up', cause: 'recovered' });
    }
  }

  connectFailed(now: number, maxFails: number, failTimeout: number): void {
    this.failures++;
    const wasProbe = this.probing;
    this.probing = false;
    if (maxFails === 0 || (this.failures < maxFails && !wasProbe)) return;
    const wasUp = this.downUntil === 0;
    this.downUntil = now + failTimeout;
    if (wasUp) this.observer.backendHealthChanged({ backend: this.address, state: 'down', cause: 'connect_failures' });
  }

  /** Applies one active check's result with `rise`/`fall` hysteresis. */
  checkResult(passed: boolean, counts: { passes: number; fails: number }, config: HealthCheckConfig): void {
    if (passed) {
      counts.fails = 0;
      counts.passes++;
      if (!this.healthy && counts.passes >= config.rise) {
        this.healthy = true;
        this.observer.backendHealthChanged({ backend: this.address, state: 'up', cause: 'health_check' });
      }
    } else {
      counts.passes = 0;
      counts.fails++;
      if (this.healthy && counts.fails >= config.fall) {
        this.healthy = false;
        this.observer.backendHealthChanged({ backend: this.address, state: 'down', cause: 'health_check' });
      }
    }
  }
}

/** Periodic TCP connect checks of one backend. */
class HealthChecker {
  readonly config: HealthCheckConfig;
  private readonly backend: BackendConfig;
  private readonly state: BackendState;
  private readonly counts = { passes: 0, fails: 0 };
  private timer: NodeJS.Timeout | null = null;
  private probe: net.Socket | null = null;
  private stopped = false;

  constructor(backend: BackendConfig, state: BackendState, config: HealthCheckConfig) {
    this.backend = backend;
    this.state = state;
    this.config = config;
    this.check();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.probe?.destroy();
  }

  private check(): void {
    const socket = net.connect({ host: this.backend.host, port: this.backend.port });
    this.probe = socket;
    let done = false;
    const finish = (passed: boolean): void => {
      if (done) return;
      done = true;
      socket.destroy();
      this.probe = null;
      if (this.stopped) return;
      this.state.checkResult(passed, this.counts, this.config);
      this.timer = setTimeout(() => this.check(), this.config.interval);
      this.timer.unref();
    };
    socket.setTimeout(this.config.timeout, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  }
}

/**
 * Every backend's state by address, resynchronised on each config apply:
 * addresses that stay keep their counts and health; checks start, change or
 * stop with the routes that ask for them.
 */
export class BackendRegistry {
  private readonly states = new Map<string, BackendState>();
  private readonly checkers = new Map<string, HealthChecker>();
  private readonly observer: HealthObserver;
  private readonly activeChecks: boolean;

  /**
   * `activeChecks: false`: the checks a config asks for run elsewhere (in
   * the primary, once for every worker) and their verdicts arrive through
   * `setHealthy`; passive health (connect failures) stays local.
   */
  constructor(observer: HealthObserver, { activeChecks = true }: { activeChecks?: boolean } = {}) {
    this.observer = observer;
    this.activeChecks = activeChecks;
  }

  /** An active check's verdict from elsewhere; ignored for an address this config does not use. */
  setHealthy(address: string, healthy: boolean): void {
    const state = this.states.get(address);
    if (state) state.healthy = healthy;
  }

  get(address: string): BackendState {
    let state = this.states.get(address);
    if (!state) this.states.set(address, (state = new BackendState(address, this.observer)));
    return state;
  }

  /** Keeps the states of backends in `config`, forgets the others, and runs the health checks it asks for. */
  sync(config: ProxyConfig): void {
    const wanted = new Map<string, { backend: BackendConfig; check: HealthCheckConfig | null }>();
    for (const listener of config.listeners) {
      for (const route of listener.defaultRoute ? [...listener.routes, listener.defaultRoute] : listener.routes) {
        for (const backend of route.backends) {
          const previous = wanted.get(backend.address);
          if (!previous?.check) wanted.set(backend.address, { backend, check: route.healthCheck });
        }
        // ACME challenge backends are not health-checked (a route's checks are for its backends); their state is kept all the same.
        for (const backend of route.acmeChallenge) if (!wanted.has(backend.address)) wanted.set(backend.address, { backend, check: null });
      }
    }
    for (const [address, checker] of this.checkers) {
      const check = wanted.get(address)?.check;
      if (check && JSON.stringify(check) === JSON.stringify(checker.config)) continue;
      checker.stop();
      this.checkers.delete(address);
    }
    for (const address of this.states.keys()) if (!wanted.has(address)) this.states.delete(address);
    for (const [address, { backend, check }] of wanted) {
      const state = this.get(address);
      if (check === null) state.healthy = true;
      else if (this.activeChecks && !this.checkers.has(address)) this.checkers.set(address, new HealthChecker(backend, state, check));
    }
  }

  /** Whether each backend takes new connections now. */
  health(): Array<{ backend: string; up: boolean }> {
    const now = performance.now();
    return [...this.states.values()].map((state) => ({ backend: state.address, up: state.healthy && (state.downUntil === 0 || now >= state.downUntil) }));
  }

  stop(): void {
    for (const checker of this.checkers.values()) checker.stop();
    this.checkers.clear();
  }
}
