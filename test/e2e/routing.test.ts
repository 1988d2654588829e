// End-to-end routing through the compiled CLI: exact and wildcard routes,
// precedence, normalisation of the SNI, the default route, the no-route
// alert, real external clients (curl, openssl s_client), and the one
// `connection closed` log line per connection.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { startHttpsBackend, startTlsBackend, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { buildClientHello, wrapInRecords } from '../helpers/client-hello-fixtures.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { runProgram, which } from '../helpers/programs.js';

/** The `t` handed to a subtest (assertions included). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const UNRECOGNIZED_NAME_ALERT = Buffer.from('15030300020270', 'hex');
const GUARD_MS = 10_000;

const ca = await createCertificateAuthority();
const backends: Record<string, TestBackend> = {};
let proxy: ProxyProcess;
let tempDirectory: string;
let caFile: string;
/** Client addresses ("127.0.0.1:PORT") of every connection this file opened with a known local port. */
const clients: string[] = [];

t.before(async () => {
  tempDirectory = await mkdtemp(join(tmpdir(), 'sni-routing-test-'));
  caFile = join(tempDirectory, 'ca.pem');
  await writeFile(caFile, ca.cert);
  backends.exact = await startTlsBackend(ca, 'exact', { dnsNames: ['app.example.com', 'tools.example.net', 'only.example.com'] });
  backends.wild = await startTlsBackend(ca, 'wild', { dnsNames: ['*.example.com', '*.b.example.com'] });
  backends.deep = await startTlsBackend(ca, 'deep', { dnsNames: ['*.dev.example.com', '*.b.dev.example.com'] });
  backends.unicode = await startTlsBackend(ca, 'unicode', { dnsNames: ['xn--bcher-kva.example'] });
  backends.fallback = await startTlsBackend(ca, 'fallback', {
    dnsNames: ['example.com', 'myexample.com', 'app.example.com.evil.net', 'localhost'],
  });
  backends.webExact = await startHttpsBackend(ca, 'web-exact', ['web.test']);
  backends.webWild = await startHttpsBackend(ca, 'web-wild', ['*.web.test']);
  proxy = await startProxy({
    defaults: { clientHelloTimeout: '10s', connectTimeout: '5s' },
    listeners: [
      {
        name: 'main',
        listen: '127.0.0.1:0',
        routes: [
          // Wildcards first: precedence must not depend on the order in the file.
          { hostnames: ['*.example.com'], backends: [backends.wild.address] },
          { hostnames: ['*.dev.example.com'], backends: [backends.deep.address] },
          { hostnames: ['app.example.com', 'tools.example.net'], backends: [backends.exact.address] },
          { hostnames: ['Bücher.Example.'], backends: [backends.unicode.address] },
          { hostnames: ['*.web.test'], backends: [backends.webWild.address] },
          { hostnames: ['web.test'], backends: [backends.webExact.address] },
        ],
        default: { backends: [backends.fallback.address] },
      },
      {
        name: 'strict',
        listen: '127.0.0.1:0',
        routes: [{ hostnames: ['only.example.com'], backends: [backends.exact.address] }],
      },
    ],
  });
});

t.teardown(async () => {
  await proxy?.stop();
  await Promise.all(Object.values(backends).map((backend) => backend.close()));
  if (tempDirectory) await rm(tempDirectory, { recursive: true, force: true });
});

const clientOf = (socket: net.Socket): string => `127.0.0.1:${socket.localPort}`;

function closedLogFor(client: string): Promise<LogLine> {
  return proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, GUARD_MS);
}

interface Session {
  identity: BackendIdentity;
  certificateName: string;
  authorized: boolean;
  log: LogLine;
}

/**
 * One verified TLS session through `listener` with SNI `servername` (none when
 * undefined): the backend's identity line, its certificate, and the proxy's
 * log line for the connection once the client has hung up.
 */
async function session(servername: string | undefined, listener = 'main'): Promise<Session> {
  const socket = await connectTls({ port: proxy.port(listener), ca: ca.cert, ...(servername === undefined ? {} : { servername }) });
  const client = clientOf(socket);
  clients.push(client);
  try {
    const identity = JSON.parse(await readLine(socket)) as BackendIdentity;
    const certificateName = String(socket.getPeerCertificate().subject?.CN ?? '');
    const { authorized } = socket;
    socket.end();
    const log = await closedLogFor(client);
    return { identity, certificateName, authorized, log };
  } finally {
    socket.destroy();
  }
}

function checkOkLog(t: Test, log: LogLine, expected: { listener?: string; sni: string | null; route: string; backend: TestBackend }): void {
  t.equal(log.listener, expected.listener ?? 'main', 'log: listener');
  t.match(log.client, /^127\.0\.0\.1:\d+$/, 'log: client address');
  t.equal(log.sni, expected.sni, 'log: sni');
  t.equal(log.route, expected.route, 'log: route is the matched pattern');
  t.equal(log.backend, expected.backend.address, 'log: backend');
  t.type(log.bytesFromClient, 'number');
  t.ok((log.bytesFromClient as number) > 0, 'log: bytesFromClient > 0');
  t.ok((log.bytesToClient as number) > 0, 'log: bytesToClient > 0');
  t.type(log.durationMs, 'number');
  t.ok((log.durationMs as number) >= 0, 'log: durationMs >= 0');
  t.equal(log.outcome, 'ok', 'log: outcome ok');
}

type Case = { sni: string | undefined; backend: string; route: string; loggedSni?: string | null; why: string };

const cases: Case[] = [
  { sni: 'app.example.com', backend: 'exact', route: 'app.example.com', why: 'an exact name beats *.example.com listed before it' },
  { sni: 'tools.example.net', backend: 'exact', route: 'tools.example.net', why: 'second hostname of the same route' },
  { sni: 'other.example.com', backend: 'wild', route: '*.example.com', why: 'one label under the wildcard' },
  { sni: 'a.b.example.com', backend: 'wild', route: '*.example.com', why: 'a wildcard matches any depth below its suffix' },
  { sni: 'x.dev.example.com', backend: 'deep', route: '*.dev.example.com', why: 'the longest wildcard wins' },
  { sni: 'a.b.dev.example.com', backend: 'deep', route: '*.dev.example.com', why: 'longest wildcard, several labels deep' },
  { sni: 'dev.example.com', backend: 'wild', route: '*.example.com', why: '*.dev.example.com does not match its apex; *.example.com does' },
  { sni: 'example.com', backend: 'fallback', route: 'default', why: 'the apex is not matched by *.example.com' },
  { sni: 'myexample.com', backend: 'fallback', route: 'default', why: 'a suffix without the dot boundary is not a match' },
  { sni: 'app.example.com.evil.net', backend: 'fallback', route: 'default', why: 'patterns are anchored at the end' },
  { sni: 'APP.Example.COM', backend: 'exact', route: 'app.example.com', loggedSni: 'app.example.com', why: 'SNI is case-insensitive' },
  { sni: 'app.example.com.', backend: 'exact', route: 'app.example.com', loggedSni: 'app.example.com', why: 'a trailing dot in the SNI is ignored' },
  { sni: 'Other.EXAMPLE.com.', backend: 'wild', route: '*.example.com', loggedSni: 'other.example.com', why: 'case and trailing dot, wildcard route' },
  { sni: 'xn--bcher-kva.example', backend: 'unicode', route: 'xn--bcher-kva.example', why: 'a Unicode name in the config is reached by its punycode SNI' },
  { sni: undefined, backend: 'fallback', route: 'default', loggedSni: null, why: 'no SNI goes to the default route' },
];

for (const { sni, backend, route, loggedSni, why } of cases) {
  t.test(`${sni ?? '(no SNI)'} → ${backend}: ${why}`, async (t) => {
    const result = await session(sni);
    t.equal(result.identity.backend, backend, 'the right backend answered');
    t.equal(result.certificateName, backend, "the client saw that backend's own certificate");
    t.ok(result.authorized, 'the certificate verified against the CA');
    t.equal(
      result.identity.sni?.toLowerCase().replace(/\.$/, '') ?? null,
      sni?.toLowerCase().replace(/\.$/, '') ?? null,
      'the backend saw the SNI the client sent',
    );
    checkOkLog(t, result.log, { sni: loggedSni === undefined ? (sni ?? null) : loggedSni, route, backend: backends[backend]! });
  });
}

/** Sends a hand-built hello with SNI `serverName` and returns the proxy's log line once the connection is over. */
async function routeOfRawHello(serverName: string, listener = 'main'): Promise<LogLine> {
  const socket = await connectRaw(proxy.port(listener));
  const client = clientOf(socket);
  clients.push(client);
  const closed = readUntilClosed(socket);
  socket.end(wrapInRecords(buildClientHello({ serverName })));
  // The TLS backend refuses the made-up hello; either way the connection ends.
  await closed;
  return closedLogFor(client);
}

t.test('an SNI with an empty label is refused as a bad server name, never matched by a wildcard', async (t) => {
  for (const serverName of ['.example.com', 'a..example.com']) {
    const log = await routeOfRawHello(serverName);
    t.equal(log.outcome, 'bad_hello', `${serverName}: outcome`);
    t.equal(log.reason, 'bad_server_name', `${serverName}: reason`);
    t.equal(log.route, null, `${serverName}: not routed`);
  }
});

t.test('no route and no default: unrecognized_name alert', async (t) => {
  const listenerPort = (): number => proxy.port('strict');

  t.test('the route that exists on the strict listener works', async (t) => {
    const result = await session('only.example.com', 'strict');
    t.equal(result.identity.backend, 'exact');
    checkOkLog(t, result.log, { listener: 'strict', sni: 'only.example.com', route: 'only.example.com', backend: backends.exact! });
  });

  for (const [label, serverName] of [
    ['unknown SNI', 'nope.example.org'],
    ['no SNI', undefined],
  ] as const) {
    t.test(`${label}: a hand-built hello gets exactly the 7-byte alert, then the connection closes`, async (t) => {
      const before = backends.exact!.accepted;
      const socket = await connectRaw(listenerPort());
      const client = clientOf(socket);
      clients.push(client);
      const outcome = readUntilClosed(socket);
      socket.write(wrapInRecords(buildClientHello(serverName === undefined ? {} : { serverName })));
      const result = await outcome;
      t.equal(result.received.toString('hex'), UNRECOGNIZED_NAME_ALERT.toString('hex'), 'fatal alert, unrecognized_name (112)');
      t.equal(result.endedBy, 'end', 'closed with a FIN after the alert, not a reset');
      const log = await closedLogFor(client);
      t.equal(log.outcome, 'no_route');
      t.equal(log.listener, 'strict');
      t.equal(log.sni, serverName ?? null);
      t.equal(log.route, null, 'no route in the log');
      t.equal(log.backend, null, 'no backend in the log');
      t.equal(log.bytesToClient, 7, 'only the alert was sent');
      t.equal(backends.exact!.accepted, before, 'no backend was contacted');
    });
  }

  t.test('the alert still arrives when the client sent more than its hello', async (t) => {
    // The bytes behind the hello are never read; closing over them must not turn into a reset that destroys the alert in flight.
    for (let attempt = 0; attempt < 10; attempt++) {
      const socket = await connectRaw(listenerPort());
      const client = clientOf(socket);
      clients.push(client);
      const outcome = readUntilClosed(socket);
      socket.write(Buffer.concat([wrapInRecords(buildClientHello({ serverName: 'nope.example.org' })), Buffer.alloc(300_000, 0x17)]));
      const result = await outcome;
      t.equal(
        result.received.toString('hex'),
        UNRECOGNIZED_NAME_ALERT.toString('hex'),
        `attempt ${attempt}: the alert arrived (ended by ${result.endedBy} ${result.errorCode ?? ''})`,
      );
      const log = await closedLogFor(client);
      t.equal(log.outcome, 'no_route');
    }
  });

  t.test("Node's TLS client reports unrecognized_name", async (t) => {
    const socket = tls.connect({ host: '127.0.0.1', port: listenerPort(), servername: 'nope.example.org', ca: ca.cert });
    let client = '';
    socket.once('connect', () => (client = clientOf(socket)));
    const failure = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      socket.once('secureConnect', () => resolve(null));
      socket.once('error', resolve);
    });
    socket.destroy();
    t.match(client, /^127\.0\.0\.1:\d+$/, 'the TCP connection was made');
    clients.push(client);
    t.ok(failure, 'the handshake failed');
    t.match(`${failure?.code} ${failure?.message}`, /unrecognized.name/i, `error mentions unrecognized name: ${failure?.code} ${failure?.message}`);
    const log = await closedLogFor(client);
    t.equal(log.outcome, 'no_route');
    t.equal(log.sni, 'nope.example.org');
  });
});

const curl = await which('curl');
const openssl = await which('openssl');

t.test('curl --resolve reaches each hostname on its own backend', { skip: curl ? false : 'curl is not installed' }, async (t) => {
  const port = proxy.port('main');
  for (const [name, expected] of [
    ['web.test', 'web-exact'],
    ['shop.web.test', 'web-wild'],
  ] as const) {
    const linesBefore = proxy.connectionLogs().length;
    const result = await runProgram(curl!, [
      '-sS',
      '--max-time',
      '8',
      '--resolve',
      `${name}:${port}:127.0.0.1`,
      '--cacert',
      caFile,
      `https://${name}:${port}/`,
    ]);
    t.equal(result.code, 0, `curl ${name} exited 0 (stderr: ${result.stderr.trim()})`);
    t.equal(result.stdout, expected, `${name} answered by ${expected}`);
    const log = await proxy.waitForLog(
      (line) => line.msg === 'connection closed' && line.sni === name && proxy.connectionLogs().indexOf(line) >= linesBefore,
      GUARD_MS,
    );
    // curl closes its socket as soon as it has the response; when the server's
    // close_notify is still in flight its kernel answers with a reset, which
    // the proxy logs as a normal end with reason client_reset.
    t.ok(log.reason === null || log.reason === 'client_reset', `log: reason ${log.reason} (none, or curl's reset after its response)`);
    checkOkLog(t, log, {
      sni: name,
      route: name === 'web.test' ? 'web.test' : '*.web.test',
      backend: name === 'web.test' ? backends.webExact! : backends.webWild!,
    });
  }
});

t.test('openssl s_client -servername verifies the backend certificate', { skip: openssl ? false : 'openssl is not installed' }, async (t) => {
  const port = proxy.port('main');
  for (const [name, expected] of [
    ['tools.example.net', 'exact'],
    ['x.dev.example.com', 'deep'],
  ] as const) {
    const result = await runProgram(
      openssl!,
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', name, '-verify_hostname', name, '-CAfile', caFile],
      'ping\n',
    );
    const output = `${result.stdout}\n${result.stderr}`;
    t.match(result.stdout, /Verify return code: 0 \(ok\)/, `${name}: chain and hostname verified`);
    t.match(output, new RegExp(`subject=\\s*CN\\s*=\\s*${expected}\\b`), `${name}: certificate of backend ${expected}`);
  }
});

t.test('each connection produced exactly one `connection closed` line', async (t) => {
  // Give any (wrong) second line time to show up; a bounded settle, not a timing assertion.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const lines = proxy.connectionLogs();
  t.ok(clients.length >= cases.length, 'connections were tracked');
  for (const client of clients) {
    t.equal(lines.filter((line) => line.client === client).length, 1, `one line for ${client}`);
  }
  t.notOk(
    proxy.logs.some((line) => /uncaught/i.test(line.msg)),
    'no uncaught exception was logged',
  );
  // The process is still serving.
  const result = await session('app.example.com');
  t.equal(result.identity.backend, 'exact', 'a good client still works at the end');
});
