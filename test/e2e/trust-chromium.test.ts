// A real browser: headless Chromium, with HOME in a temp folder whose
// ~/.pki/nssdb got the local CA through `sni-passthrough trust`, loads an
// https://*.localhost page served with a leaf from that CA; before trust and
// after --uninstall it refuses the same page.
import t from 'tap';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { greeting, startLocalCaServer } from '../helpers/local-ca-server.js';
import { chromiumDumpDom, runProgram, which } from '../helpers/programs.js';
import { runCli } from '../helpers/proxy-process.js';
import { LocalCertificateAuthority } from '../../lib/tls/local-ca.js';

const chromium = (await which('chromium')) ?? (await which('chromium-browser'));
const certutil = await which('certutil');
const skip = !chromium ? 'chromium is not installed' : !certutil ? 'certutil (libnss3-tools) is not installed' : false;
/** A guard against a browser that hangs, not a measurement. */
const BROWSER_GUARD_MS = 90_000;

t.test('Chromium trusts the local CA exactly while trust has it in its NSS database', { skip }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'sni-passthrough-chromium-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const home = join(root, 'home');
  const nssDb = join(home, '.pki', 'nssdb');
  await mkdir(nssDb, { recursive: true });
  const created = await runProgram(certutil!, ['-N', '-d', `sql:${nssDb}`, '--empty-password']);
  t.equal(created.code, 0, `an empty NSS database, as Chromium makes on first start (${created.stderr.trim()})`);
  const stateDir = join(root, 'state');
  const server = await startLocalCaServer(await LocalCertificateAuthority.open(stateDir));
  t.teardown(() => server.close());
  // *.localhost resolves to loopback inside Chromium itself (RFC 6761): no hosts file, no resolver flags.
  const url = `https://app.localhost:${server.port}/`;
  let profile = 0;
  const load = () => chromiumDumpDom(chromium!, home, join(root, `profile-${++profile}`), url, BROWSER_GUARD_MS);
  const cli = (args: string[]) => runCli(['trust', '--state-dir', stateDir, '--ca-dir', join(root, 'ca-dir'), ...args], { env: { HOME: home } });

  const before = await load();
  t.notMatch(before.stdout, greeting(`app.localhost:${server.port}`), 'before trust the page does not load');

  const added = await cli([]);
  t.equal(added.code, 0, added.stderr);
  t.match(added.stdout, `NSS database ${nssDb} (Chromium): added`);
  const trusted = await load();
  t.match(trusted.stdout, greeting(`app.localhost:${server.port}`), 'after trust Chromium shows the page');
  t.ok(server.serverNames.includes('app.localhost'), 'Chromium sent the name and got a leaf for it');

  const removed = await cli(['--uninstall']);
  t.equal(removed.code, 0, removed.stderr);
  const after = await load();
  t.notMatch(after.stdout, greeting(`app.localhost:${server.port}`), 'after --uninstall it does not load again');
});
