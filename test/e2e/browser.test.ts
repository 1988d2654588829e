// A real browser through the proxy: headless Chromium, trusting only the local
// CA (added to its NSS database by `trust`), loads a page passed through to a
// backend with its own certificate and a page the proxy terminates itself for
// a plain-HTTP backend, both on one port.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalCertificateAuthority } from '../../lib/tls/local-ca.js';
import { startHttpBackend } from '../helpers/backends.js';
import { greeting, startLocalCaServer } from '../helpers/local-ca-server.js';
import { chromiumDumpDom, runProgram, which } from '../helpers/programs.js';
import { runCli, startProxy } from '../helpers/proxy-process.js';

const chromium = (await which('chromium')) ?? (await which('chromium-browser'));
const certutil = await which('certutil');
const skip = !chromium ? 'chromium is not installed' : !certutil ? 'certutil (libnss3-tools) is not installed' : false;
/** A guard against a browser that hangs, not a measurement. */
const BROWSER_GUARD_MS = 90_000;

t.test('Chromium: a passed-through page and a terminated page on one port', { skip }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'sni-passthrough-browser-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const home = join(root, 'home');
  const nssDb = join(home, '.pki', 'nssdb');
  await mkdir(nssDb, { recursive: true });
  t.equal((await runProgram(certutil!, ['-N', '-d', `sql:${nssDb}`, '--empty-password'])).code, 0, 'an empty NSS database');
  const stateDir = join(root, 'state');
  const trusted = await runCli(['trust', '--state-dir', stateDir, '--ca-dir', join(root, 'ca-dir'), '--nss-db', nssDb], { env: { HOME: home } });
  t.equal(trusted.code, 0, `trust added the local CA (${trusted.stderr.trim()})`);

  // The passthrough backend holds its own certificate (from the same CA); the plain one has none.
  const secure = await startLocalCaServer(await LocalCertificateAuthority.open(stateDir));
  const plain = await startHttpBackend('plain-dev-server');
  t.teardown(() => Promise.all([secure.close(), plain.close()]));
  const proxy = await startProxy(
    {
      listeners: [
        {
          name: 'local',
          listen: '127.0.0.1:0',
          routes: [
            { hostnames: ['app.localhost'], backends: [`127.0.0.1:${secure.port}`] },
            { hostnames: ['plain.localhost'], tls: 'internal', backends: [plain.address] },
          ],
        },
      ],
    },
    { args: ['--state-dir', stateDir] },
  );
  t.teardown(() => proxy.stop('SIGKILL'));
  const port = proxy.port('local');

  let profile = 0;
  const load = (url: string) => chromiumDumpDom(chromium!, home, join(root, `profile-${++profile}`), url, BROWSER_GUARD_MS);
  const passed = await load(`https://app.localhost:${port}/`);
  t.match(passed.stdout, greeting(`app.localhost:${port}`), 'the passthrough page, with the backend’s own certificate');
  t.ok(secure.serverNames.includes('app.localhost'), 'the backend did the handshake (it saw the server name)');
  const terminated = await load(`https://plain.localhost:${port}/`);
  t.match(terminated.stdout, /plain-dev-server/, 'the terminated page, from the plain-HTTP backend');
  const lines = proxy.connectionLogs();
  t.ok(
    lines.some((line) => line.sni === 'plain.localhost' && line.outcome === 'ok'),
    'the proxy logged the terminated connection as ok',
  );
});
