// Terminating routes beside passthrough routes on one port, through the CLI,
// with real clients: which certificate each name gets (curl, openssl
// s_client, Node), a certificate renewed on disk while connections run, and a
// broken pair refused with the old one kept.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { startHttpBackend, startHttpsBackend, startEchoBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { runProgram, which } from '../helpers/programs.js';
import { type LogLine, startProxy } from '../helpers/proxy-process.js';
import { guard } from '../helpers/wait.js';

const GUARD_MS = 15_000;
const directory = await mkdtemp(join(tmpdir(), 'sni-terminate-e2e-'));
t.teardown(() => rm(directory, { recursive: true, force: true }));

const ca = await createCertificateAuthority();
const caFile = join(directory, 'ca.pem');
await writeFile(caFile, ca.cert);

/** Writes a fresh leaf for `names` over `cert`/`key` atomically (temp file, then rename, as certbot and cert-manager do). */
async function writeLeaf(commonName: string, names: string[], cert: string, key: string): Promise<X509Certificate> {
  const leaf = await ca.issue(commonName, names);
  await writeFile(`${key}.tmp`, leaf.key);
  await writeFile(`${cert}.tmp`, leaf.cert);
  await rename(`${key}.tmp`, key);
  await rename(`${cert}.tmp`, cert);
  return new X509Certificate(leaf.cert);
}

const certFile = join(directory, 'legacy.pem');
const keyFile = join(directory, 'legacy.key');
const first = await writeLeaf('legacy-1', ['legacy.example.com', 'echo.example.com'], certFile, keyFile);

const passthrough = await startHttpsBackend(ca, 'app-backend', ['app.example.com']);
const plain = await startHttpBackend('plain-backend');
const echo = await startEchoBackend();
t.teardown(() => Promise.all([passthrough.close(), plain.close(), echo.close()]));

const proxy = await startProxy({
  admin: { listen: '127.0.0.1:0' },
  listeners: [
    {
      name: 'public',
      listen: '127.0.0.1:0',
      routes: [
        { hostnames: ['app.example.com'], backends: [passthrough.address] },
        { hostnames: ['legacy.example.com'], tls: { cert: certFile, key: keyFile }, backends: [plain.address] },
        { hostnames: ['echo.example.com'], tls: { cert: certFile, key: keyFile }, backends: [echo.address] },
      ],
    },
  ],
});
t.teardown(() => proxy.stop('SIGKILL'));
const port = proxy.port('public');

/** The certificate the proxy presents for `servername`, from a verified Node TLS client. */
async function presented(servername: string): Promise<X509Certificate> {
  const socket = tls.connect({ port, host: '127.0.0.1', servername, ca: ca.cert });
  await guard(once(socket, 'secureConnect'), GUARD_MS, `a TLS session for ${servername}`);
  const certificate = socket.getPeerX509Certificate()!;
  socket.destroy();
  return certificate;
}

const curl = await which('curl');
const openssl = await which('openssl');

t.test(
  'one port: the passthrough name gets its backend’s certificate, the terminated one the proxy’s',
  { skip: curl ? false : 'curl is not installed' },
  async (t) => {
    for (const [name, body, subject] of [
      ['app.example.com', 'app-backend', 'CN=app-backend'],
      ['legacy.example.com', 'plain-backend', 'CN=legacy-1'],
    ] as const) {
      const result = await runProgram(curl!, [
        '-sS',
        '-v',
        '--max-time',
        '8',
        '--resolve',
        `${name}:${port}:127.0.0.1`,
        '--cacert',
        caFile,
        `https://${name}:${port}/`,
      ]);
      t.equal(result.code, 0, `curl ${name} exited 0 (${result.stderr.split('\n').slice(-3).join(' ')})`);
      t.equal(name === 'app.example.com' ? result.stdout : (JSON.parse(result.stdout) as { backend: string }).backend, body, `${name} answered by ${body}`);
      t.match(result.stderr, new RegExp(`subject: ${subject}`), `${name}: the certificate of ${subject}`);
    }
  },
);

t.test('openssl s_client verifies the terminated name against the proxy’s certificate', { skip: openssl ? false : 'openssl is not installed' }, async (t) => {
  const result = await runProgram(
    openssl!,
    ['s_client', '-ign_eof', '-connect', `127.0.0.1:${port}`, '-servername', 'legacy.example.com', '-verify_hostname', 'legacy.example.com', '-CAfile', caFile],
    'GET / HTTP/1.0\r\n\r\n',
  );
  t.match(result.stdout, /Verify return code: 0 \(ok\)/);
  t.match(`${result.stdout}${result.stderr}`, /subject=\s*CN\s*=\s*legacy-1/);
  t.match(result.stdout, /plain-backend/, 'and the plain backend answered through it');
});

t.test('a certificate renewed on disk: new connections get it, an open one goes on', async (t) => {
  const open = tls.connect({ port, host: '127.0.0.1', servername: 'echo.example.com', ca: ca.cert });
  await guard(once(open, 'secureConnect'), GUARD_MS, 'the open connection');
  t.equal(open.getPeerX509Certificate()!.serialNumber, first.serialNumber, 'it has the first certificate');
  const generation = Number(proxy.logs.find((line) => line.msg === 'ready')?.generation);

  const renewed = await writeLeaf('legacy-2', ['legacy.example.com', 'echo.example.com'], certFile, keyFile);
  await proxy.waitForLog((line) => line.msg === 'config reloaded' && Number(line.generation) > generation, GUARD_MS);
  t.equal((await presented('legacy.example.com')).serialNumber, renewed.serialNumber, 'a new connection gets the renewed certificate');

  const echoed = new Promise<string>((resolve) => open.once('data', (chunk: Buffer) => resolve(String(chunk))));
  open.write('still here');
  t.equal(await guard(echoed, GUARD_MS, 'an echo on the open connection'), 'still here', 'the connection opened before goes on');
  open.destroy();
});

t.test('a key that does not belong to its certificate: the reload is refused and the running certificate stays', async (t) => {
  const running = await presented('legacy.example.com');
  const stranger = await ca.issue('stranger', ['legacy.example.com']);
  const refusedBefore = proxy.logs.filter((line: LogLine) => line.msg.startsWith('config reload refused')).length;
  await writeFile(keyFile, stranger.key);
  const refusal = await proxy.waitForLog(
    (line) =>
      line.msg.startsWith('config reload refused') &&
      proxy.logs.filter((other) => other.msg.startsWith('config reload refused')).indexOf(line) >= refusedBefore,
    GUARD_MS,
  );
  t.match(refusal, { code: 'SNIP_CONFIG_CERTIFICATE' });
  t.match(String(refusal.error), /proxy\.yaml:\d+:\d+: .*legacy\.pem \+ .*legacy\.key: the key does not belong to the certificate/);
  t.equal((await presented('legacy.example.com')).serialNumber, running.serialNumber, 'new connections still get the certificate that ran');
});

t.test('a failed handshake is logged with the route and reason, and counted', async (t) => {
  const socket = tls.connect({ port, host: '127.0.0.1', servername: 'legacy.example.com', maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA' });
  socket.on('error', () => {});
  await guard(new Promise((resolve) => socket.once('close', resolve)), GUARD_MS, 'the client closed');
  const line = await proxy.waitForLog((entry) => entry.msg === 'connection closed' && entry.outcome === 'tls_handshake_failed', GUARD_MS);
  t.match(line, { route: 'legacy.example.com', sni: 'legacy.example.com', reason: /^ERR_SSL_/ });
  const admin = String(proxy.logs.find((entry) => entry.msg === 'ready')?.admin);
  const metrics = await (await fetch(`http://${admin}/metrics`)).text();
  t.match(metrics, new RegExp(`sni_passthrough_tls_handshake_failures_total\\{listener="public",route="legacy.example.com",reason="${line.reason}"\\} 1`));
});

t.test(
  'tls: internal through the CLI: the CA is created in --state-dir and curl trusting only it reaches the plain backend',
  { skip: curl ? false : 'curl is not installed' },
  async (t) => {
    const stateDirectory = join(directory, 'state');
    const local = await startProxy(
      { listeners: [{ name: 'local', listen: '127.0.0.1:0', routes: [{ hostnames: ['*.web.localhost'], tls: 'internal', backends: [plain.address] }] }] },
      { args: ['--state-dir', stateDirectory] },
    );
    t.teardown(() => local.stop('SIGKILL'));
    const created = await local.waitForLog((line) => line.msg.startsWith('local CA created'), GUARD_MS);
    t.equal(created.directory, stateDirectory, 'the log says where the CA was created');
    const localPort = local.port('local');
    const result = await runProgram(curl!, [
      '-sS',
      '--max-time',
      '8',
      '--resolve',
      `shop.web.localhost:${localPort}:127.0.0.1`,
      '--cacert',
      join(stateDirectory, 'ca.pem'),
      `https://shop.web.localhost:${localPort}/`,
    ]);
    t.equal(result.code, 0, `curl exited 0 (${result.stderr.trim()})`);
    t.match(JSON.parse(result.stdout), { backend: 'plain-backend', host: `shop.web.localhost:${localPort}` }, 'the plain backend got the request as sent');
  },
);
