// The ClientHellos the parser refuses for their extensions or server name are
// ones a backend's TLS stack refuses too: each variant of a hello captured from
// Node's TLS client goes both to parseClientHello and, on a real socket, to a
// Node TLS server (OpenSSL, what most backends run), which must answer with a
// fatal alert instead of a ServerHello. Where the parser is stricter than
// OpenSSL (a repeated extension type OpenSSL does not know, a label over 63
// bytes; BoringSSL and Go refuse the first too), only the parser is checked.
import { once } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { parseClientHello } from '../../lib/tls/client-hello.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import {
  captureClientHello,
  EXTENSION_ALPN,
  EXTENSION_SERVER_NAME,
  helloExtensions,
  type RawExtension,
  uint16,
  unwrapRecords,
  vector16,
  withHelloExtensions,
  wrapInRecords,
} from '../helpers/client-hello-fixtures.js';
import { connectRaw } from '../helpers/raw-client.js';
import { guard } from '../helpers/wait.js';

const CONTENT_TYPE_ALERT = 21;
const CONTENT_TYPE_HANDSHAKE = 22;
const ALERT_LEVEL_FATAL = 2;
const EXTENSION_SUPPORTED_GROUPS = 10;
const EXTENSION_UNASSIGNED = 0xfe0d; // ECH's code point, which Node's OpenSSL does not implement
const RESPONSE_GUARD_MS = 20_000;

const authority = await createCertificateAuthority();
const leaf = await authority.issue('app.example', ['app.example']);
const server = tls.createServer({ key: leaf.key, cert: leaf.cert });
server.on('tlsClientError', () => {}); // each refused hello reports here
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address() as net.AddressInfo;
t.teardown(() => server.close());

/** The first record header and two bytes after it that OpenSSL sends back for `hello`, or what arrived before it closed. */
async function opensslAnswer(hello: Buffer): Promise<Buffer> {
  const socket = await connectRaw(port);
  const received: Buffer[] = [];
  let length = 0;
  const answered = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      length += chunk.length;
      if (length >= 7) resolve();
    });
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
  socket.write(hello);
  try {
    await guard(answered, RESPONSE_GUARD_MS, 'an answer from the TLS server');
  } finally {
    socket.destroy();
  }
  return Buffer.concat(received).subarray(0, 7);
}

function isFatalAlert(answer: Buffer): boolean {
  return answer.length === 7 && answer[0] === CONTENT_TYPE_ALERT && answer[5] === ALERT_LEVEL_FATAL;
}

const captured = await captureClientHello({ servername: 'app.example', ALPNProtocols: ['h2', 'http/1.1'] });
const message = unwrapRecords(captured);
const extensions = helloExtensions(message);

function variant(change: (list: RawExtension[]) => RawExtension[]): Buffer {
  return wrapInRecords(withHelloExtensions(message, change([...extensions])));
}

/** `list` with a second copy of its extension of `type` right after the first. */
function repeated(type: number) {
  return (list: RawExtension[]): RawExtension[] => {
    const index = list.findIndex((candidate) => candidate.type === type);
    if (index < 0) throw new Error(`the captured hello has no extension ${type}`);
    list.splice(index + 1, 0, list[index]!);
    return list;
  };
}

/** `list` with the server_name extension's list replaced by `entries` (name_type, 2-byte length, name each). */
function serverNameEntries(...entries: Array<[number, string]>) {
  return (list: RawExtension[]): RawExtension[] => {
    const data = vector16(...entries.map(([nameType, name]) => Buffer.concat([Buffer.from([nameType]), vector16(Buffer.from(name, 'latin1'))])));
    return list.map((candidate) => (candidate.type === EXTENSION_SERVER_NAME ? { type: candidate.type, data } : candidate));
  };
}

t.test('the captured hello itself: both accept it', async (t) => {
  t.same(parseClientHello(captured), {
    status: 'complete',
    hello: { serverName: 'app.example', alpn: ['h2', 'http/1.1'], sslv2: false },
    length: captured.length,
  });
  t.same(wrapInRecords(withHelloExtensions(message, extensions)), captured, 'rebuilding the hello from its extensions gives the same bytes');
  const answer = await opensslAnswer(captured);
  t.equal(answer[0], CONTENT_TYPE_HANDSHAKE, `the server answers with a handshake record (${answer.toString('hex')})`);
});

t.test('refused by both: repeated extensions and server_name lists that are not one host_name', async (t) => {
  const cases: Array<[string, Buffer, string]> = [
    ['server_name twice', variant(repeated(EXTENSION_SERVER_NAME)), 'malformed'],
    ['ALPN twice', variant(repeated(EXTENSION_ALPN)), 'malformed'],
    ['supported_groups twice', variant(repeated(EXTENSION_SUPPORTED_GROUPS)), 'malformed'],
    ['two host_name entries', variant(serverNameEntries([0, 'app.example'], [0, 'other.example'])), 'bad_server_name'],
    ['a host_name, then another name type', variant(serverNameEntries([0, 'app.example'], [1, 'app.example'])), 'bad_server_name'],
    ['another name type, then a host_name', variant(serverNameEntries([1, 'x'], [0, 'app.example'])), 'bad_server_name'],
    ['only another name type', variant(serverNameEntries([1, 'app.example'])), 'bad_server_name'],
    ['an empty server_name list', variant(serverNameEntries()), 'bad_server_name'],
  ];
  for (const [name, hello, reason] of cases) {
    t.same(parseClientHello(hello), { status: 'invalid', reason }, `${name}: the parser says ${reason}`);
    const answer = await opensslAnswer(hello);
    t.ok(isFatalAlert(answer), `${name}: OpenSSL answers with a fatal alert (${answer.toString('hex')})`);
  }
});

t.test('stricter than OpenSSL, as BoringSSL and Go: a repeated extension of a type OpenSSL does not know', async (t) => {
  const withUnknown = (list: RawExtension[]): RawExtension[] => [{ type: EXTENSION_UNASSIGNED, data: uint16(0) }, ...list];
  const single = variant(withUnknown);
  t.equal(parseClientHello(single).status, 'complete', 'once: accepted');
  const twice = variant((list) => repeated(EXTENSION_UNASSIGNED)(withUnknown(list)));
  t.same(parseClientHello(twice), { status: 'invalid', reason: 'malformed' }, 'twice: malformed');
});
