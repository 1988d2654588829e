import t, { type Test } from 'tap';
import { MAX_HEAD_BYTES } from '../../lib/http/request-head.js';
import { encodeProxyV1 } from '../../lib/net/proxy-protocol.js';
import { startEchoBackend } from '../helpers/backends.js';
import { TestConnectionHost } from '../helpers/connection-host.js';
import { readUntilClosed, writeInPieces } from '../helpers/raw-client.js';
import { guard } from '../helpers/wait.js';

const GUARD_MS = 10_000;

const app = await startEchoBackend('app');
const acme = await startEchoBackend('acme');
t.teardown(async () => {
  await app.close();
  await acme.close();
});

const LISTENER = (extra: string[] = []): string =>
  [
    'name: web',
    'listen: 127.0.0.1:0',
    'protocol: http',
    ...extra,
    'routes:',
    '  - hostnames: [app.example.com]',
    `    acmeChallenge: [${acme.address}]`,
    `    backends: [${app.address}]`,
    '  - hostnames: ["*.example.com"]',
    '    redirect: https',
    '    redirectPort: 8443',
    '  - hostnames: [secure.example.com]',
    '    redirect: https',
    '    redirectPort: 443',
  ].join('\n');

/** Sends `bytes` (then a FIN with `end`, for a backend to finish on), returns what came back before the connection closed, as text. */
async function exchange(t: Test, host: TestConnectionHost, bytes: string | Buffer, end = false): Promise<string> {
  const client = await host.connect(t);
  const closed = readUntilClosed(client);
  if (end) client.end(bytes);
  else client.write(bytes);
  const outcome = await guard(closed, GUARD_MS, 'the proxy closes');
  return outcome.received.toString('latin1');
}

const get = (host: string, path = '/'): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: test\r\n\r\n`;

t.test('a routed request is replayed to the backend byte for byte, with what followed it', async (t) => {
  const host = new TestConnectionHost(LISTENER());
  const client = await host.connect(t);
  const closed = readUntilClosed(client);
  const sent = `POST /form HTTP/1.1\r\nHost: APP.example.com:80\r\nContent-Length: 5\r\n\r\nhello`;
  client.end(sent);
  const outcome = await guard(closed, GUARD_MS, 'closed');
  t.equal(outcome.received.toString('latin1'), sent, 'the echo backend got exactly the bytes sent');
  t.match(await host.record(), { outcome: 'ok', sni: 'app.example.com', alpn: [], route: 'app.example.com', backend: app.address, attempts: 1 });
});

t.test('an ACME challenge goes to the certificate manager, the route’s other paths to its backends', async (t) => {
  const host = new TestConnectionHost(LISTENER());
  const challenge = get('app.example.com', '/.well-known/acme-challenge/token');
  t.equal(await exchange(t, host, challenge, true), challenge, 'echoed by a backend');
  t.match(await host.record(1), { outcome: 'ok', route: 'app.example.com', backend: acme.address });
  await exchange(t, host, get('app.example.com', '/.well-known/other'), true);
  t.match(await host.record(2), { outcome: 'ok', route: 'app.example.com', backend: app.address });
});

t.test('redirects: 308 to https with the path and query, the port unless 443; no backend', async (t) => {
  const host = new TestConnectionHost(LISTENER());
  const before = app.accepted + acme.accepted;
  const answer = await exchange(t, host, get('www.Example.com:80', '/a/b?c=1&d'));
  t.equal(answer, 'HTTP/1.1 308 Permanent Redirect\r\nLocation: https://www.example.com:8443/a/b?c=1&d\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  t.match(await host.record(1), { outcome: 'redirect', reason: null, route: '*.example.com', backend: null, attempts: 0 });
  t.match(await exchange(t, host, get('secure.example.com', '/x')), /\r\nLocation: https:\/\/secure\.example\.com\/x\r\n/, 'no :443');
  t.match(await exchange(t, host, 'OPTIONS * HTTP/1.1\r\nHost: secure.example.com\r\n\r\n'), /\r\nLocation: https:\/\/secure\.example\.com\/\r\n/, '"*": "/"');
  t.equal(app.accepted + acme.accepted, before, 'no backend was contacted');
});

t.test('no route and no default: 404', async (t) => {
  const host = new TestConnectionHost(LISTENER());
  t.match(await exchange(t, host, get('example.org')), /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*Connection: close\r\n[\s\S]*\r\n\r\n404 Not Found\n$/);
  t.match(await host.record(), { outcome: 'no_route', route: null, sni: 'example.org', backend: null });
});

t.test('requests that cannot be routed: answered, recorded with the reason, no backend', async (t) => {
  const host = new TestConnectionHost(LISTENER());
  const before = app.accepted + acme.accepted;
  const tooLarge = `GET / HTTP/1.1\r\nHost: app.example.com\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`;
  const cases: Array<[string, string, string, string]> = [
    ['no Host', 'GET / HTTP/1.1\r\n\r\n', '400 Bad Request', 'no_host'],
    ['HTTP/1.0 without a Host', 'GET / HTTP/1.0\r\n\r\n', '400 Bad Request', 'no_host'],
    ['a malformed request line', 'GET / HTTP/1.1 extra\r\nHost: app.example.com\r\n\r\n', '400 Bad Request', 'malformed'],
    ['a malformed header', 'GET / HTTP/1.1\r\nHost : app.example.com\r\n\r\n', '400 Bad Request', 'malformed'],
    ['a bad Host', 'GET / HTTP/1.1\r\nHost: app..example.com\r\n\r\n', '400 Bad Request', 'bad_host'],
    ['a TLS ClientHello', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', '400 Bad Request', 'malformed'],
    ['headers over 16 KiB', tooLarge, '431 Request Header Fields Too Large', 'headers_too_large'],
    ['a request line over 16 KiB', `GET /${'a'.repeat(MAX_HEAD_BYTES)} HTTP/1.1\r\n`, '414 URI Too Long', 'uri_too_long'],
  ];
  let count = 0;
  for (const [name, bytes, status, reason] of cases) {
    const answer = await exchange(t, host, Buffer.from(bytes, 'latin1'));
    const body = `${status}\n`;
    t.equal(
      answer,
      `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      name,
    );
    t.match(await host.record(++count), { outcome: 'bad_request', reason, route: null, backend: null, attempts: 0 }, `${name}: recorded`);
  }
  t.equal(app.accepted + acme.accepted, before, 'no backend was contacted');
});

t.test('a head slower than clientHelloTimeout: 408; a client that leaves mid-head: closed', async (t) => {
  const host = new TestConnectionHost(LISTENER(['clientHelloTimeout: 500ms']));
  const client = await host.connect(t);
  const closed = readUntilClosed(client);
  const head = Buffer.from(get('app.example.com'));
  // A sixth of the head every 200 ms: still sending past the timeout, not within 100 ms of it.
  const trickling = writeInPieces(client, head, Math.ceil(head.length / 6), 200);
  const outcome = await guard(closed, GUARD_MS, 'closed');
  await trickling;
  t.match(outcome.received.toString('latin1'), /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*\r\n\r\n408 Request Timeout\n$/);
  t.match(await host.record(1), { outcome: 'request_timeout', reason: null, backend: null });

  const leaving = await host.connect(t);
  leaving.end('GET / HTTP/1.1\r\nHost: app.exa');
  await guard(readUntilClosed(leaving), GUARD_MS, 'closed');
  t.match(await host.record(2), { outcome: 'client_closed', reason: 'incomplete_request', backend: null });
});

t.test('a PROXY v1 header in front of a request: the client it names, the request routed and replayed without it', async (t) => {
  const host = new TestConnectionHost(LISTENER(['acceptProxyProtocol: true']));
  const header = encodeProxyV1({ source: { address: '203.0.113.7', port: 40000 }, destination: { address: '192.0.2.1', port: 80 } });
  const request = get('app.example.com', '/behind-a-balancer');
  const answer = await exchange(t, host, Buffer.concat([header, Buffer.from(request)]), true);
  t.equal(answer, request, 'the backend got the request alone');
  t.match(await host.record(), { outcome: 'ok', client: '203.0.113.7:40000', route: 'app.example.com', backend: app.address });
});
