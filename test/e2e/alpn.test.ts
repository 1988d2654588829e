// ALPN in routes, end to end through the compiled CLI: a route with
// `alpn: [acme-tls/1]` beats the same hostname without `alpn` when the client
// offers acme-tls/1 (TLS-ALPN-01 challenges go to the certificate manager),
// and only then; an ALPN-only hostname does not match clients that do not
// offer it, which fall through to a wildcard or the default. Checked with
// `openssl s_client -alpn` and Node's TLS client.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startTlsBackend, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard } from '../helpers/wait.js';
import { runProgram, which } from '../helpers/programs.js';

const GUARD_MS = 10_000;

const ca = await createCertificateAuthority();
const backends: Record<string, TestBackend> = {};
let proxy: ProxyProcess;
let tempDirectory: string;
let caFile: string;
const openssl = await which('openssl');

t.before(async () => {
  tempDirectory = await mkdtemp(join(tmpdir(), 'sni-alpn-test-'));
  caFile = join(tempDirectory, 'ca.pem');
  await writeFile(caFile, ca.cert);
  const names = ['app.example.com', 'acme-only.example.com', 'x.acme.test', 'h2only.example.net', 'other.example.net', 'localhost'];
  // The certificate manager answers only acme-tls/1, as a TLS-ALPN-01 responder does.
  backends.acme = await startTlsBackend(ca, 'acme', { dnsNames: names, alpn: ['acme-tls/1'] });
  backends.app = await startTlsBackend(ca, 'app', { dnsNames: names, alpn: ['h2', 'http/1.1'] });
  backends.wild = await startTlsBackend(ca, 'wild', { dnsNames: ['*.example.com', '*.acme.test'], alpn: ['h2', 'http/1.1'] });
  backends.h2 = await startTlsBackend(ca, 'h2', { dnsNames: names, alpn: ['h2'] });
  backends.fallback = await startTlsBackend(ca, 'fallback', { dnsNames: names, alpn: ['h2', 'http/1.1'] });
  proxy = await startProxy({
    listeners: [
      {
        name: 'main',
        listen: '127.0.0.1:0',
        routes: [
          // The plain route first: precedence must not depend on the order in the file.
          { hostnames: ['app.example.com'], backends: [backends.app.address] },
          { hostnames: ['app.example.com'], alpn: ['acme-tls/1'], backends: [backends.acme.address] },
          // A hostname with only an ALPN route, under a wildcard.
          { hostnames: ['acme-only.example.com'], alpn: ['acme-tls/1'], backends: [backends.acme.address] },
          { hostnames: ['*.example.com'], backends: [backends.wild.address] },
          // An ALPN wildcard and its plain twin.
          { hostnames: ['*.acme.test'], alpn: ['acme-tls/1'], backends: [backends.acme.address] },
          { hostnames: ['*.acme.test'], backends: [backends.wild.address] },
          // An ALPN-only hostname with no wildcard over it: the default takes the rest.
          { hostnames: ['h2only.example.net'], alpn: ['h2'], backends: [backends.h2.address] },
        ],
        default: { backends: [backends.fallback.address] },
      },
    ],
  });
});

t.teardown(async () => {
  await proxy?.stop();
  await Promise.all(Object.values(backends).map((backend) => backend.close()));
  if (tempDirectory) await rm(tempDirectory, { recursive: true, force: true });
});

function closedLogFor(client: string): Promise<LogLine> {
  return proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, GUARD_MS);
}

/** One Node TLS session offering `alpn`: who answered, the negotiated protocol, the certificate and the log line. */
async function nodeSession(
  servername: string | undefined,
  alpn: string[] | undefined,
): Promise<{ identity: BackendIdentity; negotiated: string | false; certificateName: string; log: LogLine }> {
  const socket = await guard(
    connectTls({ port: proxy.port('main'), ca: ca.cert, ...(servername ? { servername } : {}), ...(alpn ? { alpn } : {}) }),
    GUARD_MS,
    'TLS handshake',
  );
  const client = `127.0.0.1:${socket.localPort}`;
  try {
    const identity = JSON.parse(await guard(readLine(socket), GUARD_MS, 'identity line')) as BackendIdentity;
    const negotiated = socket.alpnProtocol ?? false;
    const certificateName = String(socket.getPeerCertificate().subject?.CN ?? '');
    socket.end();
    return { identity, negotiated, certificateName, log: await closedLogFor(client) };
  } finally {
    socket.destroy();
  }
}

type Case = { sni: string | undefined; alpn: string[] | undefined; backend: string; route: string; negotiated: string | false; why: string };

const cases: Case[] = [
  {
    sni: 'app.example.com',
    alpn: ['acme-tls/1'],
    backend: 'acme',
    route: 'app.example.com',
    negotiated: 'acme-tls/1',
    why: 'the ALPN route beats the same hostname without alpn',
  },
  {
    sni: 'app.example.com',
    alpn: ['h2', 'acme-tls/1'],
    backend: 'acme',
    route: 'app.example.com',
    negotiated: 'acme-tls/1',
    why: 'offering acme-tls/1 among others is enough',
  },
  { sni: 'app.example.com', alpn: undefined, backend: 'app', route: 'app.example.com', negotiated: false, why: 'no ALPN: the plain route' },
  { sni: 'app.example.com', alpn: ['h2', 'http/1.1'], backend: 'app', route: 'app.example.com', negotiated: 'h2', why: 'other protocols: the plain route' },
  {
    sni: 'acme-only.example.com',
    alpn: ['acme-tls/1'],
    backend: 'acme',
    route: 'acme-only.example.com',
    negotiated: 'acme-tls/1',
    why: 'an ALPN-only hostname with its protocol',
  },
  {
    sni: 'acme-only.example.com',
    alpn: ['h2'],
    backend: 'wild',
    route: '*.example.com',
    negotiated: 'h2',
    why: 'an ALPN-only hostname without its protocol falls through to the wildcard',
  },
  { sni: 'acme-only.example.com', alpn: undefined, backend: 'wild', route: '*.example.com', negotiated: false, why: 'no ALPN at all: the wildcard' },
  {
    sni: 'x.acme.test',
    alpn: ['acme-tls/1'],
    backend: 'acme',
    route: '*.acme.test',
    negotiated: 'acme-tls/1',
    why: 'a wildcard ALPN route beats its plain twin',
  },
  { sni: 'x.acme.test', alpn: ['http/1.1'], backend: 'wild', route: '*.acme.test', negotiated: 'http/1.1', why: 'the plain wildcard without acme-tls/1' },
  { sni: 'h2only.example.net', alpn: ['h2'], backend: 'h2', route: 'h2only.example.net', negotiated: 'h2', why: 'an ALPN-only hostname with its protocol' },
  {
    sni: 'h2only.example.net',
    alpn: ['http/1.1'],
    backend: 'fallback',
    route: 'default',
    negotiated: 'http/1.1',
    why: 'an ALPN-only hostname without its protocol falls through to the default',
  },
  { sni: 'h2only.example.net', alpn: undefined, backend: 'fallback', route: 'default', negotiated: false, why: 'no ALPN: the default' },
  { sni: undefined, alpn: ['acme-tls/1', 'h2'], backend: 'fallback', route: 'default', negotiated: 'h2', why: 'no SNI: the default, whatever the ALPN' },
];

for (const { sni, alpn, backend, route, negotiated, why } of cases) {
  t.test(`Node client, ${sni ?? '(no SNI)'} offering ${alpn ? alpn.join(',') : 'no ALPN'} → ${backend}: ${why}`, async (t) => {
    const result = await nodeSession(sni, alpn);
    t.equal(result.identity.backend, backend, 'the right backend answered');
    t.equal(result.certificateName, backend, "the client saw that backend's certificate");
    t.equal(result.log.sni, sni ?? null, 'log: sni');
    t.equal(result.negotiated, negotiated, 'negotiated protocol, end to end with the backend');
    t.equal(result.identity.alpn, negotiated || null, 'the backend saw the same protocol');
    t.equal(result.identity.sni, sni ?? null, 'the backend saw the SNI');
    t.equal(result.log.outcome, 'ok', 'log: outcome');
    t.equal(result.log.route, route, 'log: route pattern');
    t.equal(result.log.backend, backends[backend]!.address, 'log: backend');
    t.same(result.log.alpn, alpn ?? [], 'log: the protocols the client offered');
  });
}

t.test('openssl s_client -alpn reaches the acme backend, without it the app', { skip: openssl ? false : 'openssl is not installed' }, async (t) => {
  const port = proxy.port('main');
  for (const [label, extra, expected, alpnLine] of [
    ['-alpn acme-tls/1', ['-alpn', 'acme-tls/1'], 'acme', /ALPN protocol: acme-tls\/1/],
    ['no -alpn', [], 'app', /No ALPN negotiated/],
    ['-alpn h2', ['-alpn', 'h2'], 'app', /ALPN protocol: h2/],
    ['-alpn h2,acme-tls/1', ['-alpn', 'h2,acme-tls/1'], 'acme', /ALPN protocol: acme-tls\/1/],
  ] as const) {
    const before = proxy.connectionLogs().length;
    const result = await runProgram(
      openssl!,
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'app.example.com', '-verify_hostname', 'app.example.com', '-CAfile', caFile, ...extra],
      'ping\n',
    );
    const output = `${result.stdout}\n${result.stderr}`;
    t.match(output, new RegExp(`subject=\\s*CN\\s*=\\s*${expected}\\b`), `${label}: certificate of backend ${expected}`);
    t.match(result.stdout, alpnLine, `${label}: ${alpnLine.source}`);
    t.match(result.stdout, /Verify return code: 0 \(ok\)/, `${label}: verified`);
    const log = await proxy.waitForLog((line) => line.msg === 'connection closed' && proxy.connectionLogs().indexOf(line) >= before, GUARD_MS);
    t.equal(log.backend, backends[expected]!.address, `${label}: log: backend`);
  }
});
