// Headless Chromium loads a page over HTTP/3 through the proxy's QUIC
// passthrough (issue 14), from an ngtcp2 gtlsserver backend whose key it
// trusts by hash. Skips when chromium or gtlsserver is absent.
import t from 'tap';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { startQuicServer } from '../helpers/ngtcp2.js';
import { runProgram, which } from '../helpers/programs.js';
import { startProxy } from '../helpers/proxy-process.js';

/** Hang guards only. */
const GUARD_MS = 30_000;

const gtlsserver = await which('gtlsserver');

const chromium = (await which('chromium')) ?? (await which('chromium-browser'));
const skip = gtlsserver === null ? 'gtlsserver is not installed (Debian package ngtcp2-server)' : chromium === null ? 'chromium is not installed' : false;

t.test('headless Chromium loads a page over HTTP/3 through the proxy, from the backend its name routes to', { skip }, async (t) => {
  if (gtlsserver === null || chromium === null) return;
  const ca = await createCertificateAuthority();
  const root = await mkdtemp(join(tmpdir(), 'sni-passthrough-quic-chromium-'));
  const htdocs = join(root, 'htdocs');
  await mkdir(htdocs);
  await writeFile(join(htdocs, 'index.html'), '<html><body>over HTTP/3 from gtlsserver</body></html>\n');
  const leaf = await ca.issue('quic-backend-chromium', ['app.localhost']);
  const server = await startQuicServer(gtlsserver, leaf, htdocs);
  t.teardown(() => server.stop());
  const proxy = await startProxy({
    listeners: [
      { name: 'h3', listen: '127.0.0.1:0', quic: true, idleTimeout: '2s', routes: [{ hostnames: ['app.localhost'], backends: [`127.0.0.1:${server.port}`] }] },
    ],
  });
  t.teardown(() => proxy.stop('SIGKILL'));
  await proxy.waitForLog((line) => line.msg === 'listening' && line.transport === 'quic');
  const port = proxy.port('h3');
  // Chromium trusts the backend's key by its hash (no CA in a trust store needed), and must use QUIC for this origin.
  const spki = new X509Certificate(leaf.cert).publicKey.export({ type: 'spki', format: 'der' });
  const result = await runProgram(
    chromium,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${join(root, 'profile')}`,
      '--enable-quic',
      `--origin-to-force-quic-on=app.localhost:${port}`,
      // *.localhost may resolve to ::1 first; the proxy listens on 127.0.0.1.
      '--host-resolver-rules=MAP app.localhost 127.0.0.1',
      `--ignore-certificate-errors-spki-list=${createHash('sha256').update(spki).digest('base64')}`,
      '--dump-dom',
      `https://app.localhost:${port}/index.html`,
    ],
    '',
    90_000,
  );
  t.match(result.stdout, /over HTTP\/3 from gtlsserver/, 'the page, from the backend');
  const line = await proxy.waitForLog((entry) => entry.msg === 'connection closed' && entry.transport === 'quic', GUARD_MS);
  t.match(line, { sni: 'app.localhost', alpn: ['h3'], route: 'app.localhost', backend: `127.0.0.1:${server.port}`, outcome: 'ok' });
  t.equal(proxy.connectionLogs().filter((entry) => entry.transport !== 'quic').length, 0, 'nothing went over TCP');
});
