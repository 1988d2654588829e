// Plain-HTTP listeners (`protocol: http`) end to end through the compiled
// CLI, with curl as the client: routing by Host (exact, wildcard, default,
// an IP address), redirects to https with the path and query (and
// redirectPort), ACME http-01 challenges to their own backend, every bad
// request answered and logged with no backend contacted, a slow client
// answered 408, a PROXY v1 header in front of a request, and the metrics.
import t from 'tap';
import { type HttpIdentity, startHttpBackend, type TestBackend } from '../helpers/backends.js';
import { encodeProxyV1 } from '../../lib/net/proxy-protocol.js';
import { type ProgramResult, runProgram, which } from '../helpers/programs.js';
import { parsePrometheus, sumOf } from '../helpers/prometheus.js';
import { type LogLine, type ProxyProcess, startProxy } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed, writeInPieces } from '../helpers/raw-client.js';
import { guard, waitFor } from '../helpers/wait.js';

/** The `t` handed to a subtest (assertions included). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const GUARD_MS = 10_000;
/** The time a client has for its request head on the `web` listener; the slow client takes several times longer. */
const HEAD_TIMEOUT_MS = 1_000;

const curl = await which('curl');
const backends: Record<string, TestBackend & { requests: number }> = {};
let proxy: ProxyProcess;
let web: number;
let redirecting: number;
let behindBalancer: number;
let admin: string;

t.before(async () => {
  if (!curl) return;
  for (const name of ['app', 'dev', 'fallback', 'acme']) backends[name] = await startHttpBackend(name);
  const { app, dev, fallback, acme } = backends as Record<string, TestBackend>;
  proxy = await startProxy({
    admin: { listen: '127.0.0.1:0' },
    listeners: [
      {
        name: 'web',
        listen: '127.0.0.1:0',
        protocol: 'http',
        clientHelloTimeout: `${HEAD_TIMEOUT_MS}ms`,
        routes: [
          { hostnames: ['app.example.com'], acmeChallenge: [acme!.address], backends: [app!.address] },
          { hostnames: ['*.dev.example.com'], backends: [dev!.address] },
          { hostnames: ['secure.example.com'], redirect: 'https' },
          { hostnames: ['*.alt.example.com'], redirect: 'https', redirectPort: 8443 },
        ],
        default: { backends: [fallback!.address] },
      },
      // Port 80 of a host whose sites are all on https: everything redirects, the certificate manager gets its challenges.
      { name: 'redirecting', listen: '127.0.0.1:0', protocol: 'http', default: { redirect: 'https', acmeChallenge: [acme!.address] } },
      { name: 'behind-balancer', listen: '127.0.0.1:0', protocol: 'http', acceptProxyProtocol: true, default: { backends: [app!.address] } },
    ],
  });
  web = proxy.port('web');
  redirecting = proxy.port('redirecting');
  behindBalancer = proxy.port('behind-balancer');
  admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);
});

t.teardown(async () => {
  await proxy?.stop();
  await Promise.all(Object.values(backends).map((backend) => backend.close()));
});

const skip = curl ? false : 'curl is not installed';

/** Runs curl with `args`; `-s` and a bounded run time always. */
function runCurl(args: string[]): Promise<ProgramResult> {
  return runProgram(curl!, ['-s', '--max-time', '10', ...args], '', GUARD_MS + 5_000);
}

/** curl to `http://NAME:PORT/PATH` with NAME resolved to 127.0.0.1, as a browser would send it (Host: NAME:PORT). */
function curlAs(name: string, port: number, path: string, args: string[] = []): Promise<ProgramResult> {
  return runCurl(['--resolve', `${name}:${port}:127.0.0.1`, ...args, `http://${name}:${port}${path}`]);
}

/** The status line's code and the Location curl saw (`-w`), without following it. */
async function statusAndLocation(name: string, port: number, path: string, args: string[] = []): Promise<string> {
  const result = await curlAs(name, port, path, ['-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', ...args]);
  return result.stdout.trim();
}

async function identity(t: Test, result: ProgramResult): Promise<HttpIdentity> {
  t.equal(result.code, 0, `curl exited 0 (stderr: ${result.stderr.trim()})`);
  return JSON.parse(result.stdout) as HttpIdentity;
}

/** Resolves with the `count`th connection line (1-based) that `predicate` accepts. */
async function logLine(predicate: (line: LogLine) => boolean, count = 1): Promise<LogLine> {
  await waitFor(() => proxy.connectionLogs().filter(predicate).length >= count, `connection line ${count}`, GUARD_MS);
  return proxy.connectionLogs().filter(predicate)[count - 1]!;
}

const requestsSoFar = (): number => Object.values(backends).reduce((sum, backend) => sum + backend.accepted, 0);

t.test('the Host routes: exact, wildcard, default, an IP address', { skip }, async (t) => {
  const app = await identity(t, await curlAs('App.Example.com', web, '/index.html?x=1'));
  t.same(app, { backend: 'app', method: 'GET', url: '/index.html?x=1', host: `App.Example.com:${web}` }, 'the request reached the backend as sent');
  t.match(await logLine((line) => line.route === 'app.example.com'), { listener: 'web', sni: 'app.example.com', backend: backends.app!.address, alpn: [] });
  t.match(await identity(t, await curlAs('a.b.dev.example.com', web, '/')), { backend: 'dev', host: `a.b.dev.example.com:${web}` }, 'wildcard');
  t.match(await identity(t, await curlAs('dev.example.com', web, '/')), { backend: 'fallback' }, 'the wildcard does not match its own suffix');
  t.match(await identity(t, await curlAs('unknown.example.org', web, '/')), { backend: 'fallback' }, 'no route: default');
  t.match(await identity(t, await runCurl([`http://127.0.0.1:${web}/by-address`])), { backend: 'fallback', url: '/by-address' }, 'an IP address: default');
  t.match(await identity(t, await runCurl(['-g', `http://[::1]:${web}/`, '--connect-to', `::127.0.0.1:${web}`])), { backend: 'fallback' }, 'an IPv6 literal');
  const posted = await identity(t, await curlAs('app.example.com', web, '/form', ['--data-binary', 'a=1&b=2']));
  t.match(posted, { backend: 'app', method: 'POST', url: '/form' }, 'a request with a body');
});

t.test('redirects: 308 to https with the path and query as sent, and redirectPort', { skip }, async (t) => {
  const before = requestsSoFar();
  t.equal(await statusAndLocation('secure.example.com', web, '/a/b%20c?d=1&e'), '308 https://secure.example.com/a/b%20c?d=1&e');
  t.equal(await statusAndLocation('Www.Alt.Example.com', web, '/p?q'), '308 https://www.alt.example.com:8443/p?q', 'with redirectPort');
  t.equal(await statusAndLocation('secure.example.com', web, '/', ['-X', 'POST', '--data', 'x']), '308 https://secure.example.com/', 'POST too (308 keeps it)');
  t.equal(await statusAndLocation('site.example.net', redirecting, '/account?tab=2'), '308 https://site.example.net/account?tab=2', 'a default route');
  t.equal(requestsSoFar(), before, 'no backend was contacted');
  t.match(await logLine((line) => line.outcome === 'redirect' && line.route === '*.alt.example.com'), {
    listener: 'web',
    sni: 'www.alt.example.com',
    backend: null,
    attempts: 0,
    reason: null,
  });
});

t.test('ACME http-01 challenges go to their backend; other paths follow the route', { skip }, async (t) => {
  const token = '/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
  t.match(await identity(t, await curlAs('app.example.com', web, token)), { backend: 'acme', url: token }, 'beside backends');
  t.match(await identity(t, await curlAs('app.example.com', web, '/.well-known/security.txt')), { backend: 'app' }, 'not a challenge');
  t.match(await identity(t, await curlAs('site.example.net', redirecting, token)), { backend: 'acme', url: token }, 'beside a redirect');
  t.equal(await statusAndLocation('site.example.net', redirecting, '/'), '308 https://site.example.net/', 'the rest is redirected');
  t.match(await logLine((line) => line.listener === 'redirecting' && line.backend === backends.acme!.address), { route: 'default', outcome: 'ok' });
});

t.test('bad requests: answered, logged with the reason, no backend contacted', { skip }, async (t) => {
  const before = requestsSoFar();
  const cases: Array<{ name: string; args: string[]; status: string; reason: string }> = [
    { name: 'no Host', args: ['-H', 'Host:', `http://127.0.0.1:${web}/`], status: '400', reason: 'no_host' },
    { name: 'HTTP/1.0 without a Host', args: ['--http1.0', '-H', 'Host:', `http://127.0.0.1:${web}/`], status: '400', reason: 'no_host' },
    { name: 'a malformed request line', args: ['--request-target', 'a b', `http://127.0.0.1:${web}/`], status: '400', reason: 'malformed' },
    { name: 'a malformed header', args: ['-H', 'Bad Header: x', `http://127.0.0.1:${web}/`], status: '400', reason: 'malformed' },
    { name: 'a Host that is not a name', args: ['-H', 'Host: a..example', `http://127.0.0.1:${web}/`], status: '400', reason: 'bad_host' },
    { name: '17 KiB of headers', args: ['-H', `X-Big: ${'a'.repeat(17 * 1024)}`, `http://127.0.0.1:${web}/`], status: '431', reason: 'headers_too_large' },
  ];
  for (const { name, args, status, reason } of cases) {
    const result = await runCurl(['-o', '/dev/null', '-w', '%{http_code}', ...args]);
    t.equal(result.stdout, status, `${name}: ${status}`);
    const count = cases.filter((other) => other.reason === reason).indexOf(cases.find((other) => other.name === name)!) + 1;
    t.match(
      await logLine((line) => line.outcome === 'bad_request' && line.reason === reason, count),
      { listener: 'web', backend: null, route: null },
      `${name}: logged`,
    );
  }
  t.equal(requestsSoFar(), before, 'no backend was contacted');
});

t.test('a client that trickles its headers past clientHelloTimeout gets 408', { skip }, async (t) => {
  const before = requestsSoFar();
  const socket = await connectRaw(web);
  const closed = readUntilClosed(socket);
  const head = Buffer.from('GET /slow HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: slowloris\r\n\r\n');
  // A sixth of the head every 0.4 timeouts: still sending past the timeout, never within 0.2 timeouts of the answer.
  const trickling = writeInPieces(socket, head, Math.ceil(head.length / 6), HEAD_TIMEOUT_MS * 0.4);
  const outcome = await guard(closed, GUARD_MS, 'the proxy answering and closing');
  await trickling;
  t.match(outcome.received.toString('latin1'), /^HTTP\/1\.1 408 Request Timeout\r\n/);
  t.match(await logLine((line) => line.outcome === 'request_timeout'), { listener: 'web', reason: null, backend: null });
  t.equal(requestsSoFar(), before, 'no backend was contacted');
});

t.test('a PROXY v1 header in front of a request: the client it names, and the request routed', { skip }, async (t) => {
  t.match(
    await identity(t, await runCurl(['--haproxy-protocol', `http://127.0.0.1:${behindBalancer}/from-curl`])),
    { backend: 'app', url: '/from-curl' },
    'curl --haproxy-protocol',
  );
  const socket = await connectRaw(behindBalancer);
  const closed = readUntilClosed(socket);
  const header = encodeProxyV1({ source: { address: '203.0.113.9', port: 41000 }, destination: { address: '192.0.2.1', port: 80 } });
  socket.end(Buffer.concat([header, Buffer.from('GET /from-balancer HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n')]));
  const answer = (await guard(closed, GUARD_MS, 'the answer')).received.toString('latin1');
  t.match(answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*"url":"\/from-balancer"/, 'answered by the backend');
  t.match(await logLine((line) => line.client === '203.0.113.9:41000'), {
    listener: 'behind-balancer',
    outcome: 'ok',
    sni: 'www.example.com',
    backend: backends.app!.address,
  });
});

t.test('the metrics count refusals by reason, and redirects by outcome', { skip }, async (t) => {
  const result = await runCurl([`http://${admin}/metrics`]);
  const metrics = parsePrometheus(result.stdout);
  const failures = (reason: string): number => sumOf(metrics, 'sni_passthrough_http_request_failures_total', { listener: 'web', reason });
  t.same(['no_host', 'malformed', 'bad_host', 'headers_too_large', 'timeout'].map(failures), [2, 2, 1, 1, 1], 'http_request_failures_total by reason');
  t.ok(sumOf(metrics, 'sni_passthrough_connections_closed_total', { listener: 'web', outcome: 'redirect' }) >= 3, 'redirects');
  t.ok(sumOf(metrics, 'sni_passthrough_connections_closed_total', { listener: 'web', outcome: 'bad_request' }) >= 6, 'bad requests');
});
