// Backends named from the hostname, through the compiled CLI, with `resolvers`
// pointing at a DNS server the test runs (test/helpers/dns-server.ts):
// "{1}.internal" sends each name to its own backend; a name the route did not
// match, or cannot make a backend name of, is refused with no DNS query and
// no backend contacted; answers are cached for their TTL; and the configured
// server is asked, not the system's resolver, also after a reload changes it.
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import t from 'tap';
import { stringify } from 'yaml';
import { startTlsBackend, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { buildClientHello, wrapInRecords } from '../helpers/client-hello-fixtures.js';
import { DnsServer } from '../helpers/dns-server.js';
import { parsePrometheus, sumOf } from '../helpers/prometheus.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { connectTls, whoAnswers } from '../helpers/tls-client.js';
import { guard, sleep } from '../helpers/wait.js';

const GUARD_MS = 30_000;
const UNRECOGNIZED_NAME_ALERT = Buffer.from('15030300020270', 'hex');

const ca = await createCertificateAuthority();
const dns = await DnsServer.start();
t.teardown(() => dns.close());

/**
 * Two backends on one port, at 127.0.0.2 and 127.0.0.3 (all of 127/8 is
 * loopback on Linux): a template fixes the port, so DNS is what tells them apart.
 */
async function startBackendPair(): Promise<[TestBackend, TestBackend]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const blue = await startTlsBackend(ca, 'blue', { host: '127.0.0.2', dnsNames: ['*.apps.example.com', '*.example.com'] });
    try {
      const green = await startTlsBackend(ca, 'green', { host: '127.0.0.3', port: blue.port, dnsNames: ['*.apps.example.com', '*.example.com'] });
      return [blue, green];
    } catch {
      await blue.close();
    }
  }
  throw new Error('no port free on both 127.0.0.2 and 127.0.0.3');
}

const [blue, green] = await startBackendPair();
t.teardown(() => Promise.all([blue.close(), green.close()]));
const port = blue.port;

dns.set('blue.internal', ['127.0.0.2'], 300);
dns.set('green.internal', ['127.0.0.3'], 300);
dns.set('cached.internal', ['127.0.0.2'], 300);
dns.set('brief.internal', ['127.0.0.2'], 1);

const config = {
  resolvers: [dns.address],
  admin: { listen: '127.0.0.1:0' },
  listeners: [
    {
      name: 'public',
      listen: '127.0.0.1:0',
      routes: [
        { hostnames: ['*.apps.example.com'], backends: [`{1}.internal:${port}`] },
        { hostnames: ['static.example.com'], backends: [`green.internal:${port}`] },
      ],
    },
  ],
};
const proxy: ProxyProcess = await startProxy(config);
t.teardown(() => proxy.stop());
const admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);

function closedLogFor(client: string): Promise<LogLine> {
  return proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, GUARD_MS);
}

async function session(servername: string): Promise<{ backend: string; log: LogLine }> {
  const socket = await guard(connectTls({ port: proxy.port('public'), servername, ca: ca.cert }), GUARD_MS, `TLS to ${servername}`);
  const client = `127.0.0.1:${socket.localPort}`;
  const answered = await guard(
    new Promise<string>((resolve, reject) => {
      socket.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8')));
      socket.once('error', reject);
    }),
    GUARD_MS,
    `the backend's line for ${servername}`,
  );
  socket.end();
  return { backend: (JSON.parse(answered.split('\n')[0]!) as { backend: string }).backend, log: await closedLogFor(client) };
}

/** A hand-built hello for `serverName` (any bytes the ClientHello parser lets through): what came back, and the connection's log line. */
async function rawHello(serverName: string): Promise<{ received: Buffer; log: LogLine }> {
  const socket = await connectRaw(proxy.port('public'));
  const client = `127.0.0.1:${socket.localPort}`;
  const outcome = readUntilClosed(socket);
  socket.write(wrapInRecords(buildClientHello({ serverName })));
  const { received } = await guard(outcome, GUARD_MS, `the answer to ${serverName}`);
  return { received, log: await closedLogFor(client) };
}

t.test('each name goes to the backend its template names', async (t) => {
  const first = await session('blue.apps.example.com');
  t.equal(first.backend, 'blue');
  t.match(first.log, { outcome: 'ok', route: '*.apps.example.com', backend: `blue.internal:${port}` }, 'the log names the backend dialled');
  const second = await session('green.apps.example.com');
  t.equal(second.backend, 'green');
  t.match(second.log, { outcome: 'ok', backend: `green.internal:${port}` });
  const identity = await whoAnswers({ port: proxy.port('public'), servername: 'green.apps.example.com', ca: ca.cert });
  t.ok(identity.authorized, 'the client verified the backend’s own certificate: passed through, not terminated');
});

t.test('a name the route did not match never reaches a template: no DNS query, no backend', async (t) => {
  const queries = dns.queries.length;
  const accepted = blue.accepted + green.accepted;
  const { received, log } = await rawHello('blue.internal.example.org');
  t.equal(received.toString('hex'), UNRECOGNIZED_NAME_ALERT.toString('hex'), 'unrecognized_name alert');
  t.match(log, { outcome: 'no_route', route: null, backend: null });
  t.equal(dns.queries.length, queries, 'no DNS query');
  t.equal(blue.accepted + green.accepted, accepted, 'no backend contacted');
});

t.test('a matched name that cannot make a backend name is refused the same way, before any DNS query', async (t) => {
  const queries = dns.queries.length;
  const accepted = blue.accepted + green.accepted;
  // The ClientHello parser lets any printable ASCII through in a label.
  for (const serverName of ['blue.internal:9.apps.example.com', 'x/y.apps.example.com', 'blue%2e.apps.example.com', 'blue-.apps.example.com']) {
    const { received, log } = await rawHello(serverName);
    t.equal(received.toString('hex'), UNRECOGNIZED_NAME_ALERT.toString('hex'), `${serverName}: unrecognized_name alert`);
    t.match(log, { outcome: 'no_route', reason: 'no_backend_name', route: '*.apps.example.com', backend: null, sni: serverName });
  }
  t.equal(dns.queries.length, queries, 'no DNS query');
  t.equal(blue.accepted + green.accepted, accepted, 'no backend contacted');
});

t.test('a name DNS does not know: backend_unreachable with the resolver’s answer', async (t) => {
  const socket = await connectRaw(proxy.port('public'));
  const client = `127.0.0.1:${socket.localPort}`;
  const outcome = readUntilClosed(socket);
  socket.write(wrapInRecords(buildClientHello({ serverName: 'nowhere.apps.example.com' })));
  await guard(outcome, GUARD_MS, 'the close');
  t.match(await closedLogFor(client), { outcome: 'backend_unreachable', reason: 'ENOTFOUND', backend: `nowhere.internal:${port}` });
  t.equal(dns.count('nowhere.internal'), 1, 'asked the configured server');
});

t.test('answers are cached for their TTL: many connections, one query', async (t) => {
  for (let index = 0; index < 5; index++) t.equal((await session('cached.apps.example.com')).backend, 'blue');
  t.equal(dns.count('cached.internal', 'A'), 1, 'one A query for five connections');
  t.equal(dns.count('cached.internal', 'AAAA'), 1, 'one AAAA query');
});

t.test('once the TTL has passed, the name is asked again', async (t) => {
  t.equal((await session('brief.apps.example.com')).backend, 'blue');
  t.equal(dns.count('brief.internal'), 1);
  // Connect until the 1 s TTL has run out and a connection asks again: bounded in count and time, no duration asserted.
  const deadline = Date.now() + GUARD_MS;
  for (let round = 0; round < 300 && dns.count('brief.internal') < 2 && Date.now() < deadline; round++) {
    await session('brief.apps.example.com');
    await sleep(100);
  }
  t.equal(dns.count('brief.internal'), 2, 'a second query after the TTL');
});

t.test('the configured resolvers are used, not the system’s', async (t) => {
  // static.example.com names green.internal, which only the test's server knows.
  const { backend, log } = await session('static.example.com');
  t.equal(backend, 'green');
  t.match(log, { outcome: 'ok', backend: `green.internal:${port}` });
  t.ok(dns.count('green.internal') >= 1, 'the test server was asked');
});

t.test('metrics name templated backends by their template, not by each name clients made', async (t) => {
  const [host, adminPort] = [admin.slice(0, admin.lastIndexOf(':')), Number(admin.slice(admin.lastIndexOf(':') + 1))];
  const body = await guard(
    new Promise<string>((resolve, reject) => {
      http
        .get({ host, port: adminPort, path: '/metrics', agent: false }, (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => resolve(text));
        })
        .on('error', reject);
    }),
    GUARD_MS,
    'GET /metrics',
  );
  const metrics = parsePrometheus(body);
  const template = `{1}.internal:${port}`;
  t.ok(sumOf(metrics, 'sni_passthrough_backend_connect_duration_seconds_count', { backend: template }) >= 4, `connects counted under ${template}`);
  t.equal(sumOf(metrics, 'sni_passthrough_backend_connect_failures_total', { backend: template, reason: 'ENOTFOUND' }), 1, 'the failure too');
  t.notMatch(body, /backend="blue\.internal/, 'no series per name');
});

t.test('a reload that changes resolvers asks the new servers, with nothing kept from the old', async (t) => {
  const other = await DnsServer.start();
  t.teardown(() => other.close());
  // The same name, another answer: blue.internal, cached for 300 s from the first server, is green's address here.
  other.set('blue.internal', ['127.0.0.3'], 300);
  await writeFile(proxy.configFile, stringify({ ...config, resolvers: [other.address] }));
  proxy.child.kill('SIGHUP');
  await proxy.waitForLog((line) => line.msg === 'config reloaded', GUARD_MS);
  const { backend, log } = await session('blue.apps.example.com');
  t.equal(backend, 'green', 'the new server’s answer');
  t.match(log, { outcome: 'ok', backend: `blue.internal:${port}` });
  t.equal(other.count('blue.internal'), 1, 'the new server was asked');
});
