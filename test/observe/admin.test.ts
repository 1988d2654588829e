// AdminServer (lib/observe/admin.ts) on 127.0.0.1:0 with recording handlers:
// each endpoint, status codes, methods, HEAD, and handler failures.
import t from 'tap';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN_HEADERS_TIMEOUT_MS, ADMIN_MAX_CONNECTIONS, AdminServer, browserRefusal, hostnameOf, type AdminHandlers } from '../../lib/observe/admin.js';
import { matchesFilter } from '../../lib/observe/connection-query.js';
import type { ConnectionSnapshot } from '../../lib/pipeline/record.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { guard, sleep } from '../helpers/wait.js';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, method: string, path: string, body?: string, headers: http.OutgoingHttpHeaders = {}): Promise<Response> {
  return guard(
    new Promise((resolve, reject) => {
      const outgoing = http.request({ host: '127.0.0.1', port, method, path, agent: false, headers }, (incoming) => {
        let text = '';
        incoming.setEncoding('utf8');
        incoming.on('data', (chunk: string) => (text += chunk));
        incoming.on('end', () => resolve({ status: incoming.statusCode!, headers: incoming.headers, body: text }));
      });
      outgoing.on('error', reject);
      outgoing.end(body);
    }),
    5_000,
    `${method} ${path}`,
  );
}

const state = {
  ready: true,
  reloadCalls: 0,
  reloadAnswer: { status: 200, body: { result: 'applied', generation: 2 } as unknown },
  reloadFails: false,
  metricsCalls: 0,
  /** What the connection handlers were asked, in order. */
  connectionCalls: [] as unknown[],
  drained: new Set<string>(),
};

/** Open connections as the handlers' source reports them: ids 1..7 across two listeners. */
const OPEN: ConnectionSnapshot[] = Array.from({ length: 7 }, (_, index) => ({
  id: 7 - index,
  listener: index < 5 ? 'public' : 'internal',
  client: `192.0.2.${index + 1}:40000`,
  sni: index % 2 === 0 ? 'a.example.com' : 'b.example.com',
  alpn: [],
  route: index % 2 === 0 ? 'a.example.com' : '*.example.com',
  backend: '127.0.0.1:9001',
  state: 'relaying',
  bytesFromClient: 100 * index,
  bytesToClient: 1000 * index,
  ageMs: 5,
}));
const BACKENDS = ['127.0.0.1:9001', '[::1]:9002'];

const handlers: AdminHandlers = {
  async metrics() {
    state.metricsCalls++;
    return { contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'sni_passthrough_up 1\n' };
  },
  ready: () => state.ready,
  config: () => ({ generation: 3, config: { listeners: [{ name: 'public' }], admin: null } }),
  async reload() {
    state.reloadCalls++;
    if (state.reloadFails) throw new Error('reload exploded');
    return state.reloadAnswer;
  },
  connections(filter) {
    state.connectionCalls.push(['list', filter]);
    return OPEN.filter((connection) => matchesFilter(connection, filter));
  },
  closeConnections(filter, reason) {
    state.connectionCalls.push(['close', filter, reason]);
    return OPEN.filter((connection) => matchesFilter(connection, filter)).length;
  },
  drainBackend(address, drained) {
    state.connectionCalls.push([drained ? 'drain' : 'undrain', address]);
    if (!BACKENDS.includes(address)) return null;
    if (drained) state.drained.add(address);
    else state.drained.delete(address);
    return { backend: address, up: true, drained, active: 2 };
  },
};

const options = { anyHost: false, onError: (error: Error) => t.fail(`admin server error: ${error.message}`) };
const server = new AdminServer(handlers, options);
const bound = await server.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => server.close());
const port = Number(bound.slice(bound.lastIndexOf(':') + 1));

t.test('listen resolves with the bound address', async (t) => {
  t.match(bound, /^127\.0\.0\.1:\d+$/);
  t.ok(port > 0);
});

t.test('GET /metrics: the handler’s body and content type', async (t) => {
  const before = state.metricsCalls;
  const response = await request(port, 'GET', '/metrics');
  t.equal(response.status, 200);
  t.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  t.equal(response.body, 'sni_passthrough_up 1\n');
  t.equal(response.headers['cache-control'], 'no-store');
  t.equal(state.metricsCalls, before + 1, 'computed per request');
});

t.test('GET /healthz: 200 while the process runs', async (t) => {
  const response = await request(port, 'GET', '/healthz');
  t.equal(response.status, 200);
  t.equal(response.body, 'ok\n');
  state.ready = false;
  t.equal((await request(port, 'GET', '/healthz')).status, 200, 'even when not ready');
  state.ready = true;
});

t.test('GET /readyz: 200 or 503 from the ready handler', async (t) => {
  state.ready = true;
  const ready = await request(port, 'GET', '/readyz');
  t.equal(ready.status, 200);
  t.equal(ready.body, 'ready\n');
  state.ready = false;
  const notReady = await request(port, 'GET', '/readyz');
  t.equal(notReady.status, 503);
  t.equal(notReady.body, 'not ready\n');
  state.ready = true;
  t.equal((await request(port, 'GET', '/readyz')).status, 200, 'asked on each request');
});

t.test('GET /config: the handler’s value as JSON', async (t) => {
  const response = await request(port, 'GET', '/config');
  t.equal(response.status, 200);
  t.match(response.headers['content-type'], /^application\/json/);
  t.same(JSON.parse(response.body), { generation: 3, config: { listeners: [{ name: 'public' }], admin: null } });
});

t.test('POST /reload: status and body from the handler', async (t) => {
  const before = state.reloadCalls;
  state.reloadAnswer = { status: 200, body: { result: 'applied', generation: 2 } };
  const applied = await request(port, 'POST', '/reload');
  t.equal(applied.status, 200);
  t.same(JSON.parse(applied.body), { result: 'applied', generation: 2 });

  state.reloadAnswer = { status: 422, body: { result: 'refused', generation: 2, error: 'proxy.yaml:3:5: unknown key "colour"' } };
  const refused = await request(port, 'POST', '/reload', 'ignored body');
  t.equal(refused.status, 422);
  t.same(JSON.parse(refused.body), state.reloadAnswer.body, 'a request body is ignored');
  t.equal(state.reloadCalls, before + 2);
});

t.test('GET /connections: filters from the query string, pages of `limit` by id with a cursor, total and counts by route', async (t) => {
  state.connectionCalls.length = 0;
  const all = JSON.parse((await request(port, 'GET', '/connections')).body);
  t.equal(all.total, 7);
  t.equal(all.limit, 100, 'default page size');
  t.same(
    all.connections.map((connection: ConnectionSnapshot) => connection.id),
    [1, 2, 3, 4, 5, 6, 7],
    'oldest first',
  );
  t.equal(all.next, null, 'one page');
  t.same(all.connections[0], OPEN[6], 'each connection as the source reported it');
  t.same(all.routes, [
    { listener: 'internal', route: '*.example.com', open: 1 },
    { listener: 'internal', route: 'a.example.com', open: 1 },
    { listener: 'public', route: '*.example.com', open: 2 },
    { listener: 'public', route: 'a.example.com', open: 3 },
  ]);

  const filtered = await request(port, 'GET', '/connections?listener=public&sni=A.Example.com.&limit=2');
  t.equal(filtered.status, 200);
  const first = JSON.parse(filtered.body);
  t.same(state.connectionCalls.at(-1), ['list', { listener: 'public', sni: 'a.example.com' }], 'the filter, the name normalized');
  t.equal(first.total, 3);
  t.same(
    first.connections.map((connection: ConnectionSnapshot) => connection.id),
    [3, 5],
  );
  t.equal(first.next, 5);
  const second = JSON.parse((await request(port, 'GET', `/connections?listener=public&sni=a.example.com&limit=2&after=${first.next}`)).body);
  t.same(
    second.connections.map((connection: ConnectionSnapshot) => connection.id),
    [7],
  );
  t.equal(second.next, null, 'the last page');
  t.equal(second.total, 3, 'total counts every page');

  const countsOnly = JSON.parse((await request(port, 'GET', '/connections?limit=0')).body);
  t.same([countsOnly.total, countsOnly.connections, countsOnly.next], [7, [], null], 'limit=0: counts only');
});

t.test('GET /connections: a bad parameter is a 400 with a code, never ignored', async (t) => {
  state.connectionCalls.length = 0;
  for (const query of ['limit=1001', 'limit=-1', 'limit=ten', 'after=1.5', 'id=x', 'snii=a.example.com', 'sni=a&sni=b', 'reason=x']) {
    const response = await request(port, 'GET', `/connections?${query}`);
    t.equal(response.status, 400, query);
    t.match(JSON.parse(response.body), { error: String, code: 'SNIP_ADMIN_BAD_REQUEST' }, query);
  }
  t.same(state.connectionCalls, [], 'the handler never ran');
});

t.test('POST /connections/close: a filter and a reason, else 400 and nothing closed', async (t) => {
  state.connectionCalls.length = 0;
  const noReason = await request(port, 'POST', '/connections/close?sni=b.example.com');
  t.equal(noReason.status, 400);
  t.match(JSON.parse(noReason.body), { error: /reason is required/, code: 'SNIP_ADMIN_BAD_REQUEST' });
  t.equal((await request(port, 'POST', '/connections/close?sni=b.example.com&reason=%20%20')).status, 400, 'a blank reason');
  t.equal((await request(port, 'POST', `/connections/close?sni=b.example.com&reason=${'x'.repeat(201)}`)).status, 400, 'a reason too long');
  const noFilter = await request(port, 'POST', '/connections/close?reason=maintenance');
  t.equal(noFilter.status, 400);
  t.match(JSON.parse(noFilter.body), { error: /at least one filter/ });
  t.equal((await request(port, 'POST', '/connections/close?sni=b.example.com&reason=x&limit=3')).status, 400, 'no paging here');
  t.same(state.connectionCalls, [], 'the handler never ran');

  const closed = await request(port, 'POST', '/connections/close?route=*.example.com&reason=backend%20B%20maintenance');
  t.equal(closed.status, 200);
  t.same(JSON.parse(closed.body), { closed: 3, reason: 'backend B maintenance' });
  t.same(state.connectionCalls, [['close', { route: '*.example.com' }, 'backend B maintenance']]);
});

t.test('POST /backends/{address}/drain and /undrain: the status of the backend, 404 for one the config does not have', async (t) => {
  state.connectionCalls.length = 0;
  const drained = await request(port, 'POST', '/backends/127.0.0.1:9001/drain');
  t.equal(drained.status, 200);
  t.same(JSON.parse(drained.body), { backend: '127.0.0.1:9001', up: true, drained: true, active: 2 });
  t.ok(state.drained.has('127.0.0.1:9001'));
  const ipv6 = await request(port, 'POST', `/backends/${encodeURIComponent('[::1]:9002')}/drain`);
  t.equal(ipv6.status, 200, 'a percent-encoded IPv6 address');
  t.match(JSON.parse(ipv6.body), { backend: '[::1]:9002', drained: true });
  t.equal((await request(port, 'POST', '/backends/[::1]:9002/undrain')).status, 200, 'or written as is');
  t.notOk(state.drained.has('[::1]:9002'));

  const unknown = await request(port, 'POST', '/backends/10.0.0.1:443/drain');
  t.equal(unknown.status, 404);
  t.match(JSON.parse(unknown.body), { error: /no backend "10\.0\.0\.1:443"/, code: 'SNIP_ADMIN_UNKNOWN_BACKEND' });
  t.equal((await request(port, 'POST', '/backends/%E0%A4%A/drain')).status, 400, 'a broken percent-encoding');
  t.equal((await request(port, 'POST', '/backends/127.0.0.1:9001/drain?now=1')).status, 400, 'no parameters');
  t.same(state.connectionCalls, [
    ['drain', '127.0.0.1:9001'],
    ['drain', '[::1]:9002'],
    ['undrain', '[::1]:9002'],
    ['drain', '10.0.0.1:443'],
  ]);
});

t.test('the new POST endpoints are refused to web pages like /reload: Origin and DNS-rebinding Host', async (t) => {
  state.connectionCalls.length = 0;
  for (const path of ['/connections/close?sni=a.example.com&reason=csrf', '/backends/127.0.0.1:9001/undrain', '/backends/127.0.0.1:9001/drain']) {
    t.equal((await request(port, 'POST', path, undefined, { origin: 'https://evil.example' })).status, 403, `${path}: Origin`);
    t.equal((await request(port, 'POST', path, undefined, { host: `evil.example:${port}` })).status, 403, `${path}: Host`);
  }
  t.equal((await request(port, 'GET', '/connections', undefined, { host: `evil.example:${port}` })).status, 403, 'GET /connections: Host');
  t.same(state.connectionCalls, [], 'no handler ran');
});

t.test('a query string does not change the route', async (t) => {
  t.equal((await request(port, 'GET', '/healthz?verbose=1')).status, 200);
  t.equal((await request(port, 'GET', '/metrics?name[]=x')).status, 200);
});

t.test('unknown paths: 404 with the list of endpoints', async (t) => {
  for (const path of ['/', '/metricz', '/metrics/', '/METRICS', '/config/extra', '/favicon.ico', '/../etc/passwd', '/backends/a/b/drain', '/backends//drain']) {
    const response = await request(port, 'GET', path);
    t.equal(response.status, 404, path);
    t.match(response.headers['content-type'], /^application\/json/);
    const body = JSON.parse(response.body) as { error: string; endpoints: string[] };
    t.match(body.error, 'not found');
    t.same(body.endpoints.sort(), [
      '/backends/{address}/drain',
      '/backends/{address}/undrain',
      '/config',
      '/connections',
      '/connections/close',
      '/healthz',
      '/metrics',
      '/readyz',
      '/reload',
    ]);
  }
  t.equal((await request(port, 'POST', '/nope')).status, 404, 'whatever the method');
});

t.test('wrong methods: 405 with an Allow header, and the handler is not called', async (t) => {
  const reloads = state.reloadCalls;
  const metrics = state.metricsCalls;
  for (const [method, path, allow] of [
    ['POST', '/metrics', 'GET'],
    ['PUT', '/config', 'GET'],
    ['DELETE', '/healthz', 'GET'],
    ['POST', '/readyz', 'GET'],
    ['GET', '/reload', 'POST'],
    ['PUT', '/reload', 'POST'],
    ['POST', '/connections', 'GET'],
    ['GET', '/connections/close', 'POST'],
    ['GET', '/backends/127.0.0.1:9001/drain', 'POST'],
    ['DELETE', '/backends/127.0.0.1:9001/undrain', 'POST'],
  ] as const) {
    const response = await request(port, method, path);
    t.equal(response.status, 405, `${method} ${path}`);
    t.match(response.headers.allow, allow, `${method} ${path}: Allow includes ${allow}`);
    t.match(JSON.parse(response.body), { error: `${path} takes ${allow}` });
  }
  t.equal(state.reloadCalls, reloads, 'GET /reload does not reload');
  t.same(state.connectionCalls.splice(0), [], 'no connection or backend handler ran');
  t.equal(state.metricsCalls, metrics);
});

t.test('HEAD works for GET routes and has no body', async (t) => {
  for (const path of ['/metrics', '/healthz', '/readyz', '/config']) {
    const response = await request(port, 'HEAD', path);
    t.equal(response.status, 200, `HEAD ${path}`);
    t.equal(response.body, '', 'no body');
    t.ok(response.headers['content-type'], 'with the GET content type');
  }
  state.ready = false;
  t.equal((await request(port, 'HEAD', '/readyz')).status, 503, 'HEAD /readyz reflects readiness');
  state.ready = true;
  const reloads = state.reloadCalls;
  const head = await request(port, 'HEAD', '/reload');
  t.equal(head.status, 405, 'not for POST routes');
  t.equal(head.headers.allow, 'POST');
  t.equal(state.reloadCalls, reloads);
});

t.test('a handler that rejects: 500 with the error, and the server goes on', async (t) => {
  state.reloadFails = true;
  const response = await request(port, 'POST', '/reload');
  state.reloadFails = false;
  t.equal(response.status, 500);
  t.same(JSON.parse(response.body), { error: 'reload exploded' });
  t.equal((await request(port, 'GET', '/healthz')).status, 200);
});

t.test('several requests on one keep-alive connection', async (t) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const sockets = new Set<net.Socket>();
  for (const path of ['/healthz', '/readyz', '/metrics', '/config']) {
    await new Promise<void>((resolve, reject) => {
      const outgoing = http.get({ host: '127.0.0.1', port, path, agent }, (incoming) => {
        sockets.add(incoming.socket);
        t.equal(incoming.statusCode, 200, path);
        incoming.resume();
        incoming.on('end', () => resolve());
      });
      outgoing.on('error', reject);
    });
  }
  t.equal(sockets.size, 1, 'one connection served them all');
});

t.test('requests a web page could send are refused before any endpoint runs', async (t) => {
  const reloads = state.reloadCalls;
  const crossSite = await request(port, 'POST', '/reload', undefined, { origin: 'https://evil.example' });
  t.equal(crossSite.status, 403, 'a POST with an Origin header (what a browser sends cross-site)');
  t.match(JSON.parse(crossSite.body), { error: /Origin/ });
  t.equal(state.reloadCalls, reloads, 'and nothing was reloaded');

  const rebound = await request(port, 'GET', '/config', undefined, { host: `evil.example:${port}` });
  t.equal(rebound.status, 403, 'a Host that is a DNS name (DNS rebinding)');
  t.match(JSON.parse(rebound.body), { error: /evil\.example/ });

  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'LOCALHOST']) {
    t.equal((await request(port, 'GET', '/healthz', undefined, { host })).status, 200, `Host ${host} is served`);
  }
});

t.test('with anyHost (allowRemote) any Host is served, an Origin still is not', async (t) => {
  const remote = new AdminServer(handlers, { ...options, anyHost: true });
  const address = await remote.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => remote.close());
  const remotePort = Number(address.slice(address.lastIndexOf(':') + 1));
  t.equal((await request(remotePort, 'GET', '/healthz', undefined, { host: 'proxy.internal.example' })).status, 200);
  t.equal((await request(remotePort, 'GET', '/healthz', undefined, { origin: 'https://evil.example' })).status, 403);
});

t.test('hostnameOf and browserRefusal', async (t) => {
  t.equal(hostnameOf('127.0.0.1:9900'), '127.0.0.1');
  t.equal(hostnameOf('[::1]:9900'), '::1');
  t.equal(hostnameOf('LocalHost'), 'localhost');
  t.equal(browserRefusal({}, false), null, 'no Host (HTTP/1.0): served');
  t.equal(browserRefusal({ host: '10.0.0.7:9900' }, false), null, 'any IP literal');
  t.type(browserRefusal({ host: 'admin.example:9900' }, false), 'string');
  t.equal(browserRefusal({ host: 'admin.example:9900' }, true), null);
});

t.test('listen on a taken port rejects', async (t) => {
  const other = new AdminServer(handlers, options);
  await t.rejects(other.listen({ host: '127.0.0.1', port }), { code: 'EADDRINUSE' });
});

t.test('close() stops serving', async (t) => {
  const temporary = new AdminServer(handlers, options);
  const address = await temporary.listen({ host: '127.0.0.1', port: 0 });
  const temporaryPort = Number(address.slice(address.lastIndexOf(':') + 1));
  t.equal((await request(temporaryPort, 'GET', '/healthz')).status, 200);
  temporary.close();
  await t.rejects(request(temporaryPort, 'GET', '/healthz'), { code: 'ECONNREFUSED' });
});

t.test('a handler that throws synchronously: 500, not an uncaught exception', async (t) => {
  // In a child process: the uncaught exception must not take this test process down.
  const script = `
      import http from 'node:http';
      import { AdminServer } from './lib/observe/admin.js';
      let uncaught = 0;
      process.on('uncaughtException', () => uncaught++);
      const server = new AdminServer({
        metrics: async () => ({ contentType: 'text/plain', body: '' }),
        ready: () => { throw new Error('ready failed'); },
        config: () => ({ size: 10n }), // JSON.stringify throws on a BigInt
        reload: async () => ({ status: 200, body: {} }),
      }, { anyHost: false, onError: () => {} });
      const address = await server.listen({ host: '127.0.0.1', port: 0 });
      const port = Number(address.slice(address.lastIndexOf(':') + 1));
      const results = {};
      for (const path of ['/readyz', '/config']) {
        results[path] = await new Promise((resolve) => {
          const request = http.get({ host: '127.0.0.1', port, path, timeout: 20000 }, (response) => { response.resume(); resolve(response.statusCode); });
          request.on('timeout', () => { request.destroy(); resolve('no response'); });
          request.on('error', () => resolve('no response'));
        });
      }
      console.log(JSON.stringify({ results, uncaught }));
      server.close();
      process.exit(0);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += String(chunk)));
  child.stderr.resume();
  await guard(new Promise((resolve) => child.once('close', resolve)), 60_000, 'the child process');
  const line = output.split('\n').find((text) => text.startsWith('{'));
  t.ok(line, 'the child reported');
  const report = JSON.parse(line ?? '{}') as { results?: Record<string, unknown>; uncaught?: number };
  t.same(report.results, { '/readyz': 500, '/config': 500 }, 'each answered 500');
  t.equal(report.uncaught, 0, 'no uncaught exception');
});

t.test('at most ADMIN_MAX_CONNECTIONS at once: more are closed as soon as accepted, and served again once some leave', async (t) => {
  const capped = new AdminServer(handlers, options);
  const address = await capped.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => capped.close());
  const cappedPort = Number(address.slice(address.lastIndexOf(':') + 1));
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((socket) => socket.destroy()));
  for (let index = 0; index < ADMIN_MAX_CONNECTIONS; index++) {
    const socket = await connectRaw(cappedPort);
    socket.on('error', () => {});
    held.push(socket);
  }
  // Accepted in order: the one past the cap comes after the held ones. Closed without a byte (a header
  // timeout would have answered 408 first).
  const extra = await connectRaw(cappedPort);
  const outcome = await guard(readUntilClosed(extra), ADMIN_HEADERS_TIMEOUT_MS * 10, 'the connection past the cap closing');
  t.equal(outcome.received.length, 0, `closed without an answer (${outcome.received.toString()})`);
  await t.rejects(request(cappedPort, 'GET', '/healthz'), 'a request past the cap fails');

  for (const socket of held.splice(0, 4)) socket.destroy();
  // The server learns of those closes asynchronously: retry a refused request a bounded number of times.
  let response: Response | null = null;
  for (let attempt = 0; attempt < 100 && response === null; attempt++) {
    response = await request(cappedPort, 'GET', '/healthz').catch(() => sleep(50).then(() => null));
  }
  t.equal(response?.status, 200, 'served again once connections left');
});

t.test('a client that sends no request, or its headers too slowly, is closed after the header timeout with 408', async (t) => {
  const timed = new AdminServer(handlers, options);
  const address = await timed.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => timed.close());
  const timedPort = Number(address.slice(address.lastIndexOf(':') + 1));
  const idle = await connectRaw(timedPort);
  const slow = await connectRaw(timedPort);
  const outcomes = Promise.all([readUntilClosed(idle), readUntilClosed(slow)]);
  // The slow one sends a header line now and then and never finishes (slowloris).
  slow.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const drip = setInterval(() => slow.writable && slow.write('X-Slow: 1\r\n'), ADMIN_HEADERS_TIMEOUT_MS / 10);
  t.teardown(() => clearInterval(drip));
  const [idleOutcome, slowOutcome] = await guard(outcomes, ADMIN_HEADERS_TIMEOUT_MS * 10, 'both clients closed by the server');
  clearInterval(drip);
  t.match(idleOutcome.received.toString(), /^HTTP\/1\.1 408 /, 'the idle client: 408');
  t.match(slowOutcome.received.toString(), /^HTTP\/1\.1 408 /, 'the slow client: 408');
});
