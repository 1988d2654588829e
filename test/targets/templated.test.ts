// Templated backends behind a Connection in this process (the listener's
// settings built from YAML, real sockets on loopback): on an http listener the
// Host fills the template and the system resolver (no `resolvers`) finds it;
// a terminating route fills it too; a name whose labels cannot fill the
// template gets the listener's answer (before any TLS work).
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { startEchoBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record } from '../helpers/client-hello-fixtures.js';
import { TestConnectionHost } from '../helpers/connection-host.js';
import { readUntilClosed } from '../helpers/raw-client.js';
import { guard } from '../helpers/wait.js';

const echo = await startEchoBackend();
t.teardown(() => echo.close());

t.test('http listener: the Host fills the template; without resolvers the system resolver (/etc/hosts) answers', async (t) => {
  const host = new TestConnectionHost(
    ['listen: 127.0.0.1:0', 'protocol: http', 'routes:', '  - hostnames: ["*.example.com"]', `    backends: ["{1}:${echo.port}"]`].join('\n'),
  );
  const client = await host.connect(t);
  const closed = readUntilClosed(client);
  const request = 'GET / HTTP/1.1\r\nHost: localhost.example.com\r\n\r\n';
  client.end(request);
  const { received } = await guard(closed, 30_000, 'the echo');
  t.equal(received.toString(), request, 'the request reached the backend "{1}" named: localhost');
  t.match(await host.record(), { outcome: 'ok', route: '*.example.com', backend: `localhost:${echo.port}`, sni: 'localhost.example.com' });
});

t.test('tls listener: a {2} where "*" matched one label is refused with the alert, no backend dialled', async (t) => {
  const host = new TestConnectionHost(
    ['listen: 127.0.0.1:0', 'routes:', '  - hostnames: ["*.example.com"]', `    backends: ["{2}.{1}:${echo.port}"]`].join('\n'),
  );
  const accepted = echo.accepted;
  const client = await host.connect(t);
  const closed = readUntilClosed(client);
  client.write(record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName: 'one.example.com' })));
  const { received } = await guard(closed, 30_000, 'the alert');
  t.equal(received.toString('hex'), '15030300020270', 'unrecognized_name alert');
  t.match(await host.record(), { outcome: 'no_route', reason: 'no_backend_name', route: '*.example.com', backend: null, attempts: 0 });
  t.equal(echo.accepted, accepted, 'no backend contacted');
});

t.test('http listener: the same refusal is a 404', async (t) => {
  const host = new TestConnectionHost(
    ['listen: 127.0.0.1:0', 'protocol: http', 'routes:', '  - hostnames: ["*.example.com"]', `    backends: ["{2}.{1}:${echo.port}"]`].join('\n'),
  );
  const client = await host.connect(t);
  const closed = readUntilClosed(client);
  client.write('GET / HTTP/1.1\r\nHost: one.example.com\r\n\r\n');
  const { received } = await guard(closed, 30_000, 'the answer');
  t.match(received.toString(), /^HTTP\/1\.1 404 /, '404');
  t.match(await host.record(), { outcome: 'no_route', reason: 'no_backend_name', backend: null });
});

t.test('a terminating route: the name fills the template; an unfillable one is refused before the handshake', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'sni-templated-test-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  const ca = await createCertificateAuthority();
  const { cert, key } = await ca.issue('wildcard', ['*.example.com']);
  await writeFile(join(directory, 'leaf.pem'), cert);
  await writeFile(join(directory, 'leaf.key'), key);
  const yaml = (template: string): string =>
    [
      'listen: 127.0.0.1:0',
      'routes:',
      '  - hostnames: ["*.example.com"]',
      `    backends: ["${template}:${echo.port}"]`,
      `    tls: { cert: ${join(directory, 'leaf.pem')}, key: ${join(directory, 'leaf.key')} }`,
    ].join('\n');

  const filled = await TestConnectionHost.withCertificates(yaml('{1}'));
  const secure = tls.connect({ socket: await filled.connect(t), servername: 'localhost.example.com', ca: ca.cert });
  await guard(once(secure, 'secureConnect'), 30_000, 'the handshake');
  secure.write('ping');
  const [echoed] = (await guard(once(secure, 'data'), 30_000, 'the echo')) as [Buffer];
  t.equal(echoed.toString(), 'ping', 'decrypted, sent to localhost:PORT, echoed');
  secure.end();
  t.match(await filled.record(), { outcome: 'ok', backend: `localhost:${echo.port}` });

  const refused = await TestConnectionHost.withCertificates(yaml('{2}.{1}'));
  const client = tls.connect({ socket: await refused.connect(t), servername: 'one.example.com', ca: ca.cert });
  const [error] = (await guard(once(client, 'error'), 30_000, 'the handshake failure')) as [NodeJS.ErrnoException];
  t.equal(error.code, 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME', 'the unrecognized_name alert, not a certificate');
  t.match(await refused.record(), { outcome: 'no_route', reason: 'no_backend_name', backend: null });
});
