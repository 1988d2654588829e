// Access lists and connection limits, end to end through the compiled CLI:
// listener `allow`/`deny` over IPv4 and IPv6 loopback (a denied client is
// closed before a byte is read), route `allow`/`deny` once the hello is read,
// `maxConnectionsPerClient` (more are closed at once) and `maxConnections`
// (more wait, unread, until a slot frees; see the README's Limitations).
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { startTlsBackend, unusedAddress, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { buildClientHello, wrapInRecords } from '../helpers/client-hello-fixtures.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { readUntilClosed, type RawOutcome } from '../helpers/raw-client.js';
import { readLine, handshakeResult } from '../helpers/tls-client.js';
import { guard, sleep } from '../helpers/wait.js';

const GUARD_MS = 10_000;
/** How long a held client is watched for (not) being served: an observation window, not a measurement. */
const HELD_WINDOW_MS = 1_000;
/** Accepted clients the proxy holds unread at `maxConnections` (README, Limitations). */
const MAX_WAITING = 511;

const ca = await createCertificateAuthority();
let backend: TestBackend;
let proxy: ProxyProcess;

t.before(async () => {
  backend = await startTlsBackend(ca, 'app');
  const routes = [
    { hostnames: ['guarded.example.com'], deny: ['127.0.0.0/8'], backends: [backend.address] },
    { hostnames: ['v6only.example.com'], allow: ['2001:db8::/32'], backends: [backend.address] },
    { hostnames: ['loopback6.example.com'], allow: ['::1/128'], backends: [backend.address] },
  ];
  proxy = await startProxy({
    listeners: [
      { name: 'deny4', listen: '127.0.0.1:0', deny: ['127.0.0.2/32'], routes, default: { backends: [backend.address] } },
      { name: 'allow4', listen: '127.0.0.1:0', allow: ['127.0.0.1/32'], default: { backends: [backend.address] } },
      { name: 'allow6', listen: '[::1]:0', allow: ['::1/128'], routes, default: { backends: [backend.address] } },
      { name: 'other6', listen: '[::1]:0', allow: ['2001:db8::/32'], default: { backends: [backend.address] } },
      { name: 'deny6', listen: '[::1]:0', allow: ['::/0'], deny: ['::1'], default: { backends: [backend.address] } },
      { name: 'perclient', listen: '127.0.0.1:0', maxConnectionsPerClient: 2, default: { backends: [backend.address] } },
      { name: 'capped', listen: '127.0.0.1:0', maxConnections: 2, default: { backends: [backend.address] } },
      { name: 'backlog', listen: '127.0.0.1:0', maxConnections: 1, default: { backends: [backend.address] } },
      { name: 'full', listen: '127.0.0.1:0', maxConnections: 1, maxConnectionsPerClient: 1, deny: ['127.0.0.2/32'], default: { backends: [backend.address] } },
      {
        // Every way a connection can end must give its per-client slot back.
        name: 'slots',
        listen: '127.0.0.1:0',
        maxConnectionsPerClient: 1,
        maxConnections: 1,
        clientHelloTimeout: '300ms',
        routes: [
          { hostnames: ['app.example.com'], backends: [backend.address] },
          { hostnames: ['guarded.example.com'], deny: ['127.0.0.0/8'], backends: [backend.address] },
          { hostnames: ['dead.example.com'], backends: [await unusedAddress()] },
        ],
      },
    ],
  });
});

t.teardown(async () => {
  await proxy?.stop();
  await backend?.close();
});

function peer(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Log lines already handed out: a client port can be reused once the proxy closed first, so each line is matched once. */
const consumed = new WeakSet<LogLine>();

async function closedLogFor(listener: string, client: string): Promise<LogLine> {
  const line = await proxy.waitForLog(
    (entry) => entry.msg === 'connection closed' && entry.listener === listener && entry.client === client && !consumed.has(entry),
    GUARD_MS,
  );
  consumed.add(line);
  return line;
}

/** A listener's host as bound ("127.0.0.1" or "::1"). */
function hostOf(listener: string): string {
  return proxy
    .address(listener)
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '');
}

/** A raw TCP connection to `listener` from `localAddress`. */
async function rawFrom(listener: string, localAddress: string): Promise<net.Socket> {
  const socket = net.connect({ host: hostOf(listener), port: proxy.port(listener), localAddress, allowHalfOpen: true });
  await guard(once(socket, 'connect'), GUARD_MS, 'TCP connect');
  return socket;
}

interface OpenSession {
  socket: tls.TLSSocket;
  client: string;
  identity: BackendIdentity;
}

/** A TLS client on a TCP connection to `listener` from `localAddress` (tls.connect's types do not take localAddress). */
function tlsFrom(listener: string, localAddress: string, servername: string): { socket: tls.TLSSocket; tcp: net.Socket } {
  const tcp = net.connect({ host: hostOf(listener), port: proxy.port(listener), localAddress });
  return { socket: tls.connect({ socket: tcp, servername, ca: ca.cert }), tcp };
}

/** A TLS session through `listener` from `localAddress`, kept open; resolves once the backend's identity line arrived. */
async function sessionFrom(listener: string, localAddress: string, servername = 'app.example.com'): Promise<OpenSession> {
  const { socket } = tlsFrom(listener, localAddress, servername);
  socket.on('error', () => {});
  await guard(once(socket, 'secureConnect'), GUARD_MS, `TLS session via ${listener} from ${localAddress}`);
  const identity = JSON.parse(await guard(readLine(socket), GUARD_MS, 'identity line')) as BackendIdentity;
  return { socket, client: peer(localAddress, socket.localPort!), identity };
}

/** Ends an open session and resolves with its log line (by then its slot is free). */
async function finish(listener: string, session: OpenSession): Promise<LogLine> {
  session.socket.end();
  const log = await closedLogFor(listener, session.client);
  session.socket.destroy();
  return log;
}

/** Connects from `localAddress` without sending anything; resolves once the proxy has closed the connection. */
async function refusedSilently(listener: string, localAddress: string): Promise<{ client: string; outcome: RawOutcome }> {
  const socket = await rawFrom(listener, localAddress);
  const client = peer(localAddress, socket.localPort!);
  const outcome = await guard(readUntilClosed(socket), GUARD_MS, `${listener} closing a refused client`);
  return { client, outcome };
}

t.test('listener deny over IPv4: 127.0.0.2 is closed before a byte is read, 127.0.0.1 is served', async (t) => {
  const before = backend.accepted;
  const { client, outcome } = await refusedSilently('deny4', '127.0.0.2');
  t.equal(outcome.received.length, 0, 'nothing sent to the denied client');
  const log = await closedLogFor('deny4', client);
  t.equal(log.outcome, 'denied');
  t.equal(log.reason, 'listener_access_list');
  t.equal(log.bytesFromClient, 0, 'not a byte read');
  t.equal(log.sni, null, 'no hello read');
  t.equal(backend.accepted, before, 'no backend contacted');

  // A client that sends its hello at once is still refused without the proxy reading it.
  const eager = await rawFrom('deny4', '127.0.0.2');
  const eagerClient = peer('127.0.0.2', eager.localPort!);
  const closed = readUntilClosed(eager);
  eager.write(wrapInRecords(buildClientHello({ serverName: 'app.example.com' })));
  await guard(closed, GUARD_MS, 'the eager denied client closed');
  const eagerLog = await closedLogFor('deny4', eagerClient);
  t.equal(eagerLog.outcome, 'denied');
  t.equal(eagerLog.bytesFromClient, 0, 'its hello was never read');

  const allowed = await sessionFrom('deny4', '127.0.0.1');
  t.equal(allowed.identity.backend, 'app', '127.0.0.1 is served');
  t.equal((await finish('deny4', allowed)).outcome, 'ok');
});

t.test('listener allow over IPv4: only 127.0.0.1/32', async (t) => {
  const { client } = await refusedSilently('allow4', '127.0.0.2');
  const log = await closedLogFor('allow4', client);
  t.equal(log.outcome, 'denied', '127.0.0.2 is not in allow');
  t.equal(log.reason, 'listener_access_list');
  t.equal(log.bytesFromClient, 0);
  const allowed = await sessionFrom('allow4', '127.0.0.1');
  t.equal(allowed.identity.backend, 'app', '127.0.0.1 is served');
  await finish('allow4', allowed);
});

t.test('listener allow/deny over IPv6 loopback', async (t) => {
  t.match(proxy.address('allow6'), /^\[::1\]:\d+$/, 'the listener is on ::1');
  const allowed = await sessionFrom('allow6', '::1');
  t.equal(allowed.identity.backend, 'app', 'allow [::1/128]: ::1 is served');
  const log = await finish('allow6', allowed);
  t.equal(log.outcome, 'ok');
  t.match(log.client, /^\[::1\]:\d+$/, 'logged as an IPv6 client');

  for (const listener of ['other6', 'deny6']) {
    const { client, outcome } = await refusedSilently(listener, '::1');
    t.equal(outcome.received.length, 0, `${listener}: nothing sent`);
    const refused = await closedLogFor(listener, client);
    t.equal(refused.outcome, 'denied', `${listener}: ::1 denied`);
    t.equal(refused.reason, 'listener_access_list', `${listener}: by the listener's list`);
    t.equal(refused.bytesFromClient, 0, `${listener}: not a byte read`);
  }
});

t.test('route deny/allow are checked once the hello is read', async (t) => {
  for (const [listener, localAddress, sni] of [
    ['deny4', '127.0.0.1', 'guarded.example.com'],
    ['allow6', '::1', 'v6only.example.com'],
  ] as const) {
    const { socket, tcp } = tlsFrom(listener, localAddress, sni);
    let port = 0;
    tcp.once('connect', () => (port = tcp.localPort!));
    const failure = await guard(handshakeResult(socket), GUARD_MS, 'the route refusing the client');
    socket.destroy();
    t.ok(failure, `${sni}: no session (${failure?.message})`);
    const log = await closedLogFor(listener, peer(localAddress, port));
    t.equal(log.outcome, 'denied', `${sni}: denied`);
    t.equal(log.reason, 'route_access_list', `${sni}: by the route's list`);
    t.equal(log.route, sni, `${sni}: the route that refused`);
    t.equal(log.sni, sni, `${sni}: the hello was read`);
    t.ok((log.bytesFromClient as number) > 0, `${sni}: bytes were read (the hello)`);
    t.equal(log.backend, null, `${sni}: no backend`);
  }
  const allowed = await sessionFrom('allow6', '::1', 'loopback6.example.com');
  t.equal(allowed.identity.sni, 'loopback6.example.com', 'a route allowing ::1/128 serves ::1');
  await finish('allow6', allowed);
});

t.test('every outcome gives back its per-client and listener slot (limits of 1)', async (t) => {
  const hello = (serverName: string): Buffer => wrapInRecords(buildClientHello({ serverName }));
  const cases: Array<[string, string, Buffer | null]> = [
    ['bad_hello', 'bad_hello', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['no_route', 'no_route', hello('unknown.example.org')],
    ['route deny', 'denied', hello('guarded.example.com')],
    ['backend down', 'backend_unreachable', hello('dead.example.com')],
    ['hello timeout', 'hello_timeout', null],
    ['client leaves before its hello', 'client_closed', Buffer.alloc(0)],
  ];
  for (const [label, expected, bytes] of cases) {
    for (let round = 0; round < 2; round++) {
      const socket = await rawFrom('slots', '127.0.0.1');
      const client = peer('127.0.0.1', socket.localPort!);
      const closed = readUntilClosed(socket);
      if (bytes !== null && bytes.length === 0) socket.end();
      else if (bytes !== null) socket.write(bytes);
      await guard(closed, GUARD_MS, `${label}: connection closed`);
      const log = await closedLogFor('slots', client);
      t.equal(log.outcome, expected, `${label}, round ${round}: outcome ${expected}`);
    }
  }
  const session = await sessionFrom('slots', '127.0.0.1');
  t.equal(session.identity.backend, 'app', 'after all of them, one more connection from the same client is served');
  t.equal((await finish('slots', session)).outcome, 'ok');
});

t.test('maxConnectionsPerClient: 2', async (t) => {
  const first = await sessionFrom('perclient', '127.0.0.1');
  const second = await sessionFrom('perclient', '127.0.0.1');
  t.pass('two connections from 127.0.0.1 are served');

  const { client, outcome } = await refusedSilently('perclient', '127.0.0.1');
  t.equal(outcome.received.length, 0, 'a third from 127.0.0.1 is closed at once, unanswered');
  const limited = await closedLogFor('perclient', client);
  t.equal(limited.outcome, 'client_limit');
  t.equal(limited.bytesFromClient, 0, 'not a byte read');

  const other = await sessionFrom('perclient', '127.0.0.2');
  t.equal(other.identity.backend, 'app', 'another address (127.0.0.2) is served meanwhile');
  t.equal((await finish('perclient', other)).outcome, 'ok');

  t.equal((await finish('perclient', first)).outcome, 'ok', 'one of the two ends');
  const again = await sessionFrom('perclient', '127.0.0.1');
  t.equal(again.identity.backend, 'app', 'then a new one from 127.0.0.1 is served');

  const { client: overAgain } = await refusedSilently('perclient', '127.0.0.1');
  t.equal((await closedLogFor('perclient', overAgain)).outcome, 'client_limit', 'and the limit holds again at two');

  await finish('perclient', second);
  await finish('perclient', again);
});

/** Watches a TLS client that is expected to be held: records whether it got served or closed. */
function watch(socket: tls.TLSSocket): { state: () => { secure: boolean; closed: boolean; line: string | null } } {
  let secure = false;
  let closed = false;
  let line: string | null = null;
  socket.on('error', () => {});
  socket.once('secureConnect', () => {
    secure = true;
    readLine(socket).then(
      (text) => (line = text),
      () => {},
    );
  });
  socket.once('close', () => (closed = true));
  return { state: () => ({ secure, closed, line }) };
}

t.test('maxConnections: 2: a third connection waits, unread, and is served once a slot frees', async (t) => {
  const first = await sessionFrom('capped', '127.0.0.1');
  const second = await sessionFrom('capped', '127.0.0.1');

  const third = tls.connect({ host: '127.0.0.1', port: proxy.port('capped'), servername: 'app.example.com', ca: ca.cert });
  const thirdWatch = watch(third);
  await guard(once(third, 'connect'), GUARD_MS, 'TCP connect of the third client');
  t.pass('the third client connects at TCP level');
  await sleep(HELD_WINDOW_MS);
  t.same(thirdWatch.state(), { secure: false, closed: false, line: null }, 'not served (no handshake, no identity line) and not closed');

  const firstLog = await finish('capped', first);
  t.equal(firstLog.outcome, 'ok', 'one of the first two ends');
  await guard(
    (async () => {
      while (thirdWatch.state().line === null && !thirdWatch.state().closed) await sleep(10);
    })(),
    GUARD_MS,
    'the held client being served',
  );
  const served = thirdWatch.state();
  t.equal(served.closed, false, 'the held client was not refused');
  t.ok(served.line, 'then the held client is served: its identity line arrived');
  t.equal((JSON.parse(served.line ?? '{}') as BackendIdentity).backend, 'app');
  third.end();
  t.equal((await closedLogFor('capped', `127.0.0.1:${third.localPort}`)).outcome, 'ok', 'its log line: ok');
  third.destroy();
  await finish('capped', second);
});

t.test('maxConnections: a held client that gives up does not keep a slot', async (t) => {
  const first = await sessionFrom('capped', '127.0.0.1');
  const second = await sessionFrom('capped', '127.0.0.1');
  const quitter = await rawFrom('capped', '127.0.0.1');
  const quitterClient = peer('127.0.0.1', quitter.localPort!);
  const patient = tls.connect({ host: '127.0.0.1', port: proxy.port('capped'), servername: 'app.example.com', ca: ca.cert });
  const patientWatch = watch(patient);
  await guard(once(patient, 'connect'), GUARD_MS, 'TCP connect of the patient client');
  quitter.destroy();

  await finish('capped', first);
  await guard(
    (async () => {
      while (patientWatch.state().line === null && !patientWatch.state().closed) await sleep(10);
    })(),
    GUARD_MS,
    'the patient client being served',
  );
  t.ok(patientWatch.state().line, 'the client behind the one that left is served');
  const quitterLog = await closedLogFor('capped', quitterClient);
  t.equal(quitterLog.outcome, 'client_closed', 'the one that left is logged as client_closed once its turn came');
  patient.end();
  await closedLogFor('capped', `127.0.0.1:${patient.localPort}`);
  patient.destroy();
  await finish('capped', second);
});

t.test(`maxConnections holds at most ${MAX_WAITING} clients; one more is reset`, async (t) => {
  const active = await sessionFrom('backlog', '127.0.0.1');
  const held: net.Socket[] = [];
  const heldClosed: string[] = [];
  try {
    const deadline = Date.now() + 30_000;
    for (let index = 0; index < MAX_WAITING && Date.now() < deadline; index++) {
      const socket = await rawFrom('backlog', '127.0.0.1');
      socket.on('error', () => {});
      socket.once('close', () => heldClosed.push(String(index)));
      held.push(socket);
    }
    t.equal(held.length, MAX_WAITING, `${MAX_WAITING} clients connected and held`);
    // The reset may even beat the client's own view of its connect: either way the error is ECONNRESET.
    const extra = net.connect({ host: '127.0.0.1', port: proxy.port('backlog'), allowHalfOpen: true });
    const outcome = await guard(readUntilClosed(extra), GUARD_MS, 'the client over the holding limit being closed');
    t.equal(outcome.received.length, 0, 'the one over the limit gets nothing');
    t.equal(outcome.endedBy, 'error', 'it is closed with an error');
    t.equal(outcome.errorCode, 'ECONNRESET', 'a reset');
    await sleep(100);
    t.same(heldClosed, [], 'the held clients are still open');
  } finally {
    for (const socket of held) socket.destroy();
    active.socket.destroy();
  }
  // The held clients left; each is admitted in turn, sees the end and is logged; the listener recovers.
  await guard(
    (async () => {
      while (proxy.connectionLogs().filter((line) => line.listener === 'backlog').length < MAX_WAITING + 1) await sleep(20);
    })(),
    GUARD_MS * 3,
    'the held clients being drained',
  );
  const after = await sessionFrom('backlog', '127.0.0.1');
  t.equal(after.identity.backend, 'app', 'the listener serves again');
  await finish('backlog', after);
});

t.test('while the listener is at maxConnections, denied and over-the-client-limit clients are still closed at once', async (t) => {
  const active = await sessionFrom('full', '127.0.0.1');
  const held: net.Socket[] = [];
  try {
    for (const [label, localAddress, outcome] of [
      ['denied 127.0.0.2', '127.0.0.2', 'denied'],
      ['a second connection from 127.0.0.1 (limit 1 per client)', '127.0.0.1', 'client_limit'],
    ] as const) {
      const socket = await rawFrom('full', localAddress);
      held.push(socket);
      const client = peer(localAddress, socket.localPort!);
      // The client half-closes on the proxy's FIN (allowHalfOpen), so watch for the end, reading.
      const closed = await Promise.race([readUntilClosed(socket).then(() => true), sleep(HELD_WINDOW_MS * 2).then(() => false)]);
      t.ok(closed, `${label}: closed at once, not held for a slot`);
      if (closed) t.equal((await closedLogFor('full', client)).outcome, outcome, `${label}: outcome ${outcome}`);
    }
  } finally {
    for (const socket of held) socket.destroy();
    await finish('full', active);
  }
});
