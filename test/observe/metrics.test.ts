// createMetrics (lib/observe/metrics.ts): observer events in, Prometheus text
// format out (prom-client), with gauges read from their sources at scrape time.
import t from 'tap';
import { createHash } from 'node:crypto';
import { createMetrics } from '../../lib/observe/metrics.js';
import type { ConnectionRecord } from '../../lib/pipeline/record.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text exposition format (the lines that are samples). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, char: string) => (char === 'n' ? '\n' : char));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Samples of `name` whose labels include `labels`. */
function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
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
  health: Array<{ backend: string; up: boolean }>;
  scrape(): Promise<Sample[]>;
} {
  const open: Array<{ listener: string; open: number }> = [];
  const health: Array<{ backend: string; up: boolean }> = [];
  const metrics = createMetrics({ openConnections: () => open, backendHealth: () => health });
  return { metrics, open, health, scrape: async () => parseMetrics(await metrics.registry.metrics()) };
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

t.test('open connections and backend_up come from the sources at scrape time', async (t) => {
  const { scrape, open, health } = setup();
  open.push({ listener: 'public', open: 5 }, { listener: 'internal', open: 0 });
  health.push({ backend: '127.0.0.1:9443', up: true }, { backend: '127.0.0.1:9444', up: false });
  let samples = await scrape();
  t.equal(value(samples, `${P}connections_open`, { listener: 'public' }), 5);
  t.equal(value(samples, `${P}connections_open`, { listener: 'internal' }), 0);
  t.equal(value(samples, `${P}backend_up`, { backend: '127.0.0.1:9443' }), 1);
  t.equal(value(samples, `${P}backend_up`, { backend: '127.0.0.1:9444' }), 0);

  open.splice(0, open.length, { listener: 'public', open: 2 });
  health.splice(0, health.length, { backend: '127.0.0.1:9444', up: true });
  samples = await scrape();
  t.equal(value(samples, `${P}connections_open`, { listener: 'public' }), 2, 'the current value');
  t.same(find(samples, `${P}connections_open`, { listener: 'internal' }), [], 'a listener no longer reported is gone, not stale');
  t.same(find(samples, `${P}backend_up`, { backend: '127.0.0.1:9443' }), [], 'a removed backend is gone');
  t.equal(value(samples, `${P}backend_up`, { backend: '127.0.0.1:9444' }), 1);
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

t.test('the text format: HELP and TYPE lines, content type, process metrics', async (t) => {
  const { metrics } = setup();
  metrics.connectionAccepted('public');
  const text = await metrics.registry.metrics();
  t.match(metrics.registry.contentType, /^text\/plain; version=0\.0\.4/);
  t.match(text, `# TYPE ${P}connections_accepted_total counter`);
  t.match(text, `# TYPE ${P}connections_open gauge`);
  t.match(text, `# TYPE ${P}backend_connect_duration_seconds histogram`);
  t.match(text, `# HELP ${P}reloads_total `);
  t.match(text, /^process_cpu_user_seconds_total \d/m, 'Node’s process metrics are included');
  for (const name of [
    'connections_accepted_total',
    'connections_closed_total',
    'connections_open',
    'bytes_total',
    'client_hello_failures_total',
    'backend_connect_failures_total',
    'backend_connect_duration_seconds',
    'backend_up',
    'backend_health_changes_total',
    'reloads_total',
    'config_generation',
    'config_info',
  ]) {
    t.match(text, `# TYPE ${P}${name} `, `${name} is declared`);
  }
});

t.test('label values are escaped', async (t) => {
  const { metrics, scrape } = setup();
  metrics.connectionAccepted('we"ird\\name');
  const samples = await scrape();
  t.equal(value(samples, `${P}connections_accepted_total`, { listener: 'we"ird\\name' }), 1);
});

t.test('two instances in one process keep separate registries', async (t) => {
  const one = setup();
  const two = setup();
  one.metrics.connectionAccepted('public');
  t.equal(value(await one.scrape(), `${P}connections_accepted_total`, { listener: 'public' }), 1);
  t.same(find(await two.scrape(), `${P}connections_accepted_total`), []);
});
