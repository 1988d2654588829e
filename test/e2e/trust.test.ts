// `sni-passthrough trust` through the compiled CLI, against a temporary NSS
// database and a temporary OpenSSL CA directory only: never the machine's own
// stores (every run names --ca-dir, so the system store is not touched).
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCaServer } from '../helpers/local-ca-server.js';
import { runProgram, which } from '../helpers/programs.js';
import { runCli } from '../helpers/proxy-process.js';
import { CA_CERTIFICATE_FILE, LocalCertificateAuthority } from '../../lib/tls/local-ca.js';
import { keyIdentifier } from '../../lib/tls/x509.js';

const certutil = await which('certutil');
const curl = await which('curl');
const openssl = await which('openssl');
const root = await mkdtemp(join(tmpdir(), 'sni-passthrough-trust-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
let serial = 0;
const freshDir = (name: string): string => join(root, `${name}-${++serial}`);

/** An empty NSS database, as Chromium and Firefox create theirs. */
async function createNssDatabase(directory: string): Promise<void> {
  await mkdir(directory, { recursive: true });
  const result = await runProgram(certutil!, ['-N', '-d', `sql:${directory}`, '--empty-password']);
  if (result.code !== 0) throw new Error(`certutil -N failed: ${result.stderr}`);
}

/** The nicknames and trust flags certutil lists for a database. */
async function nssEntries(directory: string): Promise<string> {
  const result = await runProgram(certutil!, ['-L', '-d', `sql:${directory}`]);
  if (result.code !== 0) throw new Error(`certutil -L failed: ${result.stderr}`);
  return result.stdout;
}

/** What the CLI names the CA: its nickname and the file stem, from its key id. */
function caNames(ca: { certificate: X509Certificate }): { nickname: string; stem: string } {
  const id = keyIdentifier(ca.certificate.publicKey).subarray(0, 4).toString('hex');
  return { nickname: /^CN=(.*)$/m.exec(ca.certificate.subject)![1]!, stem: `sni-passthrough-local-ca-${id}` };
}

/** The CA certificate from a file (one another user's CA directory holds, readable to all). */
async function readCa(file: string): Promise<{ certificate: X509Certificate }> {
  return { certificate: new X509Certificate(await readFile(file)) };
}

/** `sni-passthrough trust ARGS` with HOME set to `home` (an empty one by default), so no NSS database of this machine is found. */
async function trust(args: string[], home?: string, launcher?: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const homeDir = home ?? freshDir('home');
  await mkdir(homeDir, { recursive: true });
  return runCli(['trust', ...args], { env: { HOME: homeDir, SUDO_USER: '' }, launcher });
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

t.test(
  'trust adds the CA to an NSS database and a CA directory; --uninstall takes exactly that away',
  { skip: certutil ? false : 'certutil (libnss3-tools) is not installed' },
  async (t) => {
    const stateDir = freshDir('state');
    const caDir = freshDir('ca-dir');
    const nssDb = freshDir('nssdb');
    await createNssDatabase(nssDb);
    await mkdir(caDir);
    await writeFile(join(caDir, 'unrelated.pem'), 'someone else\n');

    const added = await trust(['--state-dir', stateDir, '--ca-dir', caDir, '--nss-db', nssDb]);
    t.equal(added.code, 0, added.stderr);
    t.equal(added.stderr, '');
    const ca = await LocalCertificateAuthority.open(stateDir);
    t.notOk(ca.created, 'trust created the CA in the state directory');
    const { nickname, stem } = caNames(ca);
    t.match(added.stdout, `local CA: ${join(stateDir, CA_CERTIFICATE_FILE)} (created now)`);
    t.match(added.stdout, `SHA-256 ${ca.certificate.fingerprint256}`);
    t.match(added.stdout, new RegExp(`CA directory ${caDir}: added ${stem}\\.pem, [0-9a-f]{8}\\.0`));
    t.match(added.stdout, `NSS database ${nssDb}: added "${nickname}"`);
    t.match(added.stdout, `Undo: sni-passthrough trust --uninstall --state-dir ${stateDir} --ca-dir ${caDir} --nss-db ${nssDb}`);
    t.match(await nssEntries(nssDb), new RegExp(`${nickname.replace(/[()]/g, '\\$&')}\\s+C,,`), 'certutil lists it, trusted for TLS servers');
    t.notOk(await exists(`/usr/local/share/ca-certificates/${stem}.crt`), 'the system store was not touched');

    const again = await trust(['--state-dir', stateDir, '--ca-dir', caDir, '--nss-db', nssDb]);
    t.equal(again.code, 0, again.stderr);
    t.match(again.stdout, `CA directory ${caDir}: already has the CA`);
    t.match(again.stdout, `NSS database ${nssDb}: already has "${nickname}"`);
    t.notMatch(again.stdout, 'created now');

    const removed = await trust(['--uninstall', '--state-dir', stateDir, '--ca-dir', caDir, '--nss-db', nssDb]);
    t.equal(removed.code, 0, removed.stderr);
    t.match(removed.stdout, new RegExp(`CA directory ${caDir}: removed [0-9a-f]{8}\\.0, ${stem}\\.pem`));
    t.match(removed.stdout, `NSS database ${nssDb}: removed "${nickname}"`);
    t.notMatch(await nssEntries(nssDb), 'sni-passthrough');
    t.same(await readdir(caDir), ['unrelated.pem'], "only trust's own files went");
    t.ok(await exists(join(stateDir, CA_CERTIFICATE_FILE)), 'the CA itself stays');

    const twice = await trust(['--uninstall', '--state-dir', stateDir, '--ca-dir', caDir, '--nss-db', nssDb]);
    t.equal(twice.code, 0, twice.stderr);
    t.match(twice.stdout, `NSS database ${nssDb}: does not have "${nickname}"`);
  },
);

t.test(
  'clients reading the CA directory trust the leaves after trust and not after --uninstall',
  { skip: openssl || curl ? false : 'neither openssl nor curl is installed' },
  async (t) => {
    const stateDir = freshDir('state');
    const caDir = freshDir('ca-dir');
    const ca = await LocalCertificateAuthority.open(stateDir);
    const server = await startLocalCaServer(ca);
    t.teardown(() => server.close());
    const leafFile = join(root, `leaf-${serial}.pem`);
    await writeFile(leafFile, ca.leafFor(['app.localhost']).cert.split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
    const url = `https://app.localhost:${server.port}/`;
    const clients = async (): Promise<{ openssl: number | null; curl: number | null }> => ({
      openssl: openssl ? (await runProgram(openssl, ['verify', '-purpose', 'sslserver', '-CApath', caDir, leafFile])).code : null,
      curl: curl
        ? (
            await runProgram(curl, [
              '-sS',
              '-o',
              '/dev/null',
              '--max-time',
              '10',
              '--resolve',
              `app.localhost:${server.port}:127.0.0.1`,
              '--capath',
              caDir,
              url,
            ])
          ).code
        : null,
    });
    const added = await trust(['--state-dir', stateDir, '--ca-dir', caDir]);
    t.equal(added.code, 0, added.stderr);
    const trusted = await clients();
    if (openssl) t.equal(trusted.openssl, 0, 'openssl verify -CApath: OK');
    if (curl) t.equal(trusted.curl, 0, 'curl --capath loads the page');
    const removed = await trust(['--uninstall', '--state-dir', stateDir, '--ca-dir', caDir]);
    t.equal(removed.code, 0, removed.stderr);
    const untrusted = await clients();
    if (openssl) t.not(untrusted.openssl, 0, 'openssl verify -CApath fails');
    if (curl) t.equal(untrusted.curl, 60, 'curl --capath refuses the certificate (exit 60)');
  },
);

t.test(
  "without --nss-db, trust finds Chromium's database and Firefox profiles under HOME",
  { skip: certutil ? false : 'certutil (libnss3-tools) is not installed' },
  async (t) => {
    const home = freshDir('home');
    await createNssDatabase(join(home, '.pki', 'nssdb'));
    await createNssDatabase(join(home, '.mozilla', 'firefox', 'abcd1234.default-release'));
    await mkdir(join(home, '.mozilla', 'firefox', 'Crash Reports'), { recursive: true });
    const stateDir = freshDir('state');
    const caDir = freshDir('ca-dir');
    const added = await trust(['--state-dir', stateDir, '--ca-dir', caDir], home);
    t.equal(added.code, 0, added.stderr);
    const { nickname } = caNames(await LocalCertificateAuthority.open(stateDir));
    t.match(added.stdout, `NSS database ${join(home, '.pki', 'nssdb')} (Chromium): added "${nickname}"`);
    t.match(
      added.stdout,
      `NSS database ${join(home, '.mozilla', 'firefox', 'abcd1234.default-release')} (Firefox profile abcd1234.default-release): added "${nickname}"`,
    );
    t.notMatch(added.stdout, 'Crash Reports', 'a folder without cert9.db is no profile');
    t.match(added.stdout, `Undo: sni-passthrough trust --uninstall --state-dir ${stateDir} --ca-dir ${caDir}\n`);
    for (const db of [join(home, '.pki', 'nssdb'), join(home, '.mozilla', 'firefox', 'abcd1234.default-release')]) t.match(await nssEntries(db), nickname);
    const removed = await trust(['--uninstall', '--state-dir', stateDir, '--ca-dir', caDir], home);
    t.equal(removed.code, 0, removed.stderr);
    for (const db of [join(home, '.pki', 'nssdb'), join(home, '.mozilla', 'firefox', 'abcd1234.default-release')])
      t.notMatch(await nssEntries(db), 'sni-passthrough');

    const none = await trust(['--state-dir', stateDir, '--ca-dir', caDir]);
    t.equal(none.code, 0, none.stderr);
    t.match(none.stdout, /NSS: no Chromium or Firefox database under \S+ \(a browser creates its own on first start: run trust again after\)/);
  },
);

t.test('a store that fails is one line on stderr and exit 1; the others are still done', async (t) => {
  const stateDir = freshDir('state');
  const caDir = freshDir('ca-dir');
  const notADatabase = freshDir('not-a-db');
  await mkdir(notADatabase);
  const result = await trust(['--state-dir', stateDir, '--ca-dir', caDir, '--nss-db', notADatabase]);
  t.equal(result.code, 1);
  t.equal(
    result.stderr,
    `sni-passthrough: trust: NSS database ${notADatabase}: no cert9.db there (create one with certutil -N -d sql:${notADatabase} --empty-password)\n`,
  );
  t.same(await readdir(notADatabase), [], 'no database was made up there');
  t.match(result.stdout, `CA directory ${caDir}: added`);
});

t.test('a state directory others can open is refused with one line, exit 1', async (t) => {
  const stateDir = freshDir('state');
  await mkdir(stateDir, { mode: 0o755 });
  const result = await trust(['--state-dir', stateDir, '--ca-dir', freshDir('ca-dir')]);
  t.equal(result.code, 1);
  t.equal(result.stdout, '');
  t.match(result.stderr, new RegExp(`^sni-passthrough: trust: state directory ${stateDir} is open to group or others \\(mode 755\\)[^\\n]*\\n$`));
  t.notOk(await exists(join(stateDir, CA_CERTIFICATE_FILE)));
});

t.test('--uninstall without a CA has nothing to remove and creates nothing', async (t) => {
  const stateDir = freshDir('state');
  const result = await trust(['--uninstall', '--state-dir', stateDir, '--ca-dir', freshDir('ca-dir')]);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, `no local CA in ${stateDir}: nothing to remove\n`);
  t.notOk(await exists(stateDir));
});

const setpriv = await which('setpriv');
const NOBODY = 65534;

t.test(
  'as a user other than root, the system store is left alone and trust prints the sudo command for it',
  { skip: process.getuid?.() === 0 && setpriv ? false : 'needs root and setpriv to run trust as another user' },
  async (t) => {
    const home = freshDir('home');
    await mkdir(home, { mode: 0o700 });
    await chown(home, NOBODY, NOBODY);
    // mkdtemp made the test's folder 0700 for root: let nobody through to its own home.
    await chown(root, NOBODY, NOBODY);
    t.teardown(() => chown(root, 0, 0));
    const stateDir = join(home, 'state');
    // A clean environment: tap's coverage hooks, inherited through it, could not write their files as nobody.
    const asNobody = ['env', '-i', `PATH=${process.env.PATH}`, `HOME=${home}`, setpriv!, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
    const result = await trust(['--state-dir', stateDir], home, asNobody);
    t.equal(result.code, 1, 'the system store was asked for and not done');
    const { stem } = caNames(await readCa(join(stateDir, CA_CERTIFICATE_FILE)));
    t.equal(
      result.stderr,
      `sni-passthrough: trust: system store: not changed, it needs root; run: sudo install -m 644 ${join(stateDir, CA_CERTIFICATE_FILE)} /usr/local/share/ca-certificates/${stem}.crt && sudo update-ca-certificates\n`,
    );
    t.match(result.stdout, `local CA: ${join(stateDir, CA_CERTIFICATE_FILE)} (created now)`);
    t.notOk(await exists(`/usr/local/share/ca-certificates/${stem}.crt`));
    t.equal((await stat(stateDir)).uid, NOBODY, "the CA is that user's");
    const removed = await trust(['--uninstall', '--state-dir', stateDir], home, asNobody);
    t.equal(removed.code, 0, 'nothing of it is in the system store: nothing to do');
    t.match(removed.stdout, `system store: does not have /usr/local/share/ca-certificates/${stem}.crt`);
  },
);
