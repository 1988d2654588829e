// The local CA: its state directory (created 0700, unsafe ones refused), the
// CA created once and loaded after, and leaf certificates issued, cached and
// renewed before they expire.
import t from 'tap';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CA_CERTIFICATE_FILE, CA_KEY_FILE, certificateHostnames, LEAF_RENEW_BEFORE, LocalCertificateAuthority } from '../../lib/tls/local-ca.js';
import { defaultStateDirectory } from '../../lib/tls/state-directory.js';

const root = await mkdtemp(join(tmpdir(), 'sni-passthrough-local-ca-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
let serial = 0;
/** A path under the test's temp folder that does not exist yet. */
const freshPath = (): string => join(root, `state-${++serial}`, 'nested', 'sni-passthrough');

const DAY = 24 * 3600_000;
const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

/** The error `promise` rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

t.test('defaultStateDirectory follows the XDG base directory spec', async (t) => {
  t.equal(defaultStateDirectory({ XDG_DATA_HOME: '/data', HOME: '/home/u' }), '/data/sni-passthrough');
  t.equal(
    defaultStateDirectory({ XDG_DATA_HOME: 'relative/data', HOME: '/home/u' }),
    '/home/u/.local/share/sni-passthrough',
    'a relative XDG_DATA_HOME is ignored',
  );
  t.equal(defaultStateDirectory({ HOME: '/home/u' }), '/home/u/.local/share/sni-passthrough');
});

t.test('the first open creates the directory 0700, the key 0600 and the certificate; later opens load the same CA', async (t) => {
  const directory = freshPath();
  const ca = await LocalCertificateAuthority.open(directory);
  t.ok(ca.created);
  t.equal(await mode(directory), 0o700);
  t.equal(await mode(join(directory, '..')), 0o700, 'missing parents are created private too');
  t.equal(await mode(join(directory, CA_KEY_FILE)), 0o600);
  t.equal(await mode(join(directory, CA_CERTIFICATE_FILE)), 0o644);
  t.equal(await readFile(join(directory, CA_CERTIFICATE_FILE), 'utf8'), ca.certificatePem);
  const keyFile = await readFile(join(directory, CA_KEY_FILE), 'utf8');
  t.match(keyFile, /^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\n/);
  const certificate = new X509Certificate(ca.certificatePem);
  t.ok(certificate.ca);
  t.ok(certificate.checkPrivateKey(createPrivateKey(keyFile)));
  t.match(certificate.subject, /^O=sni-passthrough\nOU=.+@.+\nCN=sni-passthrough local CA [0-9a-f]{8} \(.+\)$/);
  const tenYears = new Date();
  tenYears.setUTCFullYear(tenYears.getUTCFullYear() + 10);
  t.ok(Math.abs(Date.parse(certificate.validTo) - tenYears.getTime()) < DAY, `valid for ten years (until ${certificate.validTo})`);

  const again = await LocalCertificateAuthority.open(directory);
  t.notOk(again.created);
  t.equal(again.certificatePem, ca.certificatePem);
  t.equal(await readFile(join(directory, CA_KEY_FILE), 'utf8'), keyFile, 'the key file is not rewritten');
});

t.test('two opens racing on a new directory end up with one CA', async (t) => {
  const directory = freshPath();
  const opened = await Promise.all([
    LocalCertificateAuthority.open(directory),
    LocalCertificateAuthority.open(directory),
    LocalCertificateAuthority.open(directory),
  ]);
  t.equal(opened.filter((ca) => ca.created).length, 1, 'one created it, the others loaded it');
  t.equal(new Set(opened.map((ca) => ca.certificatePem)).size, 1);
  t.equal(await readFile(join(directory, CA_CERTIFICATE_FILE), 'utf8'), opened[0]!.certificatePem);
});

t.test('a missing or stale ca.pem is rewritten from the key file', async (t) => {
  const directory = freshPath();
  const ca = await LocalCertificateAuthority.open(directory);
  await rm(join(directory, CA_CERTIFICATE_FILE));
  t.equal((await LocalCertificateAuthority.open(directory)).certificatePem, ca.certificatePem);
  t.equal(await readFile(join(directory, CA_CERTIFICATE_FILE), 'utf8'), ca.certificatePem);
  await writeFile(join(directory, CA_CERTIFICATE_FILE), 'not a certificate\n');
  await LocalCertificateAuthority.open(directory);
  t.equal(await readFile(join(directory, CA_CERTIFICATE_FILE), 'utf8'), ca.certificatePem);
});

t.test('a directory or key file others can reach is refused', async (t) => {
  for (const open of [0o755, 0o750, 0o701, 0o770]) {
    const directory = freshPath();
    await mkdir(directory, { recursive: true });
    await chmod(directory, open);
    const error = await rejection(LocalCertificateAuthority.open(directory));
    t.equal(error.code, 'SNIP_STATE_DIR_UNSAFE', `mode ${open.toString(8)}`);
    t.equal(error.name, 'StateDirectoryError');
    t.match(error.message, `state directory ${directory} is open to group or others (mode ${open.toString(8)})`);
    t.notOk(await stat(join(directory, CA_KEY_FILE)).catch(() => null), 'no key was written there');
  }
  const directory = freshPath();
  await LocalCertificateAuthority.open(directory);
  await chmod(join(directory, CA_KEY_FILE), 0o640);
  const error = await rejection(LocalCertificateAuthority.open(directory));
  t.equal(error.code, 'SNIP_STATE_DIR_UNSAFE', 'a group-readable key');
  t.match(error.message, `the CA key ${join(directory, CA_KEY_FILE)} is open to group or others (mode 640): chmod 600`);
});

t.test('a directory owned by another user is refused', { skip: process.getuid?.() === 0 ? false : 'needs root to chown' }, async (t) => {
  const directory = freshPath();
  await mkdir(directory, { recursive: true, mode: 0o700 });
  await chown(directory, 65534, 65534);
  const error = await rejection(LocalCertificateAuthority.open(directory));
  t.equal(error.code, 'SNIP_STATE_DIR_UNSAFE');
  t.match(error.message, /is owned by uid 65534, not by this user \(uid 0\)/);
});

t.test('a path that cannot be a directory is unusable', async (t) => {
  const file = join(root, 'a-file');
  await writeFile(file, '');
  t.equal((await rejection(LocalCertificateAuthority.open(file))).code, 'SNIP_STATE_DIR_UNUSABLE', 'a file');
  t.equal((await rejection(LocalCertificateAuthority.open(join(file, 'below')))).code, 'SNIP_STATE_DIR_UNUSABLE', 'below a file');
});

t.test('a broken CA is refused without showing the key', async (t) => {
  const directory = freshPath();
  await LocalCertificateAuthority.open(directory);
  const keyFile = join(directory, CA_KEY_FILE);
  const original = await readFile(keyFile, 'utf8');
  const keyBody = /-----BEGIN PRIVATE KEY-----\n([\s\S]+?)\n-----END/.exec(original)![1]!;
  const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const otherBody = /-----BEGIN PRIVATE KEY-----\n([\s\S]+?)\n-----END/.exec(otherKey)![1]!;
  const cases: Array<[string, string]> = [
    ['garbage', 'not pem at all\n'],
    ['a key without its certificate', original.slice(0, original.indexOf('-----BEGIN CERTIFICATE'))],
    ['a key of another CA', original.replace(keyBody, otherBody)],
    ['a damaged key', original.replace(keyBody, keyBody.replace(/[A-Za-z]/g, 'A'))],
  ];
  for (const [name, text] of cases) {
    await writeFile(keyFile, text, { mode: 0o600 });
    const error = await rejection(LocalCertificateAuthority.open(directory));
    t.equal(error.code, 'SNIP_CA_INVALID', name);
    t.equal(error.name, 'LocalCaError');
    for (const secret of [keyBody, otherBody]) {
      t.notOk(error.message.includes(secret.slice(0, 40)) || String(error.stack).includes(secret.slice(0, 40)), `${name}: no key material in the error`);
    }
  }
});

t.test('an expired CA is refused with what to do', async (t) => {
  const directory = freshPath();
  const longAgo = new Date(Date.now() - 11 * 365 * DAY);
  await LocalCertificateAuthority.open(directory, longAgo);
  const error = await rejection(LocalCertificateAuthority.open(directory));
  t.equal(error.code, 'SNIP_CA_INVALID');
  t.match(error.message, /expired on .*: move the state directory away, then run `sni-passthrough trust`/);
});

t.test('leafFor', async (t) => {
  const ca = await LocalCertificateAuthority.open(freshPath());
  const caCertificate = new X509Certificate(ca.certificatePem);
  const issuedAt = new Date('2030-03-01T12:00:00Z');

  t.test('a chain of the leaf then the CA, for every name, a week long', async (t) => {
    const issued = ca.leafFor(['App.Localhost', '*.web.localhost', 'bücher.localhost', '[::1]', '127.0.0.1', 'app.localhost.'], issuedAt);
    const [leafPem, caPem] = issued.cert.split(/(?<=-----END CERTIFICATE-----\n)/);
    t.equal(caPem, ca.certificatePem, 'the CA follows the leaf');
    const leaf = new X509Certificate(leafPem!);
    t.ok(leaf.verify(caCertificate.publicKey));
    t.ok(leaf.checkPrivateKey(createPrivateKey(issued.key)));
    t.equal(leaf.subjectAltName, 'DNS:app.localhost, DNS:*.web.localhost, DNS:xn--bcher-kva.localhost, IP Address:0:0:0:0:0:0:0:1, IP Address:127.0.0.1');
    t.equal(new Date(leaf.validFrom).toISOString(), '2030-03-01T11:00:00.000Z', 'an hour back for clocks that run behind');
    t.equal(new Date(leaf.validTo).toISOString(), '2030-03-08T12:00:00.000Z');
    t.same(issued.notAfter, new Date('2030-03-08T12:00:00Z'));
  });

  t.test('the same names, in any order, get the cached certificate until renewal is due', async (t) => {
    const first = ca.leafFor(['one.localhost', 'two.localhost'], issuedAt);
    t.equal(ca.leafFor(['two.localhost', 'one.localhost', 'ONE.localhost'], new Date(issuedAt.getTime() + 3600_000)).cert, first.cert);
    const lastCachedMoment = new Date(first.notAfter.getTime() - LEAF_RENEW_BEFORE - 1000);
    t.equal(ca.leafFor(['one.localhost', 'two.localhost'], lastCachedMoment).cert, first.cert, 'more than the renewal margin left');
    const renewalDue = new Date(first.notAfter.getTime() - LEAF_RENEW_BEFORE);
    const renewed = ca.leafFor(['one.localhost', 'two.localhost'], renewalDue);
    t.not(renewed.cert, first.cert, 'a new certificate once the margin is reached');
    t.not(renewed.key, first.key, 'with a new key');
    t.same(renewed.notAfter, new Date(renewalDue.getTime() + 7 * DAY));
    t.equal(ca.leafFor(['one.localhost', 'two.localhost'], renewalDue).cert, renewed.cert, 'and that one is cached in turn');
    t.not(ca.leafFor(['one.localhost'], issuedAt).cert, first.cert, 'another set of names, another certificate');
  });

  t.test('a clock set back before the cached notBefore gets a new certificate', async (t) => {
    const first = ca.leafFor(['clock.localhost'], issuedAt);
    const earlier = new Date(issuedAt.getTime() - 2 * 3600_000);
    const again = ca.leafFor(['clock.localhost'], earlier);
    t.not(again.cert, first.cert);
    t.equal(Date.parse(new X509Certificate(again.cert).validFrom), earlier.getTime() - 3600_000, 'valid from an hour before that moment');
  });

  t.test('no leaf outlives the CA, and none is issued after it expired', async (t) => {
    const caNotAfter = new Date(caCertificate.validTo);
    const late = ca.leafFor(['late.localhost'], new Date(caNotAfter.getTime() - DAY));
    t.same(late.notAfter, caNotAfter);
    const error = (() => {
      try {
        ca.leafFor(['later.localhost'], new Date(caNotAfter.getTime() + 1000));
      } catch (error) {
        return error as Error & { code?: string };
      }
      return null;
    })();
    t.equal(error?.code, 'SNIP_CA_INVALID');
  });

  t.test('names no certificate can carry are refused with their reason', async (t) => {
    for (const bad of [['*'], [''], ['a..localhost'], ['*.*.localhost'], ['app.*.localhost'], ['-bad-.localhost'], []]) {
      t.throws(() => ca.leafFor(bad), { code: 'SNIP_CERT_HOSTNAME', name: 'CertificateHostnameError' }, JSON.stringify(bad));
    }
    t.same(certificateHostnames(['A.Example.COM', '*.Example.com', '[2001:DB8::1]', 'a.example.com']), ['a.example.com', '*.example.com', '2001:db8::1']);
  });

  t.test('the cache keeps the most recently used 1024 sets', async (t) => {
    const fresh = await LocalCertificateAuthority.open(freshPath());
    const first = fresh.leafFor(['n0.localhost'], issuedAt);
    const kept = fresh.leafFor(['n1.localhost'], issuedAt);
    for (let n = 2; n <= 1024; n++) {
      fresh.leafFor([`n${n}.localhost`], issuedAt);
      if (n === 512) fresh.leafFor(['n1.localhost'], issuedAt); // used again: moves to the back
    }
    t.equal(fresh.leafFor(['n1.localhost'], issuedAt).cert, kept.cert, 'a recently used set stays');
    t.not(fresh.leafFor(['n0.localhost'], issuedAt).cert, first.cert, 'the least recently used set was dropped');
  });
});
