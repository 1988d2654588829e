// AdminServer (lib/observe/admin.ts) on 127.0.0.1:0 with recording handlers:
// each endpoint, status codes, methods, HEAD, and handler failures.
import t from 'tap';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN_HEADERS_TIMEOUT_MS, ADMIN_MAX_CONNECTIONS, AdminServer, browserRefusal, hostnameOf, type AdminHandlers } from '../../lib/observe/admin.js';
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
};
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

t.test('a query string does not change the route', async (t) => {
  t.equal((await request(port, 'GET', '/healthz?verbose=1')).status, 200);
  t.equal((await request(port, 'GET', '/metrics?name[]=x')).status, 200);
});

t.test('unknown paths: 404 with the list of endpoints', async (t) => {
  for (const path of ['/', '/metricz', '/metrics/', '/METRICS', '/config/extra', '/favicon.ico', '/../etc/passwd']) {
    const response = await request(port, 'GET', path);
    t.equal(response.status, 404, path);
    t.match(response.headers['content-type'], /^application\/json/);
    const body = JSON.parse(response.body) as { error: string; endpoints: string[] };
    t.match(body.error, 'not found');
    t.same(body.endpoints.sort(), ['/config', '/healthz', '/metrics', '/readyz', '/reload']);
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
  ] as const) {
    const response = await request(port, method, path);
    t.equal(response.status, 405, `${method} ${path}`);
    t.match(response.headers.allow, allow, `${method} ${path}: Allow includes ${allow}`);
    t.match(JSON.parse(response.body), { error: `${path} takes ${allow}` });
  }
  t.equal(state.reloadCalls, reloads, 'GET /reload does not reload');
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
          const request = http.get({ host: '127.0.0.1', port, path, timeout: 1000 }, (response) => { response.resume(); resolve(response.statusCode); });
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
  await guard(new Promise((resolve) => child.once('close', resolve)), 8_000, 'the child process');
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
