import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { HealthChange } from '../backends/health.js';
import type { ConnectionRecord } from '../pipeline/record.js';
import type { ProxyObserver } from '../pipeline/observer.js';

/** What the metrics read from the running proxy when scraped (gauges), rather than tracking it on the hot path. */
export interface MetricSources {
  openConnections(): Array<{ listener: string; open: number }>;
  backendHealth(): Array<{ backend: string; up: boolean }>;
}

export interface ProxyMetrics extends ProxyObserver {
  readonly registry: Registry;
  reloadFinished(result: string): void;
  configApplied(generation: number, hash: string): void;
}

/** Prometheus metrics (prom-client) fed by the proxy's observer events. */
export function createMetrics(sources: MetricSources): ProxyMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const prefix = 'sni_passthrough_';

  const accepted = new Counter({
    name: `${prefix}connections_accepted_total`,
    help: 'Connections accepted, by listener',
    labelNames: ['listener'],
    registers: [registry],
  });
  const closed = new Counter({
    name: `${prefix}connections_closed_total`,
    help: 'Connections closed, by listener, route (matched pattern, "default" or "none") and outcome',
    labelNames: ['listener', 'route', 'outcome'],
    registers: [registry],
  });
  new Gauge({
    name: `${prefix}connections_open`,
    help: 'Connections open now, by listener',
    labelNames: ['listener'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { listener, open } of sources.openConnections()) this.set({ listener }, open);
    },
  });
  const bytes = new Counter({
    name: `${prefix}bytes_total`,
    help: 'Bytes passed, by listener, route and direction (from_client, to_client); counted when a connection closes',
    labelNames: ['listener', 'route', 'direction'],
    registers: [registry],
  });
  const helloFailures = new Counter({
    name: `${prefix}client_hello_failures_total`,
    help: 'ClientHellos rejected, by listener and reason',
    labelNames: ['listener', 'reason'],
    registers: [registry],
  });
  const connectFailures = new Counter({
    name: `${prefix}backend_connect_failures_total`,
    help: 'Failed backend connection attempts, by backend and reason',
    labelNames: ['backend', 'reason'],
    registers: [registry],
  });
  const connectLatency = new Histogram({
    name: `${prefix}backend_connect_duration_seconds`,
    help: 'Time to establish a backend connection (DNS included), by backend',
    labelNames: ['backend'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  new Gauge({
    name: `${prefix}backend_up`,
    help: 'Whether a backend takes new connections (1) or is skipped after failures or failed health checks (0)',
    labelNames: ['backend'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { backend, up } of sources.backendHealth()) this.set({ backend }, up ? 1 : 0);
    },
  });
  const healthChanges = new Counter({
    name: `${prefix}backend_health_changes_total`,
    help: 'Backend up/down transitions, by backend, new state and cause',
    labelNames: ['backend', 'state', 'cause'],
    registers: [registry],
  });
  const reloads = new Counter({
    name: `${prefix}reloads_total`,
    help: 'Config reloads, by result (applied, unchanged, refused)',
    labelNames: ['result'],
    registers: [registry],
  });
  const generation = new Gauge({
    name: `${prefix}config_generation`,
    help: 'Generation of the running config (1 at start, +1 per applied reload)',
    registers: [registry],
  });
  const configInfo = new Gauge({
    name: `${prefix}config_info`,
    help: 'The running config: its generation and the SHA-256 of its text (value always 1)',
    labelNames: ['generation', 'sha256'],
    registers: [registry],
  });

  return {
    registry,
    connectionAccepted(listener) {
      accepted.inc({ listener });
    },
    connectionClosed(record: ConnectionRecord) {
      const route = record.route ?? 'none';
      closed.inc({ listener: record.listener, route, outcome: record.outcome });
      if (record.bytesFromClient > 0) bytes.inc({ listener: record.listener, route, direction: 'from_client' }, record.bytesFromClient);
      if (record.bytesToClient > 0) bytes.inc({ listener: record.listener, route, direction: 'to_client' }, record.bytesToClient);
      if (record.outcome === 'bad_hello') helloFailures.inc({ listener: record.listener, reason: record.reason ?? 'unknown' });
      else if (record.outcome === 'hello_timeout') helloFailures.inc({ listener: record.listener, reason: 'timeout' });
    },
    backendConnected(_listener, backend, latencyMs) {
      connectLatency.observe({ backend }, latencyMs / 1000);
    },
    backendConnectFailed(_listener, backend, reason) {
      connectFailures.inc({ backend, reason });
    },
    backendHealthChanged(change: HealthChange) {
      healthChanges.inc({ backend: change.backend, state: change.state, cause: change.cause });
    },
    connectionDropped() {},
    panicRouting() {},
    listenerError() {},
    reloadFinished(result) {
      reloads.inc({ result });
    },
    configApplied(current, hash) {
      generation.set(current);
      configInfo.reset();
      configInfo.set({ generation: String(current), sha256: hash }, 1);
    },
  };
}
