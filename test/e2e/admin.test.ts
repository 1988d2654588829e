// The admin endpoint through the compiled CLI: GET /metrics scraped and
// parsed after real traffic (every count equals what the test sent and what
// the connection log lines say), /healthz, /readyz, /config, POST /reload
// (unchanged, applied, refused with FILE:LINE:COL), 404 and 405, and the
// loopback-only rule for `admin.listen` (checked with `check` only: the
// tests never bind 0.0.0.0).
import { createHash } from 'node:crypto';
import { writeFile, readFile } from 'node:fs/promises';
import http from 'node:http';
import type tls from 'node:tls';
import t from 'tap';
import { stringify } from 'yaml';
import { startTlsBackend, unusedAddress, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { buildClientHello, record, CONTENT_TYPE_HANDSHAKE } from '../helpers/client-hello-fixtures.js';
import { parsePrometheus, samplesOf, sumOf, type Exposition } from '../helpers/prometheus.js';
import { runCli, startProxy, writeConfig, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';
import { positionOf } from '../helpers/text-position.js';

const GUARD_MS = 15_000;
const M = 'sni_passthrough_';

/** What the test sends; every metric below must come out at exactly these numbers. */
const SENT = { routeA: 7, fallback: 3, noRoute: 2, garbage: 2, unreachable: 1 };

const ca = await createCertificateAuthority();
let backendA: TestBackend;
let backendB: TestBackend;
let deadBackend: string;
let proxy: ProxyProcess;
let admin: string;

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request to the admin endpoint ("host:port"); the body is read whole. */
function request(method: string, path: string, address = admin): Promise<HttpAnswer> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return guard(
    new Promise<HttpAnswer>((resolve, reject) => {
      const outgoing = http.request({ host, port, path, method, agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
        response.on('error', reject);
      });
      outgoing.on('error', reject);
      outgoing.end();
    }),
    GUARD_MS,
    `${method} ${path}`,
  );
}

async function scrape(): Promise<Exposition> {
  const answer = await request('GET', '/metrics');
  if (answer.status !== 200) throw new Error(`GET /metrics answered ${answer.status}: ${answer.body}`);
  return parsePrometheus(answer.body);
}

/** Scrapes until `condition` holds (gauges are read when scraped, closes finish asynchronously); a guard, not a measurement. */
async function scrapeUntil(condition: (metrics: Exposition) => boolean, what: string, timeoutMs = 5_000): Promise<Exposition> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const metrics = await scrape();
    if (condition(metrics)) return metrics;
    if (Date.now() > deadline) throw new Error(`scrapeUntil: ${what} did not happen within ${timeoutMs} ms`);
    await sleep(25);
  }
}

function waitClosed(socket: tls.TLSSocket): Promise<void> {
  return socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
}

/** A whole TLS session through the proxy: handshake, identity line, a few echoed bytes, a clean close from both sides. */
async function session(port: number, servername: string, payload = 'ping'): Promise<BackendIdentity> {
  const socket = await connectTls({ port, servername, ca: ca.cert });
  try {
    const identity = JSON.parse(await readLine(socket)) as BackendIdentity;
    socket.write(`${payload}\n`);
    const echoed = await readLine(socket);
    if (echoed !== payload) throw new Error(`echo: got ${JSON.stringify(echoed)}`);
    const done = waitClosed(socket);
    socket.resume();
    socket.end();
    await done;
    return identity;
  } finally {
    socket.destroy();
  }
}

/** A raw connection that sends `bytes` and reads until the proxy closes it. */
async function rawExchange(port: number, bytes: Uint8Array): Promise<Buffer> {
  const socket = await connectRaw(port);
  const outcome = readUntilClosed(socket);
  socket.write(bytes);
  return (await guard(outcome, GUARD_MS, 'the proxy closing a raw connection')).received;
}

const helloRecord = (serverName: string): Buffer => record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName }));

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function configObject(extraRoutes: Array<{ hostnames: string[]; backends: string[] }> = []): unknown {
  return {
    admin: { listen: '127.0.0.1:0' },
    defaults: { clientHelloTimeout: '10s', connectTimeout: '5s' },
    listeners: [
      {
        name: 'main',
        listen: '127.0.0.1:0',
        routes: [{ hostnames: ['a.example.com'], backends: [backendA.address] }, { hostnames: ['dead.example.com'], backends: [deadBackend] }, ...extraRoutes],
        default: { backends: [backendB.address] },
      },
      { name: 'strict', listen: '127.0.0.1:0', routes: [{ hostnames: ['only.example.com'], backends: [backendA.address] }] },
    ],
  };
}

t.before(async () => {
  backendA = await startTlsBackend(ca, 'A');
  backendB = await startTlsBackend(ca, 'B');
  deadBackend = await unusedAddress();
  // --no-watch: reloads happen only when the test asks (SIGHUP, POST /reload), so reloads_total is exact.
  proxy = await startProxy(configObject(), { args: ['--no-watch'] });
  admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);
});

t.teardown(async () => {
  await proxy?.stop('SIGTERM');
  await backendA?.close();
  await backendB?.close();
});

t.test('the admin address is logged, in `admin endpoint listening` and in `ready`', async (t) => {
  t.match(admin, /^127\.0\.0\.1:\d+$/);
  t.not(admin, '127.0.0.1:0', 'the real port, not 0');
  const ready = await proxy.waitForLog((line) => line.msg === 'ready');
  t.equal(ready.admin, admin);
});

t.test('health, readiness, 404 and 405', async (t) => {
  const health = await request('GET', '/healthz');
  t.equal(health.status, 200);
  t.equal(health.body, 'ok\n');
  const ready = await request('GET', '/readyz');
  t.equal(ready.status, 200);
  t.equal(ready.body, 'ready\n');
  t.equal(health.headers['cache-control'], 'no-store');

  for (const path of ['/', '/nope', '/metrics/extra', '/../etc/passwd']) {
    const missing = await request('GET', path);
    t.equal(missing.status, 404, `GET ${path}`);
  }
  const wrongMethod = await request('GET', '/reload');
  t.equal(wrongMethod.status, 405, 'GET /reload');
  t.equal(wrongMethod.headers.allow, 'POST');
  const postMetrics = await request('POST', '/metrics');
  t.equal(postMetrics.status, 405, 'POST /metrics');
  t.equal(postMetrics.headers.allow, 'GET');
  const head = await request('HEAD', '/healthz');
  t.equal(head.status, 200, 'HEAD /healthz');
});

t.test('GET /config: the effective config as JSON, with its generation', async (t) => {
  const answer = await request('GET', '/config');
  t.equal(answer.status, 200);
  t.match(answer.headers['content-type'], /^application\/json/);
  const body = JSON.parse(answer.body) as { generation: number; config: { listeners: Array<{ name: string; routes: unknown[] }>; admin: unknown } };
  t.equal(body.generation, 1);
  t.same(
    body.config.listeners.map((listener) => listener.name),
    ['main', 'strict'],
  );
  t.equal(body.config.listeners[0]!.routes.length, 2);
  t.match(JSON.stringify(body.config), backendA.address, 'backends appear in the effective config');
});

t.test('metrics after real traffic equal what was sent', async (t) => {
  const main = proxy.port('main');
  const strict = proxy.port('strict');
  const before = await scrape();
  t.equal(before.types.get(`${M}connections_accepted_total`), 'counter');
  t.equal(before.types.get(`${M}connections_open`), 'gauge');
  t.equal(before.types.get(`${M}backend_connect_duration_seconds`), 'histogram');
  t.equal(sumOf(before, `${M}connections_accepted_total`), 0, 'nothing accepted before the traffic');
  t.ok(samplesOf(before, 'process_cpu_user_seconds_total').length === 1, "Node's process metrics are included");

  // Sequential, so the count of log lines at the end is exactly this traffic.
  for (let index = 0; index < SENT.routeA; index++) {
    const identity = await guard(session(main, 'a.example.com', `a-${index}`.repeat(index + 1)), GUARD_MS, 'a session to route A');
    t.equal(identity.backend, 'A');
  }
  for (let index = 0; index < SENT.fallback; index++) {
    const identity = await guard(session(main, `other${index}.example.com`), GUARD_MS, 'a session to the default');
    t.equal(identity.backend, 'B');
  }
  for (let index = 0; index < SENT.noRoute; index++) {
    const received = await rawExchange(strict, helloRecord('nomatch.example.com'));
    t.same([...received], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70], 'no_route: an unrecognized_name alert');
  }
  for (let index = 0; index < SENT.garbage; index++) {
    const received = await rawExchange(main, Buffer.from('GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n'));
    t.equal(received.length, 0, 'plain HTTP is closed without an answer');
  }
  for (let index = 0; index < SENT.unreachable; index++) await rawExchange(main, helloRecord('dead.example.com'));

  const total = SENT.routeA + SENT.fallback + SENT.noRoute + SENT.garbage + SENT.unreachable;
  await waitFor(() => proxy.connectionLogs().length >= total, `${total} connection log lines`, GUARD_MS);
  const logs = proxy.connectionLogs();
  t.equal(logs.length, total, 'one log line per connection');

  const metrics = await scrapeUntil(
    (m) => sumOf(m, `${M}connections_open`) === 0 && sumOf(m, `${M}connections_closed_total`) >= total,
    'connections_open back to 0',
  );

  t.test('connections_accepted_total per listener', async (t) => {
    t.equal(sumOf(metrics, `${M}connections_accepted_total`, { listener: 'main' }), SENT.routeA + SENT.fallback + SENT.garbage + SENT.unreachable);
    t.equal(sumOf(metrics, `${M}connections_accepted_total`, { listener: 'strict' }), SENT.noRoute);
    t.equal(samplesOf(metrics, `${M}connections_accepted_total`).length, 2, 'a series per listener, no more');
  });

  t.test('connections_closed_total by listener, route and outcome', async (t) => {
    const closed = (labels: Record<string, string>): number => sumOf(metrics, `${M}connections_closed_total`, labels);
    t.equal(closed({ listener: 'main', route: 'a.example.com', outcome: 'ok' }), SENT.routeA);
    t.equal(closed({ listener: 'main', route: 'default', outcome: 'ok' }), SENT.fallback);
    t.equal(closed({ listener: 'strict', route: 'none', outcome: 'no_route' }), SENT.noRoute);
    t.equal(closed({ listener: 'main', route: 'none', outcome: 'bad_hello' }), SENT.garbage);
    t.equal(closed({ listener: 'main', route: 'dead.example.com', outcome: 'backend_unreachable' }), SENT.unreachable);
    t.equal(closed({}), total, 'nothing else');
    t.equal(samplesOf(metrics, `${M}connections_closed_total`).length, 5, 'exactly these five series');

    // And the same numbers as the log lines, grouped the same way.
    const fromLogs = new Map<string, number>();
    for (const line of logs) {
      const key = `${String(line.listener)}|${line.route === null ? 'none' : String(line.route)}|${String(line.outcome)}`;
      fromLogs.set(key, (fromLogs.get(key) ?? 0) + 1);
    }
    const fromMetrics = new Map(
      samplesOf(metrics, `${M}connections_closed_total`).map((s) => [`${s.labels.listener}|${s.labels.route}|${s.labels.outcome}`, s.value]),
    );
    t.same(Object.fromEntries(fromMetrics), Object.fromEntries(fromLogs), 'metrics equal the log lines');
  });

  t.test('client_hello_failures_total and connections_open', async (t) => {
    t.equal(sumOf(metrics, `${M}client_hello_failures_total`, { listener: 'main', reason: 'not_tls' }), SENT.garbage);
    t.equal(sumOf(metrics, `${M}client_hello_failures_total`), SENT.garbage, 'no other hello failure');
    t.equal(sumOf(metrics, `${M}connections_open`, { listener: 'main' }), 0);
    t.equal(sumOf(metrics, `${M}connections_open`, { listener: 'strict' }), 0);
  });

  t.test('backend connect failures and latency histogram', async (t) => {
    t.equal(sumOf(metrics, `${M}backend_connect_failures_total`, { backend: deadBackend, reason: 'ECONNREFUSED' }), SENT.unreachable);
    t.equal(sumOf(metrics, `${M}backend_connect_failures_total`), SENT.unreachable, 'no other connect failure');
    const count = (backend: string): number => sumOf(metrics, `${M}backend_connect_duration_seconds_count`, { backend });
    t.equal(count(backendA.address), SENT.routeA);
    t.equal(count(backendB.address), SENT.fallback);
    t.equal(sumOf(metrics, `${M}backend_connect_duration_seconds_count`), SENT.routeA + SENT.fallback, 'a failed connect is not a latency sample');
    const infBucket = sumOf(metrics, `${M}backend_connect_duration_seconds_bucket`, { backend: backendA.address, le: '+Inf' });
    t.equal(infBucket, SENT.routeA, 'the +Inf bucket holds every sample');
    t.ok(sumOf(metrics, `${M}backend_connect_duration_seconds_sum`, { backend: backendA.address }) > 0, 'latencies add up to more than 0');
    t.equal(sumOf(metrics, `${M}backend_up`, { backend: backendA.address }), 1, 'backend A up');
    t.equal(sumOf(metrics, `${M}backend_up`, { backend: deadBackend }), 1, 'one failure is under maxFails: still up');
  });

  t.test('bytes_total equals the sum of the log lines', async (t) => {
    const expected = new Map<string, number>();
    const add = (key: string, bytes: number): void => void expected.set(key, (expected.get(key) ?? 0) + bytes);
    for (const line of logs) {
      const route = line.route === null ? 'none' : String(line.route);
      add(`${String(line.listener)}|${route}|from_client`, Number(line.bytesFromClient));
      add(`${String(line.listener)}|${route}|to_client`, Number(line.bytesToClient));
    }
    for (const [key, bytes] of expected) {
      const [listener, route, direction] = key.split('|') as [string, string, string];
      t.equal(sumOf(metrics, `${M}bytes_total`, { listener, route, direction }), bytes, key);
    }
    const logged = logs.reduce((sum, line) => sum + Number(line.bytesFromClient) + Number(line.bytesToClient), 0);
    t.equal(sumOf(metrics, `${M}bytes_total`), logged, 'the totals agree');
    t.ok(sumOf(metrics, `${M}bytes_total`, { listener: 'main', route: 'a.example.com', direction: 'to_client' }) > 0, 'bytes were counted');
    // The garbage connections' bytes count too: 2 requests of the same size read before closing.
    const garbageLines = logs.filter((line) => line.outcome === 'bad_hello');
    t.equal(garbageLines.length, SENT.garbage);
  });
});

t.test('reloads: POST /reload (unchanged), SIGHUP after a change (applied), POST /reload on a broken file (422)', async (t) => {
  const generation = (metrics: Exposition): number => sumOf(metrics, `${M}config_generation`);
  const text1 = await readFile(proxy.configFile, 'utf8');
  let metrics = await scrape();
  t.equal(generation(metrics), 1);
  t.same(
    samplesOf(metrics, `${M}config_info`).map((s) => ({ ...s.labels, value: s.value })),
    [{ generation: '1', sha256: sha256(text1), value: 1 }],
    'config_info: generation and sha256 of the file text',
  );
  t.equal(sumOf(metrics, `${M}reloads_total`), 0, 'no reload yet');

  // Nothing changed: unchanged.
  const unchanged = await request('POST', '/reload');
  t.equal(unchanged.status, 200);
  t.same(JSON.parse(unchanged.body), { result: 'unchanged', generation: 1 });
  metrics = await scrape();
  t.equal(sumOf(metrics, `${M}reloads_total`, { result: 'unchanged' }), 1);
  t.equal(sumOf(metrics, `${M}reloads_total`), 1);

  // A real change, reloaded by SIGHUP: applied, generation 2, new hash.
  const text2 = stringify(configObject([{ hostnames: ['b.example.com'], backends: [backendA.address] }]));
  await writeFile(proxy.configFile, text2);
  const reloadedLogs = proxy.logs.length;
  proxy.child.kill('SIGHUP');
  await proxy.waitForLog((line) => line.msg === 'config reloaded' && proxy.logs.indexOf(line) >= reloadedLogs, GUARD_MS);
  metrics = await scrapeUntil((m) => generation(m) === 2, 'generation 2');
  t.equal(sumOf(metrics, `${M}reloads_total`, { result: 'applied' }), 1);
  t.equal(sumOf(metrics, `${M}reloads_total`, { result: 'unchanged' }), 1);
  t.same(
    samplesOf(metrics, `${M}config_info`).map((s) => ({ ...s.labels, value: s.value })),
    [{ generation: '2', sha256: sha256(text2), value: 1 }],
    'config_info follows the new file (one series only)',
  );
  const config = JSON.parse((await request('GET', '/config')).body) as {
    generation: number;
    config: { listeners: Array<{ name: string; routes: unknown[] }> };
  };
  t.equal(config.generation, 2);
  t.equal(config.config.listeners[0]!.routes.length, 3, 'the new route is in the effective config');
  t.equal((await guard(session(proxy.port('main'), 'b.example.com'), GUARD_MS, 'new route')).backend, 'A', 'the new route is used');

  // A broken file: 422 with FILE:LINE:COL, and the old config keeps working.
  const broken = text2.replace('  - name: strict\n', '  - name: strict\n    bogus: 1\n');
  t.not(broken, text2, 'the broken text differs');
  await writeFile(proxy.configFile, broken);
  const { line, col } = positionOf(broken, 'bogus');
  const refused = await request('POST', '/reload');
  t.equal(refused.status, 422);
  const body = JSON.parse(refused.body) as { result: string; generation: number; error: string };
  t.equal(body.result, 'refused');
  t.equal(body.generation, 2, 'still generation 2');
  t.ok(body.error.startsWith(`${proxy.configFile}:${line}:${col}: `), `error names FILE:LINE:COL (${body.error})`);
  t.match(body.error, /bogus/);
  metrics = await scrape();
  t.equal(sumOf(metrics, `${M}reloads_total`, { result: 'refused' }), 1);
  t.equal(sumOf(metrics, `${M}reloads_total`), 3, 'unchanged + applied + refused');
  t.equal(generation(metrics), 2, 'the generation did not move');
  t.equal(samplesOf(metrics, `${M}config_info`)[0]?.labels.sha256, sha256(text2), 'config_info still the running text');
  t.equal((await request('GET', '/readyz')).status, 200, 'still ready');
  t.equal((await guard(session(proxy.port('main'), 'a.example.com'), GUARD_MS, 'old route')).backend, 'A', 'the running config still routes');
  t.equal((await guard(session(proxy.port('main'), 'b.example.com'), GUARD_MS, 'new route')).backend, 'A', 'including the route of generation 2');
  const refusedLog = await proxy.waitForLog((entry: LogLine) => entry.msg.startsWith('config reload refused'));
  t.equal(refusedLog.trigger, 'admin');
});

t.test('while draining after SIGTERM: /readyz 503, /healthz 200, a reload of a changed file refused; exit 0 once drained', async (t) => {
  const config = (hostnames: string[]): unknown => ({
    admin: { listen: '127.0.0.1:0' },
    listeners: [{ name: 'draining', listen: '127.0.0.1:0', drainTimeout: '20s', routes: [{ hostnames, backends: [backendA.address] }] }],
  });
  const draining = await startProxy(config(['a.example.com']), { args: ['--no-watch'] });
  t.teardown(() => void draining.child.kill('SIGKILL'));
  const address = String((await draining.waitForLog((line) => line.msg === 'admin endpoint listening')).address);
  const held = await guard(connectTls({ port: draining.port('draining'), servername: 'a.example.com', ca: ca.cert }), GUARD_MS, 'the held session');
  t.teardown(() => held.destroy());
  t.equal(JSON.parse(await guard(readLine(held), GUARD_MS, 'the backend greeting')).backend, 'A');

  draining.child.kill('SIGTERM');
  await draining.waitForLog((line) => line.msg.startsWith('shutting down'), GUARD_MS);
  t.equal((await request('GET', '/readyz', address)).status, 503, 'not ready: load balancers stop sending');
  t.equal((await request('GET', '/healthz', address)).status, 200, 'but the process is alive');
  t.equal((await request('GET', '/metrics', address)).status, 200, 'and the drain can be watched');

  await writeFile(draining.configFile, stringify(config(['a.example.com', 'b.example.com'])));
  const reload = await request('POST', '/reload', address);
  t.equal(reload.status, 422, 'a reload after shutdown began is refused');
  t.match(JSON.parse(reload.body), { result: 'refused', error: /shutting down/ });

  held.end();
  t.equal(await guard(draining.exited, GUARD_MS, 'the exit once drained'), 0, 'exit 0 once the last connection ended');
});

t.test('an admin endpoint added by a reload serves counts from before it existed, and the process metrics', async (t) => {
  const listeners = [{ name: 'late', listen: '127.0.0.1:0', routes: [{ hostnames: ['a.example.com'], backends: [backendA.address] }] }];
  const late = await startProxy({ listeners }, { args: ['--no-watch'] });
  t.teardown(() => void late.child.kill('SIGKILL'));
  for (let index = 0; index < 3; index++) await guard(session(late.port('late'), 'a.example.com'), GUARD_MS, 'a session before the endpoint');
  await rawExchange(late.port('late'), helloRecord('nowhere.example.com'));
  await waitFor(() => late.connectionLogs().length === 4, 'the four connection lines', GUARD_MS);

  await writeFile(late.configFile, stringify({ admin: { listen: '127.0.0.1:0' }, listeners }));
  late.child.kill('SIGHUP');
  const address = String((await late.waitForLog((line) => line.msg === 'admin endpoint listening', GUARD_MS)).address);
  const answer = await request('GET', '/metrics', address);
  t.equal(answer.status, 200);
  const metrics = parsePrometheus(answer.body);
  t.equal(sumOf(metrics, `${M}connections_accepted_total`, { listener: 'late' }), 4, 'every connection since the start');
  t.equal(sumOf(metrics, `${M}connections_closed_total`, { listener: 'late', route: 'a.example.com', outcome: 'ok' }), 3);
  t.equal(sumOf(metrics, `${M}connections_closed_total`, { listener: 'late', route: 'none', outcome: 'no_route' }), 1);
  t.equal(sumOf(metrics, `${M}reloads_total`, { result: 'applied' }), 1, 'the reload that added it');
  t.equal(sumOf(metrics, `${M}config_generation`), 2);
  t.ok(samplesOf(metrics, 'process_resident_memory_bytes').length === 1, 'Node’s process metrics too');
});

t.test('admin.listen must be loopback unless allowRemote: true (check only, nothing is bound)', async (t) => {
  const backend = await unusedAddress();
  const remote = ['admin:', '  listen: 0.0.0.0:0', 'listeners:', '  - listen: 127.0.0.1:0', '    default:', `      backends: [${backend}]`, ''].join('\n');
  const file = await writeConfig(remote);
  const refused = await runCli(['check', '--config', file]);
  t.equal(refused.code, 1);
  const { line, col } = positionOf(remote, '0.0.0.0:0');
  t.equal(refused.stderr.trim().split('\n').length, 1, 'one line');
  t.ok(refused.stderr.startsWith(`${file}:${line}:${col}: `), `FILE:LINE:COL of the address (${refused.stderr.trim()})`);
  t.match(refused.stderr, /allowRemote/);

  const allowed = remote.replace('  listen: 0.0.0.0:0\n', '  listen: 0.0.0.0:0\n  allowRemote: true\n');
  const allowedFile = await writeConfig(allowed);
  const accepted = await runCli(['check', '--config', allowedFile]);
  t.equal(accepted.code, 0, accepted.stderr);
  t.match(accepted.stdout, /admin endpoint on 0\.0\.0\.0:0 \(remote access allowed\)/);

  for (const loopback of ['127.0.0.1:0', '[::1]:0', 'localhost:0']) {
    const file = await writeConfig(remote.replace('0.0.0.0:0', JSON.stringify(loopback)));
    const result = await runCli(['check', '--config', file]);
    t.equal(result.code, 0, `${loopback} needs no allowRemote: ${result.stderr}`);
  }
  for (const nonLoopback of [':0', '0', '[::]:0']) {
    const file = await writeConfig(remote.replace('0.0.0.0:0', JSON.stringify(nonLoopback)));
    const result = await runCli(['check', '--config', file]);
    t.equal(result.code, 1, `${nonLoopback} (all interfaces) needs allowRemote`);
  }
});
