// createMetrics (lib/observe/metrics.ts): observer events in, Prometheus text
// format out, with gauges read from their sources at scrape time and Node's
// process metrics (prom-client) once enabled.
import t from 'tap';
import { createHash } from 'node:crypto';
import type { BackendStatus } from '../../lib/backends/health.js';
import { createMetrics } from '../../lib/observe/metrics.js';
import type { ConnectionRecord } from '../../lib/pipeline/record.js';
import { parsePrometheus, type Sample, samplesOf } from '../helpers/prometheus.js';

/** Samples of `name` whose labels include `labels`. */
function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samplesOf({ samples, types: new Map() }, name, labels);
}

/** The one value of `name` with exactly `labels`; undefined when absent. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const exact = samples.filter(
    (sample) => sample.name === name && JSON.stringify(Object.entries(sample.labels).sort()) === JSON.stringify(Object.entries(labels).sort()),
  );
  if (exact.length > 1) throw new Error(`${exact.length} samples of ${name} ${JSON.stringify(labels)}`);
  return exact[0]?.value;
}

function closed(overrides: Partial<ConnectionRecord>): ConnectionRecord {
  return {
    listener: 'public',
    client: '192.0.2.1:50000',
    sni: 'app.example.com',
    alpn: [],
    route: 'app.example.com',
    backend: '127.0.0.1:9443',
    attempts: 1,
    bytesFromClient: 0,
    bytesToClient: 0,
    durationMs: 1,
    outcome: 'ok',
    reason: null,
    ...overrides,
  };
}

const P = 'sni_passthrough_';

function setup(): {
  metrics: ReturnType<typeof createMetrics>;
  open: Array<{ listener: string; open: number }>;
  health: BackendStatus[];
  scrape(): Promise<Sample[]>;
} {
  const open: Array<{ listener: string; open: number }> = [];
  const health: BackendStatus[] = [];
  const metrics = createMetrics({ openConnections: () => open, backendHealth: () => health });
  return { metrics, open, health, scrape: async () => parsePrometheus((await metrics.scrape()).body).samples };
}

t.test('connections accepted and closed, by listener, route and outcome', async (t) => {
  const { metrics, scrape } = setup();
  for (let index = 0; index < 3; index++) metrics.connectionAccepted('public');
  metrics.connectionAccepted('internal');
  metrics.connectionClosed(closed({}));
  metrics.connectionClosed(closed({}));
  metrics.connectionClosed(closed({ route: null, sni: 'unknown.example', backend: null, outcome: 'no_route' }));
  metrics.connectionClosed(closed({ listener: 'internal', route: 'default', outcome: 'backend_unreachable', reason: 'ECONNREFUSED' }));
  const samples = await scrape();
  t.equal(value(samples, `${P}connections_accepted_total`, { listener: 'public' }), 3);
  t.equal(value(samples, `${P}connections_accepted_total`, { listener: 'internal' }), 1);
  t.equal(value(samples, `${P}connections_closed_total`, { listener: 'public', route: 'app.example.com', outcome: 'ok' }), 2);
  t.equal(value(samples, `${P}connections_closed_total`, { listener: 'public', route: 'none', outcome: 'no_route' }), 1, 'no route: route="none"');
  t.equal(value(samples, `${P}connections_closed_total`, { listener: 'internal', route: 'default', outcome: 'backend_unreachable' }), 1);
  t.equal(find(samples, `${P}connections_closed_total`).length, 3, 'one series per label set seen');
});

t.test('bytes each way, added when a connection closes', async (t) => {
  const { metrics, scrape } = setup();
  metrics.connectionClosed(closed({ bytesFromClient: 1000, bytesToClient: 50_000 }));
  metrics.connectionClosed(closed({ bytesFromClient: 24, bytesToClient: 0 }));
  metrics.connectionClosed(closed({ route: '*.example.com', bytesFromClient: 7, bytesToClient: 9 }));
  const samples = await scrape();
  t.equal(value(samples, `${P}bytes_total`, { listener: 'public', route: 'app.example.com', direction: 'from_client' }), 1024);
  t.equal(value(samples, `${P}bytes_total`, { listener: 'public', route: 'app.example.com', direction: 'to_client' }), 50_000);
  t.equal(value(samples, `${P}bytes_total`, { listener: 'public', route: '*.example.com', direction: 'from_client' }), 7);
  t.equal(value(samples, `${P}bytes_total`, { listener: 'public', route: '*.example.com', direction: 'to_client' }), 9);
});

t.test('ClientHello failures by reason, timeouts as "timeout"', async (t) => {
  const { metrics, scrape } = setup();
  metrics.connectionClosed(closed({ route: null, backend: null, sni: null, outcome: 'bad_hello', reason: 'not_tls' }));
  metrics.connectionClosed(closed({ route: null, backend: null, sni: null, outcome: 'bad_hello', reason: 'not_tls' }));
  metrics.connectionClosed(closed({ route: null, backend: null, sni: null, outcome: 'bad_hello', reason: 'too_large' }));
  metrics.connectionClosed(closed({ route: null, backend: null, sni: null, outcome: 'hello_timeout' }));
  metrics.connectionClosed(closed({ outcome: 'ok' }));
  const samples = await scrape();
  t.equal(value(samples, `${P}client_hello_failures_total`, { listener: 'public', reason: 'not_tls' }), 2);
  t.equal(value(samples, `${P}client_hello_failures_total`, { listener: 'public', reason: 'too_large' }), 1);
  t.equal(value(samples, `${P}client_hello_failures_total`, { listener: 'public', reason: 'timeout' }), 1);
  t.equal(find(samples, `${P}client_hello_failures_total`).length, 3, 'nothing for the connection that was fine');
});

t.test('HTTP requests refused before routing, by reason, timeouts as "timeout"; neither counts as a hello failure', async (t) => {
  const { metrics, scrape } = setup();
  const refused = { listener: 'web', route: null, backend: null, sni: null };
  metrics.connectionClosed(closed({ ...refused, outcome: 'bad_request', reason: 'no_host' }));
  metrics.connectionClosed(closed({ ...refused, outcome: 'bad_request', reason: 'no_host' }));
  metrics.connectionClosed(closed({ ...refused, outcome: 'bad_request', reason: 'headers_too_large' }));
  metrics.connectionClosed(closed({ ...refused, outcome: 'request_timeout' }));
  metrics.connectionClosed(closed({ listener: 'web', outcome: 'redirect', backend: null }));
  const samples = await scrape();
  t.equal(value(samples, `${P}http_request_failures_total`, { listener: 'web', reason: 'no_host' }), 2);
  t.equal(value(samples, `${P}http_request_failures_total`, { listener: 'web', reason: 'headers_too_large' }), 1);
  t.equal(value(samples, `${P}http_request_failures_total`, { listener: 'web', reason: 'timeout' }), 1);
  t.equal(find(samples, `${P}http_request_failures_total`).length, 3, 'nothing for the redirect');
  t.equal(find(samples, `${P}client_hello_failures_total`).length, 0);
  t.equal(value(samples, `${P}connections_closed_total`, { listener: 'web', route: 'app.example.com', outcome: 'redirect' }), 1);
});

t.test('backend connects: failures by reason and a latency histogram', async (t) => {
  const { metrics, scrape } = setup();
  metrics.backendConnectFailed('public', '127.0.0.1:9443', 'ECONNREFUSED');
  metrics.backendConnectFailed('public', '127.0.0.1:9443', 'ECONNREFUSED');
  metrics.backendConnectFailed('internal', '127.0.0.1:9443', 'connect_timeout');
  metrics.backendConnected('public', '127.0.0.1:9444', 0.3);
  metrics.backendConnected('public', '127.0.0.1:9444', 20);
  metrics.backendConnected('public', '127.0.0.1:9444', 700);
  const samples = await scrape();
  t.equal(value(samples, `${P}backend_connect_failures_total`, { backend: '127.0.0.1:9443', reason: 'ECONNREFUSED' }), 2);
  t.equal(value(samples, `${P}backend_connect_failures_total`, { backend: '127.0.0.1:9443', reason: 'connect_timeout' }), 1);
  const histogram = `${P}backend_connect_duration_seconds`;
  t.equal(value(samples, `${histogram}_count`, { backend: '127.0.0.1:9444' }), 3);
  t.ok(Math.abs(value(samples, `${histogram}_sum`, { backend: '127.0.0.1:9444' })! - 0.7203) < 1e-9, 'sum in seconds');
  t.equal(value(samples, `${histogram}_bucket`, { backend: '127.0.0.1:9444', le: '0.0005' }), 1, '0.3 ms in the first bucket');
  t.equal(value(samples, `${histogram}_bucket`, { backend: '127.0.0.1:9444', le: '0.025' }), 2);
  t.equal(value(samples, `${histogram}_bucket`, { backend: '127.0.0.1:9444', le: '0.5' }), 2);
  t.equal(value(samples, `${histogram}_bucket`, { backend: '127.0.0.1:9444', le: '1' }), 3);
  t.equal(value(samples, `${histogram}_bucket`, { backend: '127.0.0.1:9444', le: '+Inf' }), 3);
});

t.test('backend health changes by state and cause', async (t) => {
  const { metrics, scrape } = setup();
  metrics.backendHealthChanged({ backend: '127.0.0.1:9443', state: 'down', cause: 'connect_failures' });
  metrics.backendHealthChanged({ backend: '127.0.0.1:9443', state: 'up', cause: 'recovered' });
  metrics.backendHealthChanged({ backend: '127.0.0.1:9443', state: 'down', cause: 'connect_failures' });
  metrics.backendHealthChanged({ backend: '127.0.0.1:9444', state: 'down', cause: 'health_check' });
  const samples = await scrape();
  t.equal(value(samples, `${P}backend_health_changes_total`, { backend: '127.0.0.1:9443', state: 'down', cause: 'connect_failures' }), 2);
  t.equal(value(samples, `${P}backend_health_changes_total`, { backend: '127.0.0.1:9443', state: 'up', cause: 'recovered' }), 1);
  t.equal(value(samples, `${P}backend_health_changes_total`, { backend: '127.0.0.1:9444', state: 'down', cause: 'health_check' }), 1);
});

t.test('open connections, backend_up and backend_drained come from the sources at scrape time', async (t) => {
  const { scrape, open, health } = setup();
  open.push({ listener: 'public', open: 5 }, { listener: 'internal', open: 0 });
  health.push({ backend: '127.0.0.1:9443', up: true, drained: false, active: 3 }, { backend: '127.0.0.1:9444', up: false, drained: true, active: 0 });
  let samples = await scrape();
  t.equal(value(samples, `${P}connections_open`, { listener: 'public' }), 5);
  t.equal(value(samples, `${P}connections_open`, { listener: 'internal' }), 0);
  t.equal(value(samples, `${P}backend_up`, { backend: '127.0.0.1:9443' }), 1);
  t.equal(value(samples, `${P}backend_up`, { backend: '127.0.0.1:9444' }), 0);
  t.equal(value(samples, `${P}backend_drained`, { backend: '127.0.0.1:9443' }), 0);
  t.equal(value(samples, `${P}backend_drained`, { backend: '127.0.0.1:9444' }), 1, 'drained whatever its health');

  open.splice(0, open.length, { listener: 'public', open: 2 });
  health.splice(0, health.length, { backend: '127.0.0.1:9444', up: true, drained: false, active: 0 });
  samples = await scrape();
  t.equal(value(samples, `${P}connections_open`, { listener: 'public' }), 2, 'the current value');
  t.same(find(samples, `${P}connections_open`, { listener: 'internal' }), [], 'a listener no longer reported is gone, not stale');
  t.same(find(samples, `${P}backend_up`, { backend: '127.0.0.1:9443' }), [], 'a removed backend is gone');
  t.equal(value(samples, `${P}backend_up`, { backend: '127.0.0.1:9444' }), 1);
  t.equal(value(samples, `${P}backend_drained`, { backend: '127.0.0.1:9444' }), 0, 'undrained');
  t.same(find(samples, `${P}backend_drained`, { backend: '127.0.0.1:9443' }), [], 'a removed backend is gone');
});

t.test('reloads by result', async (t) => {
  const { metrics, scrape } = setup();
  metrics.reloadFinished('applied');
  metrics.reloadFinished('applied');
  metrics.reloadFinished('unchanged');
  metrics.reloadFinished('refused');
  const samples = await scrape();
  t.equal(value(samples, `${P}reloads_total`, { result: 'applied' }), 2);
  t.equal(value(samples, `${P}reloads_total`, { result: 'unchanged' }), 1);
  t.equal(value(samples, `${P}reloads_total`, { result: 'refused' }), 1);
});

t.test('config generation and config_info with the sha256 of the text', async (t) => {
  const { metrics, scrape } = setup();
  const first = createHash('sha256').update('listeners: [one]\n').digest('hex');
  const second = createHash('sha256').update('listeners: [two]\n').digest('hex');
  metrics.configApplied(1, first);
  let samples = await scrape();
  t.equal(value(samples, `${P}config_generation`), 1);
  t.equal(value(samples, `${P}config_info`, { generation: '1', sha256: first }), 1);
  t.match(first, /^[0-9a-f]{64}$/);

  metrics.configApplied(2, second);
  samples = await scrape();
  t.equal(value(samples, `${P}config_generation`), 2);
  t.same(
    find(samples, `${P}config_info`).map((sample) => sample.labels),
    [{ generation: '2', sha256: second }],
    'only the running config is described',
  );
});

const FAMILIES: Record<string, string> = {
  connections_accepted_total: 'counter',
  connections_closed_total: 'counter',
  connections_open: 'gauge',
  connections_dropped_total: 'counter',
  bytes_total: 'counter',
  quic_packets_total: 'counter',
  quic_datagrams_dropped_total: 'counter',
  client_hello_failures_total: 'counter',
  http_request_failures_total: 'counter',
  backend_connect_failures_total: 'counter',
  backend_connect_duration_seconds: 'histogram',
  backend_up: 'gauge',
  backend_drained: 'gauge',
  backend_health_changes_total: 'counter',
  panic_routing_total: 'counter',
  tls_handshake_failures_total: 'counter',
  reloads_total: 'counter',
  config_generation: 'gauge',
  config_info: 'gauge',
};

t.test('the text format: HELP and TYPE for every family, even before it has samples; the content type', async (t) => {
  const { metrics } = setup();
  const { contentType, body } = await metrics.scrape();
  t.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const { types, samples } = parsePrometheus(body);
  t.same(Object.fromEntries([...types].filter(([name]) => name.startsWith(P)).map(([name, type]) => [name.slice(P.length), type])), FAMILIES);
  for (const name of Object.keys(FAMILIES)) t.match(body, new RegExp(`^# HELP ${P}${name} \\S`, 'm'), `${name} has its help`);
  t.same(samples, [], 'no samples before any event');
  t.ok(body.endsWith('\n'), 'ends with a newline');
});

t.test('process metrics (prom-client) once enabled; the proxy’s counts are kept from before', async (t) => {
  const { metrics, scrape } = setup();
  metrics.connectionAccepted('public');
  metrics.connectionDropped('public', 'fd_limit');
  t.same(
    (await scrape()).filter((sample) => !sample.name.startsWith(P)),
    [],
    'none before',
  );
  metrics.enableProcessMetrics();
  metrics.enableProcessMetrics();
  metrics.connectionAccepted('public');
  const { body } = await metrics.scrape();
  t.match(body, /^process_cpu_user_seconds_total \d/m, 'Node’s process metrics after');
  t.match(body, /^process_resident_memory_bytes \d/m);
  t.equal((body.match(/^# TYPE process_cpu_user_seconds_total /gm) ?? []).length, 1, 'enabling twice registers them once');
  const samples = parsePrometheus(body).samples;
  t.equal(value(samples, `${P}connections_accepted_total`, { listener: 'public' }), 2, 'counted since creation, not since enabled');
  t.equal(value(samples, `${P}connections_dropped_total`, { listener: 'public', reason: 'fd_limit' }), 1);
});

t.test('clients dropped at accept, by listener and reason; panic routing, by listener and route', async (t) => {
  const { metrics, scrape } = setup();
  for (let index = 0; index < 5; index++) metrics.connectionDropped('public', 'fd_limit');
  metrics.connectionDropped('internal', 'fd_limit');
  metrics.panicRouting('public', 'app.example.com');
  metrics.panicRouting('public', 'app.example.com');
  metrics.panicRouting('public', '*.example.com');
  const samples = await scrape();
  t.equal(value(samples, `${P}connections_dropped_total`, { listener: 'public', reason: 'fd_limit' }), 5);
  t.equal(value(samples, `${P}connections_dropped_total`, { listener: 'internal', reason: 'fd_limit' }), 1);
  t.equal(value(samples, `${P}panic_routing_total`, { listener: 'public', route: 'app.example.com' }), 2);
  t.equal(value(samples, `${P}panic_routing_total`, { listener: 'public', route: '*.example.com' }), 1);
  t.same(find(samples, `${P}connections_accepted_total`), [], 'a dropped client is not an accepted connection');
});

t.test('failed TLS handshakes of terminating routes, by listener, route and reason', async (t) => {
  const { metrics, scrape } = setup();
  metrics.tlsHandshakeFailed('public', 'legacy.example.com', 'ERR_SSL_NO_SHARED_CIPHER');
  metrics.tlsHandshakeFailed('public', 'legacy.example.com', 'timeout');
  metrics.tlsHandshakeFailed('public', 'legacy.example.com', 'timeout');
  const samples = await scrape();
  t.equal(value(samples, `${P}tls_handshake_failures_total`, { listener: 'public', route: 'legacy.example.com', reason: 'timeout' }), 2);
  t.equal(value(samples, `${P}tls_handshake_failures_total`, { listener: 'public', route: 'legacy.example.com', reason: 'ERR_SSL_NO_SHARED_CIPHER' }), 1);
});

t.test('label values are escaped', async (t) => {
  const { metrics, scrape } = setup();
  metrics.connectionAccepted('we"ird\\name');
  const samples = await scrape();
  t.equal(value(samples, `${P}connections_accepted_total`, { listener: 'we"ird\\name' }), 1);
});

t.test('two instances in one process keep separate counts', async (t) => {
  const one = setup();
  const two = setup();
  one.metrics.connectionAccepted('public');
  t.equal(value(await one.scrape(), `${P}connections_accepted_total`, { listener: 'public' }), 1);
  t.same(find(await two.scrape(), `${P}connections_accepted_total`), []);
});
