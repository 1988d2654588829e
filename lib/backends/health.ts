import { performance } from 'node:perf_hooks';
import type { BackendConfig, HealthCheckConfig, ProxyConfig } from '../config/types.js';
import { isHostTemplate } from '../config/values.js';
import { dial, type HostLookup } from './dial.js';
import { HostResolver } from './host-resolver.js';

/** What the admin endpoint and the metrics show of one backend. */
export interface BackendStatus {
  backend: string;
  /** Takes new connections as far as health goes: not failing checks, not skipped after failures. */
  up: boolean;
  drained: boolean;
  /** Connections spliced to it or dialling it now. */
  active: number;
}

export type HealthChange = {
  backend: string;
  state: 'up' | 'down';
  cause: 'connect_failures' | 'health_check' | 'recovered';
  /** For a backend a template named ("app.internal:8443"), the template as configured ("{1}.internal:8443"). */
  template?: string;
};

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
  /** The configured template this backend's name was made from; null for a configured backend. */
  readonly template: string | null;
  /**
   * Taken out of rotation by the operator (admin `drain`): no new connection
   * dials it, whatever its health, while the ones open go on.
   */
  drained = false;
  private readonly observer: HealthObserver;

  constructor(address: string, observer: HealthObserver, template: string | null = null) {
    this.address = address;
    this.observer = observer;
    this.template = template;
  }

  private changed(state: HealthChange['state'], cause: HealthChange['cause']): void {
    const change: HealthChange = { backend: this.address, state, cause };
    if (this.template !== null) change.template = this.template;
    this.observer.backendHealthChanged(change);
  }

  /** Whether a new connection may try it: not skipped after failures (or it is time for its one retry). */
  isAvailable(now: number, useHealthChecks: boolean): boolean {
    if (this.drained || (useHealthChecks && !this.healthy)) return false;
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
      this.changed('up', 'recovered');
    }
  }

  connectFailed(now: number, maxFails: number, failTimeout: number): void {
    this.failures++;
    const wasProbe = this.probing;
    this.probing = false;
    if (maxFails === 0 || (this.failures < maxFails && !wasProbe)) return;
    const wasUp = this.downUntil === 0;
    this.downUntil = now + failTimeout;
    if (wasUp) this.changed('down', 'connect_failures');
  }

  /** Applies one active check's result with `rise`/`fall` hysteresis. */
  checkResult(passed: boolean, counts: { passes: number; fails: number }, config: HealthCheckConfig): void {
    if (passed) {
      counts.fails = 0;
      counts.passes++;
      if (!this.healthy && counts.passes >= config.rise) {
        this.healthy = true;
        this.changed('up', 'health_check');
      }
    } else {
      counts.passes = 0;
      counts.fails++;
      if (this.healthy && counts.fails >= config.fall) {
        this.healthy = false;
        this.changed('down', 'health_check');
      }
    }
  }
}

function statusOf(state: BackendState, now = performance.now()): BackendStatus {
  return {
    backend: state.address,
    up: state.healthy && (state.downUntil === 0 || now >= state.downUntil),
    drained: state.drained,
    active: state.active,
  };
}

/**
 * Periodic TCP connect checks of one backend, dialled as connections are
 * (the same resolver and its cache, every address of a name tried), so a
 * check passes exactly when a connection could be made.
 */
class HealthChecker {
  readonly config: HealthCheckConfig;
  private readonly backend: BackendConfig;
  private readonly state: BackendState;
  private readonly resolver: HostLookup;
  private readonly counts = { passes: 0, fails: 0 };
  private timer: NodeJS.Timeout | null = null;
  private cancelProbe: (() => void) | null = null;
  private stopped = false;

  constructor(backend: BackendConfig, state: BackendState, config: HealthCheckConfig, resolver: HostLookup) {
    this.backend = backend;
    this.state = state;
    this.config = config;
    this.resolver = resolver;
    this.check();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.cancelProbe?.();
  }

  private check(): void {
    this.cancelProbe = dial(this.backend.host, this.backend.port, this.config.timeout, this.resolver, (error, socket) => {
      this.cancelProbe = null;
      socket?.destroy();
      if (this.stopped) return;
      this.state.checkResult(error === null, this.counts, this.config);
      this.timer = setTimeout(() => this.check(), this.config.interval);
      this.timer.unref();
    });
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
  private readonly resolver: HostLookup;
  private readonly activeChecks: boolean;

  /**
   * `resolver`: what health checks resolve backend names with (the proxy's,
   * so `resolvers` apply to them too). `activeChecks: false`: the checks a
   * config asks for run elsewhere (in the primary, once for every worker)
   * and their verdicts arrive through `setHealthy`; passive health (connect
   * failures) stays local.
   */
  constructor(observer: HealthObserver, { resolver = new HostResolver(), activeChecks = true }: { resolver?: HostLookup; activeChecks?: boolean } = {}) {
    this.observer = observer;
    this.resolver = resolver;
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

  /**
   * The state of `address` when the config lists it, else a new one that only
   * the caller keeps: a templated backend's name comes from a client, and
   * such names must not grow this registry (the caller bounds what it keeps).
   */
  stateFor(address: string, template: string): BackendState {
    return this.states.get(address) ?? new BackendState(address, this.observer, template);
  }

  /**
   * Keeps the states of backends in `config`, forgets the others, and runs
   * the health checks it asks for. Templated backends have no state here:
   * their names are known only per connection.
   */
  sync(config: ProxyConfig): void {
    const wanted = new Map<string, { backend: BackendConfig; check: HealthCheckConfig | null }>();
    for (const listener of config.listeners) {
      for (const route of listener.defaultRoute ? [...listener.routes, listener.defaultRoute] : listener.routes) {
        for (const backend of route.backends) {
          if (isHostTemplate(backend.host)) continue;
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
      else if (this.activeChecks && !this.checkers.has(address)) this.checkers.set(address, new HealthChecker(backend, state, check, this.resolver));
    }
  }

  /**
   * Takes `address` out of rotation (or puts it back): kept across reloads
   * while the address stays in the config. null when the running config does
   * not list it (no state is created for an unknown address).
   */
  setDrained(address: string, drained: boolean): BackendStatus | null {
    const state = this.states.get(address);
    if (state === undefined) return null;
    state.drained = drained;
    return statusOf(state);
  }

  /** Each backend's health, drain state and load now. */
  health(): BackendStatus[] {
    const now = performance.now();
    return [...this.states.values()].map((state) => statusOf(state, now));
  }

  stop(): void {
    for (const checker of this.checkers.values()) checker.stop();
    this.checkers.clear();
  }
}
