import type { Registry } from 'prom-client';
import type { BackendStatus, HealthChange } from '../backends/health.js';
import type { ConnectionRecord } from '../pipeline/record.js';
import type { ProxyObserver } from '../pipeline/observer.js';
import { CounterFamily, type Family, formatFamilies, GaugeFamily, HistogramFamily, PROMETHEUS_CONTENT_TYPE } from './prometheus.js';

/** What the metrics read from the running proxy when scraped (gauges), rather than tracking it on the hot path. */
export interface MetricSources {
  openConnections(): Array<{ listener: string; open: number }>;
  backendHealth(): BackendStatus[];
}

export interface ProxyMetrics extends ProxyObserver {
  reloadFinished(result: string): void;
  configApplied(generation: number, hash: string): void;
  /**
   * Adds Node's process metrics (CPU, memory, event loop, GC: prom-client's
   * default metrics) to every later scrape. Called when an admin endpoint is
   * first configured; prom-client is loaded at the first scrape after that
   * (about 2 MiB of resident memory that a proxy nobody scrapes never pays),
   * and its GC and event-loop figures count from then.
   */
  enableProcessMetrics(): void;
  /** The Prometheus text exposition: the proxy's metrics, counted since the process started, then the process metrics if enabled. */
  scrape(): Promise<{ contentType: string; body: string }>;
}

const P = 'sni_passthrough_';

/**
 * The proxy's metrics, fed by its observer events. They live in a small own
 * store (lib/observe/prometheus.ts) from the start, so totals are right even
 * when the admin endpoint that serves them is added by a later reload.
 */
export function createMetrics(sources: MetricSources): ProxyMetrics {
  const accepted = new CounterFamily(`${P}connections_accepted_total`, 'Connections accepted, by listener', ['listener']);
  const closed = new CounterFamily(
    `${P}connections_closed_total`,
    'Connections closed, by listener, route (matched pattern, "default" or "none") and outcome',
    ['listener', 'route', 'outcome'],
  );
  const open = new GaugeFamily(`${P}connections_open`, 'Connections open now, by listener', ['listener'], () =>
    sources.openConnections().map(({ listener, open }) => ({ labels: [listener], value: open })),
  );
  const dropped = new CounterFamily(
    `${P}connections_dropped_total`,
    'Clients closed as soon as they were accepted, by listener and reason (fd_limit: the process is at its open file limit)',
    ['listener', 'reason'],
  );
  const bytes = new CounterFamily(
    `${P}bytes_total`,
    'Bytes passed, by listener, route and direction (from_client, to_client); counted when a connection closes',
    ['listener', 'route', 'direction'],
  );
  const quicPackets = new CounterFamily(
    `${P}quic_packets_total`,
    'QUIC datagrams passed, by listener, route and direction (from_client, to_client); counted when a flow closes',
    ['listener', 'route', 'direction'],
  );
  const quicDropped = new CounterFamily(
    `${P}quic_datagrams_dropped_total`,
    'QUIC datagrams not passed on (garbage, unknown version, no route, a limit), by listener and reason',
    ['listener', 'reason'],
  );
  const helloFailures = new CounterFamily(`${P}client_hello_failures_total`, 'ClientHellos rejected, by listener and reason', ['listener', 'reason']);
  const requestFailures = new CounterFamily(
    `${P}http_request_failures_total`,
    'HTTP requests refused before routing (answered 400, 408, 414 or 431), by listener and reason',
    ['listener', 'reason'],
  );
  const connectFailures = new CounterFamily(`${P}backend_connect_failures_total`, 'Failed backend connection attempts, by backend and reason', [
    'backend',
    'reason',
  ]);
  const connectLatency = new HistogramFamily(
    `${P}backend_connect_duration_seconds`,
    'Time to establish a backend connection (DNS included), by backend',
    ['backend'],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  );
  const up = new GaugeFamily(
    `${P}backend_up`,
    'Whether a backend takes new connections (1) or is skipped after failures or failed health checks (0)',
    ['backend'],
    () => sources.backendHealth().map(({ backend, up }) => ({ labels: [backend], value: up ? 1 : 0 })),
  );
  const drained = new GaugeFamily(
    `${P}backend_drained`,
    'Whether a backend is drained by the operator (1: no new connections, open ones go on) or in rotation (0)',
    ['backend'],
    () => sources.backendHealth().map(({ backend, drained }) => ({ labels: [backend], value: drained ? 1 : 0 })),
  );
  const healthChanges = new CounterFamily(`${P}backend_health_changes_total`, 'Backend up/down transitions, by backend, new state and cause', [
    'backend',
    'state',
    'cause',
  ]);
  const panicRouting = new CounterFamily(
    `${P}panic_routing_total`,
    'Connections that tried every backend of a route although all were marked down (panic routing), by listener and route',
    ['listener', 'route'],
  );
  const handshakeFailures = new CounterFamily(
    `${P}tls_handshake_failures_total`,
    'TLS handshakes with clients that failed on terminating routes, by listener, route and reason (the TLS error, or timeout)',
    ['listener', 'route', 'reason'],
  );
  const reloads = new CounterFamily(`${P}reloads_total`, 'Config reloads, by result (applied, unchanged, refused)', ['result']);
  let running: { generation: number; hash: string } | null = null;
  const generation = new GaugeFamily(`${P}config_generation`, 'Generation of the running config (1 at start, +1 per applied reload)', [], () =>
    running ? [{ labels: [], value: running.generation }] : [],
  );
  const configInfo = new GaugeFamily(
    `${P}config_info`,
    'The running config: its generation and the SHA-256 of its text (value always 1)',
    ['generation', 'sha256'],
    () => (running ? [{ labels: [String(running.generation), running.hash], value: 1 }] : []),
  );
  const families: Family[] = [
    accepted,
    closed,
    open,
    dropped,
    bytes,
    quicPackets,
    quicDropped,
    helloFailures,
    requestFailures,
    connectFailures,
    connectLatency,
    up,
    drained,
    healthChanges,
    panicRouting,
    handshakeFailures,
    reloads,
    generation,
    configInfo,
  ];
  let processMetricsEnabled = false;
  let processMetrics: Promise<Registry> | null = null;

  return {
    connectionAccepted(listener) {
      accepted.inc([listener]);
    },
    connectionClosed(record: ConnectionRecord) {
      const route = record.route ?? 'none';
      closed.inc([record.listener, route, record.outcome]);
      if (record.bytesFromClient > 0) bytes.inc([record.listener, route, 'from_client'], record.bytesFromClient);
      if (record.bytesToClient > 0) bytes.inc([record.listener, route, 'to_client'], record.bytesToClient);
      if (record.quic) {
        quicPackets.inc([record.listener, route, 'from_client'], record.quic.packetsFromClient);
        if (record.quic.packetsToClient > 0) quicPackets.inc([record.listener, route, 'to_client'], record.quic.packetsToClient);
      }
      if (record.outcome === 'bad_hello') helloFailures.inc([record.listener, record.reason ?? 'unknown']);
      else if (record.outcome === 'hello_timeout') helloFailures.inc([record.listener, 'timeout']);
      else if (record.outcome === 'bad_request') requestFailures.inc([record.listener, record.reason ?? 'unknown']);
      else if (record.outcome === 'request_timeout') requestFailures.inc([record.listener, 'timeout']);
    },
    backendConnected(_listener, backend, latencyMs) {
      connectLatency.observe([backend], latencyMs / 1000);
    },
    backendConnectFailed(_listener, backend, reason) {
      connectFailures.inc([backend, reason]);
    },
    backendHealthChanged(change: HealthChange) {
      // A templated backend counts under its template: its names come from clients and would make series without bound.
      healthChanges.inc([change.template ?? change.backend, change.state, change.cause]);
    },
    connectionDropped(listener, reason) {
      dropped.inc([listener, reason]);
    },
    datagramDropped(listener, reason) {
      quicDropped.inc([listener, reason]);
    },
    panicRouting(listener, route) {
      panicRouting.inc([listener, route]);
    },
    tlsHandshakeFailed(listener, route, reason) {
      handshakeFailures.inc([listener, route, reason]);
    },
    listenerError() {},
    reloadFinished(result) {
      reloads.inc([result]);
    },
    configApplied(current, hash) {
      running = { generation: current, hash };
    },
    enableProcessMetrics() {
      processMetricsEnabled = true;
    },
    async scrape() {
      const own = formatFamilies(families);
      if (processMetricsEnabled) {
        processMetrics ??= import('prom-client').then(({ Registry, collectDefaultMetrics }) => {
          const registry = new Registry();
          collectDefaultMetrics({ register: registry });
          return registry;
        });
      }
      const processText = processMetrics ? await (await processMetrics).metrics() : '';
      return { contentType: PROMETHEUS_CONTENT_TYPE, body: processText ? `${own}\n${processText}` : own };
    },
  };
}
