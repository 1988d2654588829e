// Certificates from lib/tls/x509.ts read back by three independent parsers:
// Node's X509Certificate, @peculiar/x509 (each extension's value) and the
// openssl command (strict verification as a TLS server certificate).
import 'reflect-metadata';
import t from 'tap';
import { generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as peculiar from '@peculiar/x509';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { runProgram, which } from '../helpers/programs.js';
import { caCertificate, certificateSubject, ipAddressBytes, keyIdentifier, leafCertificate, opensslSubjectHash } from '../../lib/tls/x509.js';

const openssl = await which('openssl');
const folder = await mkdtemp(join(tmpdir(), 'sni-passthrough-x509-'));
t.teardown(() => rm(folder, { recursive: true, force: true }));

function ecKeys(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

const caKeys = ecKeys();
const notBefore = new Date('2026-01-01T00:00:00Z');
const caDer = caCertificate({
  name: { organization: 'sni-passthrough', organizationalUnit: 'tester@box', commonName: 'sni-passthrough local CA test (box)' },
  ...caKeys,
  notBefore,
  notAfter: new Date('2055-06-01T12:30:45Z'),
});
const ca = new X509Certificate(caDer);
const leafKeys = ecKeys();
const hostnames = ['app.localhost', '*.web.localhost', '127.0.0.1', '::1'];
const leafDer = leafCertificate({
  hostnames,
  publicKey: leafKeys.publicKey,
  issuer: { name: certificateSubject(caDer), ...caKeys },
  notBefore,
  notAfter: new Date('2026-01-08T00:00:00.750Z'),
});
const leaf = new X509Certificate(leafDer);

async function pemFile(name: string, certificate: X509Certificate): Promise<string> {
  const file = join(folder, name);
  await writeFile(file, certificate.toString());
  return file;
}

t.test('the CA certificate: self-signed, CA:true pathLen 0, keyCertSign and cRLSign, its key id', async (t) => {
  t.ok(ca.ca);
  t.equal(ca.subject, 'O=sni-passthrough\nOU=tester@box\nCN=sni-passthrough local CA test (box)');
  t.equal(ca.issuer, ca.subject);
  t.ok(ca.verify(caKeys.publicKey), 'signed by its own key');
  t.ok(ca.checkPrivateKey(caKeys.privateKey));
  t.equal(new Date(ca.validTo).toISOString(), '2055-06-01T12:30:45.000Z', 'GeneralizedTime after 2049');
  const parsed = new peculiar.X509Certificate(caDer);
  const constraints = parsed.getExtension(peculiar.BasicConstraintsExtension)!;
  t.same([constraints.ca, constraints.pathLength, constraints.critical], [true, 0, true]);
  const usage = parsed.getExtension(peculiar.KeyUsagesExtension)!;
  t.same([usage.usages, usage.critical], [peculiar.KeyUsageFlags.keyCertSign | peculiar.KeyUsageFlags.cRLSign, true]);
  const keyId = parsed.getExtension(peculiar.SubjectKeyIdentifierExtension)!.keyId;
  t.equal(keyId, keyIdentifier(caKeys.publicKey).toString('hex'));
  const theirs = await peculiar.SubjectKeyIdentifierExtension.create(await parsed.publicKey.export());
  t.equal(keyId, theirs.keyId, 'the key id is SHA-1 of the key bits, as @peculiar/x509 (and OpenSSL) compute it');
});

t.test('the leaf: names in subjectAltName, serverAuth only, signed by the CA, its validity to the second', async (t) => {
  t.notOk(leaf.ca);
  t.equal(leaf.issuer, ca.subject);
  t.ok(leaf.checkIssued(ca));
  t.ok(leaf.verify(caKeys.publicKey), 'signed by the CA key');
  t.notOk(leaf.verify(leafKeys.publicKey));
  t.equal(leaf.subject, 'O=sni-passthrough\nCN=app.localhost');
  t.equal(leaf.subjectAltName, 'DNS:app.localhost, DNS:*.web.localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  t.equal(leaf.checkHost('app.localhost'), 'app.localhost');
  t.equal(leaf.checkHost('x.web.localhost'), '*.web.localhost', 'the wildcard covers one label');
  t.equal(leaf.checkHost('a.b.web.localhost'), undefined);
  t.equal(leaf.checkHost('other.localhost'), undefined);
  t.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
  t.equal(leaf.checkIP('::1'), '::1');
  t.equal(new Date(leaf.validFrom).toISOString(), '2026-01-01T00:00:00.000Z');
  t.equal(new Date(leaf.validTo).toISOString(), '2026-01-08T00:00:00.000Z');
  t.match(leaf.serialNumber, /^[4-7][0-9A-F]{31}$/, '16 random bytes, positive');
  t.ok(leaf.checkPrivateKey(leafKeys.privateKey));
  const parsed = new peculiar.X509Certificate(leafDer);
  const constraints = parsed.getExtension(peculiar.BasicConstraintsExtension)!;
  t.same([constraints.ca, constraints.critical], [false, true]);
  const usage = parsed.getExtension(peculiar.KeyUsagesExtension)!;
  t.same([usage.usages, usage.critical], [peculiar.KeyUsageFlags.digitalSignature, true]);
  t.same(parsed.getExtension(peculiar.ExtendedKeyUsageExtension)!.usages, [peculiar.ExtendedKeyUsage.serverAuth]);
  t.same(parsed.getExtension(peculiar.SubjectAlternativeNameExtension)!.names.toJSON(), [
    { type: 'dns', value: 'app.localhost' },
    { type: 'dns', value: '*.web.localhost' },
    { type: 'ip', value: '127.0.0.1' },
    { type: 'ip', value: '::1' },
  ]);
  t.equal(parsed.getExtension(peculiar.AuthorityKeyIdentifierExtension)!.keyId, keyIdentifier(caKeys.publicKey).toString('hex'));
});

t.test('a leaf drops the commonName when its first DNS name is too long for one, or it names only addresses', async (t) => {
  const issuer = { name: certificateSubject(caDer), ...caKeys };
  const notAfter = new Date('2026-01-02T00:00:00Z');
  const long = `${'a'.repeat(60)}.localhost`;
  const longLeaf = new X509Certificate(leafCertificate({ hostnames: [long], publicKey: leafKeys.publicKey, issuer, notBefore, notAfter }));
  t.equal(longLeaf.subject, 'O=sni-passthrough');
  t.equal(longLeaf.checkHost(long), long);
  const ipLeaf = new X509Certificate(leafCertificate({ hostnames: ['10.1.2.3'], publicKey: leafKeys.publicKey, issuer, notBefore, notAfter }));
  t.equal(ipLeaf.subject, 'O=sni-passthrough');
  t.equal(ipLeaf.checkIP('10.1.2.3'), '10.1.2.3');
  t.throws(() => leafCertificate({ hostnames: [], publicKey: leafKeys.publicKey, issuer, notBefore, notAfter }), RangeError);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  t.throws(() => leafCertificate({ hostnames: ['a.test'], publicKey: leafKeys.publicKey, issuer: { ...issuer, ...rsa }, notBefore, notAfter }), TypeError);
});

t.test('IP address bytes for iPAddress names', async (t) => {
  const bytes = (address: string): string => ipAddressBytes(address).toString('hex');
  t.equal(bytes('127.0.0.1'), '7f000001');
  t.equal(bytes('::1'), '00000000000000000000000000000001');
  t.equal(bytes('2001:db8::8:1'), '20010db8000000000000000000080001');
  t.equal(bytes('1::'), '00010000000000000000000000000000');
  t.equal(bytes('::'), '00000000000000000000000000000000');
  t.equal(bytes('::ffff:1.2.3.4'), '00000000000000000000ffff01020304');
  t.equal(bytes('fe80::1%eth0'), 'fe800000000000000000000000000001', 'the zone is not part of the address');
  t.equal(bytes('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
  t.throws(() => ipAddressBytes('app.localhost'), RangeError);
});

t.test('openssl verifies the leaf strictly as a TLS server certificate issued by the CA', { skip: openssl ? false : 'openssl not installed' }, async (t) => {
  const caFile = await pemFile('ca.pem', ca);
  const leafFile = await pemFile('leaf.pem', leaf);
  // -attime: the leaf's week lies in the past; check it at a moment inside it.
  const at = String(Date.parse('2026-01-03T00:00:00Z') / 1000);
  const verify = await runProgram(openssl!, ['verify', '-x509_strict', '-purpose', 'sslserver', '-attime', at, '-CAfile', caFile, leafFile]);
  t.equal(verify.code, 0, verify.stderr);
  t.match(verify.stdout, `${leafFile}: OK`);
  const expired = await runProgram(openssl!, [
    'verify',
    '-x509_strict',
    '-purpose',
    'sslserver',
    '-attime',
    String(Date.parse('2026-01-09T00:00:00Z') / 1000),
    '-CAfile',
    caFile,
    leafFile,
  ]);
  t.not(expired.code, 0, 'not after notAfter');
  const text = await runProgram(openssl!, ['x509', '-noout', '-text', '-in', leafFile]);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /Signature Algorithm: ecdsa-with-SHA256/);
  t.match(text.stdout, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  t.match(text.stdout, /X509v3 Key Usage: critical\s+Digital Signature\n/);
  t.match(text.stdout, /X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication\n/);
  const caText = await runProgram(openssl!, ['x509', '-noout', '-text', '-in', caFile]);
  t.match(caText.stdout, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  t.match(caText.stdout, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
  t.match(caText.stdout, /Not After : Jun {2}1 12:30:45 2055 GMT/);
});

t.test('the subject hash is the one `openssl x509 -hash` prints', { skip: openssl ? false : 'openssl not installed' }, async (t) => {
  const oddlySpelled = new X509Certificate(
    caCertificate({
      name: { organization: '  Upper  CASE\tand   spaces ', commonName: 'Ünïcode Name' },
      ...caKeys,
      notBefore,
      notAfter: new Date('2027-01-01T00:00:00Z'),
    }),
  );
  const helperCa = new X509Certificate((await createCertificateAuthority('Test CA, With Comma')).cert);
  for (const [name, certificate] of [
    ['ours', ca],
    ['case, whitespace and non-ASCII', oddlySpelled],
    ['another library (PrintableString)', helperCa],
  ] as const) {
    const result = await runProgram(openssl!, ['x509', '-noout', '-hash', '-in', await pemFile(`hash-${name.length}.pem`, certificate)]);
    t.equal(opensslSubjectHash(certificate.raw), result.stdout.trim(), name);
  }
});
