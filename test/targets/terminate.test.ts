// TerminateTarget (lib/targets/terminate.ts) behind a Connection in this
// process: a real TLS client handshakes with the proxy (the route's
// certificate), the plaintext reaches the backend, and the same backend
// session as passthrough carries it (or re-encrypts it).
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { LocalCertificateAuthority } from '../../lib/tls/local-ca.js';
import { startEchoBackend, startTlsBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { captureClientHello } from '../helpers/client-hello-fixtures.js';
import { TestConnectionHost } from '../helpers/connection-host.js';
import { guard } from '../helpers/wait.js';

const directory = await mkdtemp(join(tmpdir(), 'sni-terminate-test-'));
t.teardown(() => rm(directory, { recursive: true, force: true }));
const ca = await createCertificateAuthority();
const otherCa = await createCertificateAuthority('another CA');

/** Writes a leaf for `names` (key type as asked) and returns its files. */
async function leafFiles(name: string, names: string[], keyType: 'ecdsa' | 'rsa' = 'ecdsa'): Promise<{ cert: string; key: string }> {
  const { cert, key } = await ca.issue(name, names, { keyType });
  const files = { cert: join(directory, `${name}.pem`), key: join(directory, `${name}.key`) };
  await writeFile(files.cert, cert);
  await writeFile(files.key, key);
  return files;
}

const app = await leafFiles('app', ['app.example.com']);
const caFile = join(directory, 'ca.pem');
await writeFile(caFile, ca.cert);
const otherCaFile = join(directory, 'other-ca.pem');
await writeFile(otherCaFile, otherCa.cert);

const echo = await startEchoBackend();
const tlsBackend = await startTlsBackend(ca, 'tls-backend', { dnsNames: ['backend.internal'] });
t.teardown(() => Promise.all([echo.close(), tlsBackend.close()]));

/** A TLS client through a host serving one terminating default route; its socket pair is closed at teardown. */
async function through(t: Test, route: string[], client: tls.ConnectionOptions = {}): Promise<{ host: TestConnectionHost; secure: tls.TLSSocket }> {
  const host = await TestConnectionHost.withCertificates(['name: unit', 'listen: 127.0.0.1:0', 'default:', ...route.map((line) => `  ${line}`)].join('\n'));
  const peer = await host.connect(t);
  const secure = tls.connect({ socket: peer, servername: 'app.example.com', ca: ca.cert, ...client });
  secure.on('error', () => {});
  return { host, secure };
}

/** Resolves when the proxy has closed its side (FIN or reset): the client's socket ends, errors or closes. */
function proxyClosed(socket: net.Socket): Promise<void> {
  return guard(
    new Promise<void>((resolve) => {
      for (const event of ['end', 'error', 'close']) socket.once(event, () => resolve());
    }),
    10_000,
    'the proxy closed the client',
  );
}

function readAll(socket: net.Socket): Promise<string> {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  return guard(
    once(socket, 'end').then(() => text),
    10_000,
    'the end of the stream',
  );
}

t.test('the client gets the route’s certificate, and its plaintext reaches a plain backend and comes back', async (t) => {
  const { host, secure } = await through(t, [`tls: { cert: "${app.cert}", key: "${app.key}" }`, `backends: [${echo.address}]`]);
  await guard(once(secure, 'secureConnect'), 10_000, 'the handshake');
  t.ok(secure.authorized, 'verified against the test CA');
  t.match(secure.getPeerX509Certificate()?.subjectAltName, 'DNS:app.example.com');
  t.equal(secure.alpnProtocol, false, 'no ALPN asked, none chosen');
  const echoed = readAll(secure);
  secure.end('plain text through the proxy');
  t.equal(await echoed, 'plain text through the proxy', 'the echo backend saw (and returned) the plaintext');
  const log = await host.record();
  t.match(log, { outcome: 'ok', backend: echo.address, sni: 'app.example.com', route: 'default' });
  t.ok(log.bytesFromClient > 'plain text through the proxy'.length, `bytesFromClient counts the encrypted bytes (${log.bytesFromClient})`);
});

t.test('ALPN: the route offers its own list; the client gets the protocol both support', async (t) => {
  const { host, secure } = await through(t, [`tls: { cert: "${app.cert}", key: "${app.key}", alpn: [h2, http/1.1] }`, `backends: [${echo.address}]`], {
    ALPNProtocols: ['h2', 'http/1.1'],
  });
  await guard(once(secure, 'secureConnect'), 10_000, 'the handshake');
  t.equal(secure.alpnProtocol, 'h2');
  secure.end();
  await host.record();
});

t.test('an RSA and an ECDSA certificate side by side: each client gets the one it supports', async (t) => {
  const rsa = await leafFiles('app-rsa', ['app.example.com'], 'rsa');
  const ecdsa = await leafFiles('app-ecdsa', ['app.example.com'], 'ecdsa');
  const route = ['tls:', `  - { cert: "${rsa.cert}", key: "${rsa.key}" }`, `  - { cert: "${ecdsa.cert}", key: "${ecdsa.key}" }`, `backends: [${echo.address}]`];
  const keyTypeFor = async (sigalgs: string): Promise<string | undefined> => {
    const { secure } = await through(t, route, { sigalgs, maxVersion: 'TLSv1.2' });
    await guard(once(secure, 'secureConnect'), 10_000, `the handshake (${sigalgs})`);
    const type = new X509Certificate(secure.getPeerX509Certificate()!.raw).publicKey.asymmetricKeyType;
    secure.destroy();
    return type;
  };
  t.equal(await keyTypeFor('RSA-PSS+SHA256:RSA+SHA256'), 'rsa', 'a client that only signs with RSA');
  t.equal(await keyTypeFor('ECDSA+SHA256'), 'ec', 'a client that only takes ECDSA');
});

t.test('a failed handshake ends as tls_handshake_failed with the TLS reason, counted for the route; no backend is dialled', async (t) => {
  const before = echo.accepted;
  const { host, secure } = await through(t, [`tls: { cert: "${app.cert}", key: "${app.key}" }`, `backends: [${echo.address}]`], {
    maxVersion: 'TLSv1.2',
    ciphers: 'AES128-SHA', // RSA key exchange: the ECDSA certificate cannot serve it
  });
  await proxyClosed(secure);
  const log = await host.record();
  t.match(log, { outcome: 'tls_handshake_failed', reason: /^ERR_SSL_/, backend: null, attempts: 0 });
  t.same(host.observer.handshakeFailures, [{ listener: 'unit', route: 'default', reason: log.reason }]);
  t.equal(echo.accepted, before, 'the backend never saw it');
});

t.test('a client that stops in the middle of the handshake: timeout after clientHelloTimeout', async (t) => {
  const host = await TestConnectionHost.withCertificates(
    [
      'name: unit',
      'listen: 127.0.0.1:0',
      'clientHelloTimeout: 200ms',
      'default:',
      `  tls: { cert: "${app.cert}", key: "${app.key}" }`,
      `  backends: [${echo.address}]`,
    ].join('\n'),
  );
  const peer = await host.connect(t);
  // A real ClientHello, then silence: the proxy answers with its flight and waits for the client's.
  peer.on('data', () => {});
  peer.write(await captureClientHello({ servername: 'app.example.com' }));
  const log = await host.record();
  t.match(log, { outcome: 'tls_handshake_failed', reason: 'timeout' });
  t.same(host.observer.handshakeFailures, [{ listener: 'unit', route: 'default', reason: 'timeout' }]);
});

t.test('backendTls: re-encrypted to a TLS backend that is verified against the given CA and name', async (t) => {
  const { host, secure } = await through(t, [
    `tls: { cert: "${app.cert}", key: "${app.key}" }`,
    `backendTls: { ca: "${caFile}", servername: backend.internal }`,
    `backends: [${tlsBackend.address}]`,
  ]);
  await guard(once(secure, 'secureConnect'), 10_000, 'the handshake');
  const line = new Promise<string>((resolve) => {
    let text = '';
    secure.setEncoding('utf8');
    secure.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
    });
  });
  const identity = JSON.parse(await guard(line, 10_000, 'the backend’s identity line')) as { backend: string; sni: string };
  t.same(identity, { backend: 'tls-backend', sni: 'backend.internal', alpn: null }, 'the backend’s own TLS session, with the configured server name');
  secure.end();
  t.match(await host.record(), { outcome: 'ok', backend: tlsBackend.address });
});

t.test('backendTls: a backend whose certificate does not verify is not used', async (t) => {
  const { host, secure } = await through(t, [
    `tls: { cert: "${app.cert}", key: "${app.key}" }`,
    `backendTls: { ca: "${otherCaFile}", servername: backend.internal }`,
    `backends: [${tlsBackend.address}]`,
  ]);
  await guard(once(secure, 'secureConnect'), 10_000, 'the handshake with the proxy');
  await proxyClosed(secure);
  t.match(await host.record(), { outcome: 'backend_unreachable', reason: /CERT|SIGNATURE|ISSUER/ });
  t.match(host.observer.connectFailures, [new RegExp(`^${tlsBackend.address} `)]);
});

t.test('tls: internal: a leaf from the local CA for the name asked, trusted by a client that trusts only that CA', async (t) => {
  const stateDirectory = join(directory, 'state');
  const localCa = await LocalCertificateAuthority.open(stateDirectory);
  const host = await TestConnectionHost.withCertificates(
    ['name: unit', 'listen: 127.0.0.1:0', 'routes:', '  - hostnames: ["*.preview.localhost"]', '    tls: internal', `    backends: [${echo.address}]`].join(
      '\n',
    ),
    localCa,
  );
  for (const name of ['a.preview.localhost', 'b.c.preview.localhost']) {
    const peer = await host.connect(t);
    const secure = tls.connect({ socket: peer, servername: name, ca: localCa.certificatePem });
    secure.on('error', () => {});
    await guard(once(secure, 'secureConnect'), 10_000, `the handshake for ${name}`);
    t.ok(secure.authorized, `${name}: verified against the local CA only`);
    t.equal(secure.getPeerX509Certificate()?.subjectAltName, `DNS:${name}`, `${name}: a leaf for exactly that name`);
    const echoed = readAll(secure);
    secure.end('hello');
    t.equal(await echoed, 'hello');
  }
});
