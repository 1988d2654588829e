// Real TLS clients that trust only the local CA accept the leaves it issues
// (Node, curl, openssl s_client), and refuse them without it or for a name
// the leaf does not carry.
import t from 'tap';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { greeting, startLocalCaServer } from '../helpers/local-ca-server.js';
import { runProgram, which } from '../helpers/programs.js';
import { handshakeResult } from '../helpers/tls-client.js';
import { CA_CERTIFICATE_FILE, LocalCertificateAuthority } from '../../lib/tls/local-ca.js';

const folder = await mkdtemp(join(tmpdir(), 'sni-passthrough-local-ca-clients-'));
t.teardown(() => rm(folder, { recursive: true, force: true }));
const directory = join(folder, 'state');
const ca = await LocalCertificateAuthority.open(directory);
const caFile = join(directory, CA_CERTIFICATE_FILE);
const otherCa = (await createCertificateAuthority('another CA')).cert;
const otherCaFile = join(directory, 'other-ca.pem');
await writeFile(otherCaFile, otherCa);
const server = await startLocalCaServer(ca);
t.teardown(() => server.close());
const curl = await which('curl');
const openssl = await which('openssl');

function connect(servername: string, trusted: string | undefined): tls.TLSSocket {
  const socket = tls.connect({ host: '127.0.0.1', port: server.port, servername, ...(trusted ? { ca: trusted } : {}) });
  socket.on('error', () => {});
  return socket;
}

t.test('Node trusting only the CA verifies exact, wildcard-covered and IP names', async (t) => {
  for (const name of ['app.localhost', 'deep.name.web.localhost']) {
    const socket = connect(name, ca.certificatePem);
    t.equal(await handshakeResult(socket), null, `${name}: handshake`);
    t.ok(socket.authorized, `${name}: chain verified`);
    t.equal(socket.getPeerCertificate().subjectaltname, `DNS:${name}`);
    socket.destroy();
  }
  const byAddress = tls.connect({ host: '127.0.0.1', port: server.port, ca: ca.certificatePem });
  t.equal(await handshakeResult(byAddress), null, 'no SNI: the certificate for 127.0.0.1 verifies against the address');
  byAddress.destroy();
});

t.test('without the CA, or trusting another CA, Node refuses the leaf', async (t) => {
  const untrusted = connect('app.localhost', undefined);
  t.match(await handshakeResult(untrusted), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }, 'the default store does not know the CA the server sends');
  const other = connect('app.localhost', otherCa);
  t.match(await handshakeResult(other), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
});

t.test('a leaf for one name does not pass for another', async (t) => {
  // The server issues for the name the client sends; a client checking another name must refuse.
  const socket = tls.connect({
    host: '127.0.0.1',
    port: server.port,
    servername: 'app.localhost',
    ca: ca.certificatePem,
    checkServerIdentity: (_, cert) => tls.checkServerIdentity('other.localhost', cert),
  });
  socket.on('error', () => {});
  t.match(await handshakeResult(socket), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
});

t.test('curl --cacert loads the page; without it curl refuses', { skip: curl ? false : 'curl is not installed' }, async (t) => {
  const url = `https://app.localhost:${server.port}/`;
  const resolve = `app.localhost:${server.port}:127.0.0.1`;
  const ok = await runProgram(curl!, ['-sS', '--max-time', '10', '--resolve', resolve, '--cacert', caFile, url]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, greeting(`app.localhost:${server.port}`));
  const refused = await runProgram(curl!, ['-sS', '--max-time', '10', '--resolve', resolve, '--cacert', otherCaFile, url]);
  t.equal(refused.code, 60, 'trusting another CA: curl exit 60, peer certificate cannot be authenticated');
});

t.test('openssl s_client -verify_return_error accepts the chain and the name', { skip: openssl ? false : 'openssl is not installed' }, async (t) => {
  const run = (name: string, trusted: string) =>
    runProgram(
      openssl!,
      [
        's_client',
        '-brief',
        '-connect',
        `127.0.0.1:${server.port}`,
        '-servername',
        'app.localhost',
        '-verify_hostname',
        name,
        '-verify_return_error',
        '-CAfile',
        trusted,
      ],
      '',
    );
  const ok = await run('app.localhost', caFile);
  t.equal(ok.code, 0, `exit 0 (${ok.stderr.trim().split('\n').pop()})`);
  t.match(ok.stderr, /Verification: OK/);
  t.match(ok.stderr, /Verified peername: app\.localhost/);
  const wrongName = await run('other.localhost', caFile);
  t.not(wrongName.code, 0, 'another name fails');
  t.match(wrongName.stderr, /hostname mismatch/);
  const untrusted = await run('app.localhost', otherCaFile);
  t.not(untrusted.code, 0, 'trusting another CA it fails');
  t.match(untrusted.stderr, /self-signed certificate in certificate chain/);
});

t.test('the server issued one leaf per name and reused it', async (t) => {
  const before = server.serverNames.length;
  for (let i = 0; i < 3; i++) {
    const socket = connect('again.localhost', ca.certificatePem);
    await once(socket, 'secureConnect');
    t.equal(socket.getPeerCertificate().subjectaltname, 'DNS:again.localhost');
    socket.destroy();
  }
  t.equal(server.serverNames.length - before, 3);
  const serials = new Set(
    await Promise.all(
      [0, 1].map(async () => {
        const socket = connect('again.localhost', ca.certificatePem);
        await once(socket, 'secureConnect');
        const serial = socket.getPeerCertificate().serialNumber;
        socket.destroy();
        return serial;
      }),
    ),
  );
  t.equal(serials.size, 1, 'the cached leaf is served again');
});
