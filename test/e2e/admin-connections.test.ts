// Live connections, drain and status through the compiled CLI's admin
// endpoint: GET /connections with connections open through the proxy (byte
// counts exact and live, filters, paging bounds); drain under load (zero new
// connections at the drained backend, zero connections cut, then undrain);
// drain kept across reloads while the backend stays; POST /connections/close
// by filter with a required reason (and its log lines); `status` output.
//
// Every wait is a guard against a hang, never a measurement.
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import type tls from 'node:tls';
import t from 'tap';
import { stringify } from 'yaml';
import { startEchoBackend, startTlsBackend, unusedAddress, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record } from '../helpers/client-hello-fixtures.js';
import { parsePrometheus, samplesOf } from '../helpers/prometheus.js';
import { runCli, startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { connectTls, echoSession, readLine } from '../helpers/tls-client.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';

const GUARD_MS = 30_000;

const ca = await createCertificateAuthority();
let backendA: TestBackend;
let backendB: TestBackend;
let echo: TestBackend;
let proxy: ProxyProcess;
let admin: string;

interface Snapshot {
  id: number;
  listener: string;
  client: string;
  sni: string | null;
  alpn: string[];
  route: string | null;
  backend: string | null;
  state: string;
  bytesFromClient: number;
  bytesToClient: number;
  ageMs: number;
}

interface Page {
  total: number;
  limit: number;
  connections: Snapshot[];
  next: number | null;
  routes: Array<{ listener: string; route: string | null; open: number }>;
}

interface Answer {
  status: number;
  body: string;
}

/** One request to the admin endpoint; the body is read whole. */
function request(method: string, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
  const colon = admin.lastIndexOf(':');
  return guard(
    new Promise<Answer>((resolve, reject) => {
      const outgoing = http.request({ host: admin.slice(0, colon), port: Number(admin.slice(colon + 1)), path, method, headers, agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      outgoing.on('error', reject);
      outgoing.end();
    }),
    GUARD_MS,
    `${method} ${path}`,
  );
}

async function json<T>(method: string, path: string, status = 200): Promise<T> {
  const answer = await request(method, path);
  if (answer.status !== status) throw new Error(`${method} ${path} answered ${answer.status}, not ${status}: ${answer.body}`);
  return JSON.parse(answer.body) as T;
}

const connections = (query = ''): Promise<Page> => json<Page>('GET', `/connections${query}`);

/** Polls GET /connections until `condition` holds (connections close asynchronously); a guard, not a measurement. */
async function connectionsUntil(query: string, condition: (page: Page) => boolean, what: string): Promise<Page> {
  const deadline = Date.now() + GUARD_MS;
  for (;;) {
    const page = await connections(query);
    if (condition(page)) return page;
    if (Date.now() > deadline) throw new Error(`${what} did not happen; last page: ${JSON.stringify(page)}`);
    await sleep(25);
  }
}

/** `text` as a regular expression matching it literally (addresses, patterns with `*`). */
const literal = (text: string): string => text.replace(/[.*?[\]]/g, (character) => `\\${character}`);

const helloRecord = (serverName: string): Buffer => record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName }));

/** A raw client relayed to the echo backend: what it sent and what came back are counted here. */
interface RawSession {
  socket: net.Socket;
  /** "127.0.0.1:PORT" as the proxy sees the client. */
  client: string;
  sent: number;
  received: () => number;
  closed: ReturnType<typeof readUntilClosed>;
  /** Sends `size` more bytes and waits until they are all echoed. */
  exchange(size: number): Promise<void>;
}

async function rawSession(listener: string, serverName: string, payloadSize: number): Promise<RawSession> {
  const socket = await connectRaw(proxy.port(listener));
  let received = 0;
  socket.on('data', (chunk: Buffer) => (received += chunk.length));
  const session: RawSession = {
    socket,
    client: `127.0.0.1:${socket.localPort}`,
    sent: 0,
    received: () => received,
    closed: readUntilClosed(socket),
    async exchange(size) {
      socket.write(Buffer.alloc(size, 0x61));
      session.sent += size;
      await waitFor(() => received === session.sent, `${size} bytes echoed to ${serverName}`, GUARD_MS);
    },
  };
  const hello = helloRecord(serverName);
  socket.write(hello);
  session.sent += hello.length;
  await session.exchange(payloadSize);
  return session;
}

/** A TLS session held open: the backend that answered, and a way to check it still relays. */
async function openSession(servername: string): Promise<{ socket: tls.TLSSocket; identity: BackendIdentity; stillRelays(text: string): Promise<boolean> }> {
  const socket = await guard(connectTls({ port: proxy.port('main'), servername, ca: ca.cert }), GUARD_MS, 'a TLS session');
  const identity = JSON.parse(await guard(readLine(socket), GUARD_MS, 'the identity line')) as BackendIdentity;
  return {
    socket,
    identity,
    async stillRelays(text) {
      socket.write(`${text}\n`);
      return (await guard(readLine(socket), GUARD_MS, 'an echo on a held session')) === text;
    },
  };
}

function config(routes: unknown[] = []): unknown {
  return {
    admin: { listen: '127.0.0.1:0' },
    defaults: { clientHelloTimeout: '10s', connectTimeout: '5s' },
    listeners: [
      {
        name: 'main',
        listen: '127.0.0.1:0',
        routes: [
          { hostnames: ['app.example.com'], backends: [backendA.address, backendB.address] },
          { hostnames: ['echo.example.com', '*.echo.example.com'], backends: [echo.address] },
          ...routes,
        ],
      },
      { name: 'side', listen: '127.0.0.1:0', default: { backends: [echo.address] } },
    ],
  };
}

/** Writes `next` over the running config and applies it through POST /reload. */
async function reload(next: unknown): Promise<void> {
  await writeFile(proxy.configFile, stringify(next));
  const outcome = await json<{ result: string }>('POST', '/reload');
  if (outcome.result !== 'applied') throw new Error(`reload: ${JSON.stringify(outcome)}`);
}

async function backendStatus(address: string): Promise<{ backend: string; up: boolean; drained: boolean; active: number } | undefined> {
  const body = await json<{ backends: Array<{ backend: string; up: boolean; drained: boolean; active: number }> }>('GET', '/config');
  return body.backends.find((entry) => entry.backend === address);
}

t.before(async () => {
  backendA = await startTlsBackend(ca, 'A');
  backendB = await startTlsBackend(ca, 'B');
  echo = await startEchoBackend();
  proxy = await startProxy(config(), { args: ['--no-watch'] });
  admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);
});

t.teardown(async () => {
  await proxy?.stop('SIGTERM');
  await backendA?.close();
  await backendB?.close();
  await echo?.close();
});

t.test('GET /connections: connections open through the proxy, byte counts exact and live, filters, paging bounds', async (t) => {
  const sessions = [
    await rawSession('main', 'echo.example.com', 1_000),
    await rawSession('main', 'eu.echo.example.com', 2_000),
    await rawSession('main', 'echo.example.com', 3_000),
    await rawSession('side', 'side.example.com', 4_000),
  ];
  t.teardown(() => sessions.forEach((session) => session.socket.destroy()));

  const all = await connections();
  t.equal(all.total, 4, 'every open connection, and only those');
  t.equal(all.limit, 100, 'the default page size');
  t.equal(all.next, null);
  t.same(
    all.connections.map((connection) => connection.client),
    sessions.map((session) => session.client),
    'oldest first',
  );
  for (const [index, session] of sessions.entries()) {
    const listed = all.connections[index]!;
    t.match(
      listed,
      {
        listener: index === 3 ? 'side' : 'main',
        sni: ['echo.example.com', 'eu.echo.example.com', 'echo.example.com', 'side.example.com'][index],
        route: ['echo.example.com', '*.echo.example.com', 'echo.example.com', 'default'][index],
        backend: echo.address,
        state: 'relaying',
        alpn: [],
      },
      session.client,
    );
    t.equal(listed.bytesFromClient, session.sent, `${session.client}: bytes from the client, exactly what it sent`);
    t.equal(listed.bytesToClient, session.sent, `${session.client}: bytes to the client, exactly what came back`);
    t.ok(listed.ageMs >= 0);
  }

  await sessions[1]!.exchange(50_000);
  const moved = (await connections(`?id=${all.connections[1]!.id}`)).connections[0]!;
  t.equal(moved.bytesFromClient, sessions[1]!.sent, 'read when asked: the count follows the traffic');
  t.equal(moved.bytesToClient, sessions[1]!.sent);

  const count = async (query: string): Promise<number> => (await connections(query)).total;
  t.equal(await count('?listener=side'), 1, 'by listener');
  t.equal(await count('?sni=echo.example.com'), 2, 'by exact name');
  t.equal(await count('?sni=*.echo.example.com'), 1, 'by *.suffix');
  t.equal(await count('?route=*.echo.example.com'), 1, 'by route pattern');
  t.equal(await count(`?backend=${echo.address}`), 4, 'by backend');
  t.equal(await count(`?backend=${backendA.address}`), 0);
  t.equal(await count('?listener=main&sni=echo.example.com'), 2, 'filters combine');
  t.same(
    all.routes,
    [
      { listener: 'main', route: '*.echo.example.com', open: 1 },
      { listener: 'main', route: 'echo.example.com', open: 2 },
      { listener: 'side', route: 'default', open: 1 },
    ],
    'counts by listener and route',
  );

  // Paging: one per page, following `next`, visits each exactly once in order; bounded however it behaves.
  const paged: number[] = [];
  let after = 0;
  for (let page = 0; page < 10; page++) {
    const answer = await connections(`?limit=1&after=${after}`);
    t.equal(answer.connections.length, 1, `page ${page}: one connection`);
    t.equal(answer.total, 4, 'total over all pages');
    paged.push(answer.connections[0]!.id);
    if (answer.next === null) break;
    after = answer.next;
  }
  t.same(
    paged,
    all.connections.map((connection) => connection.id),
    'every connection once, in order',
  );
  t.equal((await connections('?limit=1000')).connections.length, 4, 'limit 1000 is allowed');
  for (const query of ['?limit=1001', '?limit=-1', '?after=x', '?listenr=main']) {
    const answer = await request('GET', `/connections${query}`);
    t.equal(answer.status, 400, query);
    t.match(JSON.parse(answer.body), { code: 'SNIP_ADMIN_BAD_REQUEST' });
  }

  for (const session of sessions) session.socket.end();
  await guard(Promise.all(sessions.map((session) => session.closed)), GUARD_MS, 'the sessions closing');
  await connectionsUntil('', (page) => page.total === 0, 'every connection gone from the list');
});

t.test('drain under load: no new connection reaches the drained backend, none is cut; undrain brings it back', async (t) => {
  // Held sessions, alternating over A and B (round robin): those on B must go on through the drain.
  const held: Array<Awaited<ReturnType<typeof openSession>>> = [];
  for (let index = 0; index < 4; index++) held.push(await openSession('app.example.com'));
  t.teardown(() => held.forEach((session) => session.socket.destroy()));
  const heldOnB = held.filter((session) => session.identity.backend === 'B');
  t.equal(heldOnB.length, 2, 'two held sessions on B');
  const acceptedByBBefore = backendB.accepted;

  // Load: workers opening full sessions back to back until told to stop (each bounded).
  let drainAnswered = false;
  let stop = false;
  const results: Array<{ afterDrain: boolean; backend: string | null; error: string | null }> = [];
  const worker = async (): Promise<void> => {
    for (let round = 0; round < 200 && !stop; round++) {
      // Started after the drain answered: the proxy accepts it after the drain, so it must not reach B.
      const afterDrain = drainAnswered;
      try {
        const identity = await guard(
          echoSession({ port: proxy.port('main'), servername: 'app.example.com', ca: ca.cert }, `load-${round}`),
          GUARD_MS,
          'a session',
        );
        results.push({ afterDrain, backend: identity.backend, error: null });
      } catch (error) {
        results.push({ afterDrain, backend: null, error: (error as Error).message });
      }
    }
  };
  const workers = Promise.all([worker(), worker(), worker(), worker()]);
  await waitFor(() => results.length >= 8, 'load sessions before the drain', GUARD_MS, 10);

  const drained = await json<{ backend: string; drained: boolean; up: boolean }>('POST', `/backends/${backendB.address}/drain`);
  drainAnswered = true;
  t.match(drained, { backend: backendB.address, drained: true, up: true });
  await waitFor(() => results.filter((result) => result.afterDrain).length >= 16, 'load sessions after the drain', GUARD_MS, 10);
  stop = true;
  await guard(workers, GUARD_MS * 2, 'the load workers');

  const failed = results.filter((result) => result.error !== null);
  t.same(failed, [], 'no load session failed');
  const beforeDrain = results.filter((result) => !result.afterDrain);
  const afterDrain = results.filter((result) => result.afterDrain);
  t.ok(
    beforeDrain.some((result) => result.backend === 'B'),
    'B took load before the drain',
  );
  t.same(
    afterDrain.filter((result) => result.backend !== 'A'),
    [],
    `all ${afterDrain.length} sessions started after the drain answered went to A`,
  );
  t.equal(
    backendB.accepted - acceptedByBBefore,
    beforeDrain.filter((result) => result.backend === 'B').length,
    'counted at B: exactly the sessions that started before the drain and were sent there, nothing after',
  );

  for (const [index, session] of heldOnB.entries()) t.ok(await session.stillRelays(`after drain ${index}`), 'a session held on B still relays');
  t.equal((await connections(`?backend=${backendB.address}`)).total, 2, 'the held sessions on B are still listed');
  t.match(await backendStatus(backendB.address), { drained: true, active: 2 }, 'GET /config shows B drained, with its open connections');
  t.match(await backendStatus(backendA.address), { drained: false });
  const metrics = parsePrometheus((await request('GET', '/metrics')).body);
  t.same(
    samplesOf(metrics, 'sni_passthrough_backend_drained')
      .map((sample) => `${sample.labels.backend}=${sample.value}`)
      .sort(),
    [`${backendA.address}=0`, `${backendB.address}=1`, `${echo.address}=0`].sort(),
    'the backend_drained gauge',
  );

  const status = await runCli(['status', '--admin', `http://${admin}`]);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, new RegExp(`^${literal(backendB.address)}\\s+up\\s+drained\\s+2$`, 'm'), 'status: B drained, 2 active');
  t.match(status.stdout, new RegExp(`^${literal(backendA.address)}\\s+up\\s+-\\s+2$`, 'm'), 'status: A in rotation, 2 active');

  const undrained = await json<{ drained: boolean }>('POST', `/backends/${backendB.address}/undrain`);
  t.equal(undrained.drained, false);
  const answered: string[] = [];
  for (let index = 0; index < 4; index++) {
    answered.push((await guard(echoSession({ port: proxy.port('main'), servername: 'app.example.com', ca: ca.cert }), GUARD_MS, 'a session')).backend);
  }
  t.ok(answered.includes('B'), `undrained: B takes new connections again (${answered.join(' ')})`);

  for (const [index, session] of held.entries()) t.ok(await session.stillRelays(`end ${index}`), 'every held session relays to the end');
  for (const session of held) session.socket.end();
  await connectionsUntil('', (page) => page.total === 0, 'the held sessions closed');
  const sessionCount = results.length + held.length + answered.length;
  const appLogs = () => proxy.connectionLogs().filter((line) => line.sni === 'app.example.com');
  await waitFor(() => appLogs().length >= sessionCount, 'a log line per session', GUARD_MS, 25);
  const appLines = appLogs();
  t.equal(appLines.length, sessionCount, 'one log line per session');
  t.same(
    appLines.filter((line) => line.outcome !== 'ok'),
    [],
    'every session ended ok: none was cut',
  );
});

t.test('a drain is kept across reloads while the backend stays, and forgotten once it leaves the config', async (t) => {
  await json('POST', `/backends/${backendB.address}/drain`);
  const withNewRoute = config([{ hostnames: ['new.example.com'], backends: [backendB.address, backendA.address] }]);
  await reload(withNewRoute);
  t.match(await backendStatus(backendB.address), { drained: true }, 'still drained after a reload that keeps B');
  const acceptedByB = backendB.accepted;
  for (const servername of ['app.example.com', 'new.example.com', 'app.example.com', 'new.example.com']) {
    const identity = await guard(echoSession({ port: proxy.port('main'), servername, ca: ca.cert }), GUARD_MS, 'a session');
    t.equal(identity.backend, 'A', `${servername}: A`);
  }
  t.equal(backendB.accepted, acceptedByB, 'B got nothing, on the old route or the new one');

  // B out of the config, then back: a fresh, undrained backend.
  const withoutB = config();
  (withoutB as { listeners: Array<{ routes: Array<{ backends: string[] }> }> }).listeners[0]!.routes[0]!.backends = [backendA.address];
  await reload(withoutB);
  t.equal(await backendStatus(backendB.address), undefined, 'B is gone from /config');
  const unknown = await request('POST', `/backends/${backendB.address}/undrain`);
  t.equal(unknown.status, 404, 'a backend not in the config cannot be drained or undrained');
  t.match(JSON.parse(unknown.body), { code: 'SNIP_ADMIN_UNKNOWN_BACKEND' });
  await reload(config());
  t.match(await backendStatus(backendB.address), { drained: false }, 'back in the config: not drained');
  const answered: string[] = [];
  for (let index = 0; index < 4; index++) {
    answered.push((await guard(echoSession({ port: proxy.port('main'), servername: 'app.example.com', ca: ca.cert }), GUARD_MS, 'a session')).backend);
  }
  t.ok(answered.includes('B'), `B takes connections again (${answered.join(' ')})`);
});

t.test('POST /connections/close: by filter, with a required reason that the log lines carry', async (t) => {
  const sessions = [
    await rawSession('main', 'echo.example.com', 100),
    await rawSession('main', 'echo.example.com', 200),
    await rawSession('main', 'eu.echo.example.com', 300),
  ];
  t.teardown(() => sessions.forEach((session) => session.socket.destroy()));

  const noReason = await request('POST', '/connections/close?sni=echo.example.com');
  t.equal(noReason.status, 400, 'no reason: 400');
  t.match(JSON.parse(noReason.body), { error: /reason is required/, code: 'SNIP_ADMIN_BAD_REQUEST' });
  const fromPage = await request('POST', '/connections/close?sni=echo.example.com&reason=csrf', { origin: 'https://evil.example' });
  t.equal(fromPage.status, 403, 'from a web page (Origin): 403');
  const rebinding = await request('POST', '/connections/close?sni=echo.example.com&reason=rebinding', { host: 'evil.example' });
  t.equal(rebinding.status, 403, 'a DNS-rebinding Host: 403');
  t.equal((await connections()).total, 3, 'nothing was closed');
  for (const session of sessions) await session.exchange(10);

  const closed = await json<{ closed: number; reason: string }>('POST', '/connections/close?sni=echo.example.com&reason=maintenance%20window%20CHG-1234');
  t.same(closed, { closed: 2, reason: 'maintenance window CHG-1234' });
  const outcomes = await guard(Promise.all([sessions[0]!.closed, sessions[1]!.closed]), GUARD_MS, 'the matching clients closed');
  t.equal(outcomes.length, 2, 'both matching clients were closed');
  await sessions[2]!.exchange(1_000);
  t.pass('the other connection still relays');
  await connectionsUntil('', (page) => page.total === 1, 'only the other connection left');

  const lines = await guard(
    (async () => {
      for (;;) {
        const found = proxy.connectionLogs().filter((line) => line.outcome === 'closed_by_admin');
        if (found.length >= 2) return found;
        await sleep(25);
      }
    })(),
    GUARD_MS,
    'the log lines of the closed connections',
  );
  t.same(
    lines.map((line) => [line.client, line.sni, line.reason, line.bytesFromClient]).sort(),
    [
      [sessions[0]!.client, 'echo.example.com', 'maintenance window CHG-1234', sessions[0]!.sent],
      [sessions[1]!.client, 'echo.example.com', 'maintenance window CHG-1234', sessions[1]!.sent],
    ].sort(),
    'each closed connection logged with outcome closed_by_admin, the reason and its bytes',
  );
  const summary = await proxy.waitForLog((line) => line.msg === 'connections closed by admin', GUARD_MS);
  t.match(summary, { closed: 2, reason: 'maintenance window CHG-1234', filter: { sni: 'echo.example.com' } }, 'the action itself is logged');
  const metrics = parsePrometheus((await request('GET', '/metrics')).body);
  t.equal(
    samplesOf(metrics, 'sni_passthrough_connections_closed_total')
      .filter((sample) => sample.labels.outcome === 'closed_by_admin')
      .reduce((sum, sample) => sum + sample.value, 0),
    2,
    'counted under outcome="closed_by_admin"',
  );
  sessions[2]!.socket.end();
  await connectionsUntil('', (page) => page.total === 0, 'all closed');
});

t.test('sni-passthrough status: listeners, backends and connections per route as a table; --json; an unreachable endpoint', async (t) => {
  const sessions = [await rawSession('main', 'echo.example.com', 10), await rawSession('main', 'eu.echo.example.com', 10), await rawSession('side', 'x', 10)];
  t.teardown(() => sessions.forEach((session) => session.socket.destroy()));
  await json('POST', `/backends/${backendA.address}/drain`);
  t.teardown(() => json('POST', `/backends/${backendA.address}/undrain`));

  const { code, stdout, stderr } = await runCli(['status', '--admin', admin]);
  t.equal(code, 0, stderr);
  const lines = stdout.split('\n');
  t.match(lines[0], /^generation \d+, 3 open connections$/);
  t.match(stdout, /^LISTENER {2}ADDRESS\s+PROTOCOL {2}OPEN$/m);
  t.match(stdout, new RegExp(`^main\\s+${literal(proxy.address('main'))}\\s+tls\\s+2$`, 'm'));
  t.match(stdout, new RegExp(`^side\\s+${literal(proxy.address('side'))}\\s+tls\\s+1$`, 'm'));
  t.match(stdout, /^BACKEND\s+HEALTH {2}DRAIN\s+ACTIVE$/m);
  t.match(stdout, new RegExp(`^${literal(backendA.address)}\\s+up\\s+drained\\s+0$`, 'm'));
  t.match(stdout, new RegExp(`^${literal(backendB.address)}\\s+up\\s+-\\s+0$`, 'm'));
  t.match(stdout, new RegExp(`^${literal(echo.address)}\\s+up\\s+-\\s+3$`, 'm'));
  t.match(stdout, /^LISTENER {2}ROUTE\s+OPEN$/m);
  t.match(stdout, /^main\s+\*\.echo\.example\.com\s+1$/m);
  t.match(stdout, /^main\s+echo\.example\.com\s+1$/m);
  t.match(stdout, /^side\s+default\s+1$/m);
  t.notMatch(stdout, / \n/, 'no trailing spaces');
  // Columns line up: in each table the header and rows start their columns at the same offsets.
  const backendTable = lines.slice(lines.findIndex((line) => line.startsWith('BACKEND')));
  const drainColumn = backendTable[0]!.indexOf('DRAIN');
  for (const row of backendTable.slice(1, 4)) t.match(row.slice(drainColumn), /^(drained|-)\s/, `aligned: ${row}`);

  const asJson = await runCli(['status', '--admin', `http://${admin}`, '--json']);
  t.equal(asJson.code, 0, asJson.stderr);
  const report = JSON.parse(asJson.stdout) as { open: number; listeners: unknown[]; backends: Array<{ backend: string; drained: boolean }>; routes: unknown[] };
  t.equal(report.open, 3);
  t.equal(report.listeners.length, 2);
  t.match(
    report.backends.find((backend) => backend.backend === backendA.address),
    { drained: true },
  );
  t.equal(report.routes.length, 3);

  const nowhere = await unusedAddress();
  const closedPort = await runCli(['status', '--admin', nowhere]);
  t.equal(closedPort.code, 1, 'nothing listening: exit 1');
  t.match(
    closedPort.stderr,
    new RegExp(`^sni-passthrough: admin endpoint ${literal(nowhere)}: GET /(config|connections\\?limit=0): ECONNREFUSED\n$`),
    'one line',
  );
  const badUrl = await runCli(['status', '--admin', 'https://127.0.0.1:9900']);
  t.equal(badUrl.code, 1);
  t.match(badUrl.stderr, /plain http/);
});
