// End-to-end ClientHello handling through the compiled CLI: what is not TLS
// is closed at once without a backend, real and hand-built hellos survive any
// fragmentation (TCP segments and TLS records) byte for byte, the size cap
// and the hello timeout hold, and no bad client takes the process down.
import { once } from 'node:events';
import type net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import t from 'tap';
import { startEchoBackend, startTlsBackend, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import {
  CONTENT_TYPE_HANDSHAKE,
  buildClientHello,
  captureClientHello,
  clientHelloBody,
  handshakeMessage,
  paddingExtension,
  record,
  wrapInRecords,
} from '../helpers/client-hello-fixtures.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed, writeInPieces, type RawOutcome } from '../helpers/raw-client.js';
import { readLine } from '../helpers/tls-client.js';

/** Bounds every wait; far below the main listener's 30 s hello timeout, far above any prompt close. */
const GUARD_MS = 5_000;
const MAX_HELLO_BYTES = 64 * 1024;

const ca = await createCertificateAuthority();
let proxy: ProxyProcess;
let tlsBackend: TestBackend;
let rawBackend: TestBackend;
let defaultBackend: TestBackend;

t.before(async () => {
  tlsBackend = await startTlsBackend(ca, 'tls', { dnsNames: ['*.example.com'] });
  rawBackend = await startEchoBackend('raw');
  defaultBackend = await startEchoBackend('default');
  const routes = [
    { hostnames: ['*.example.com'], backends: [tlsBackend.address] },
    { hostnames: ['raw.test', '*.raw.test'], backends: [rawBackend.address] },
  ];
  proxy = await startProxy({
    listeners: [
      // A long hello timeout: anything closed here before GUARD_MS was not closed by the timer.
      { name: 'main', listen: '127.0.0.1:0', clientHelloTimeout: '30s', routes, default: { backends: [defaultBackend.address] } },
      { name: 'short', listen: '127.0.0.1:0', clientHelloTimeout: '500ms', routes, default: { backends: [defaultBackend.address] } },
    ],
  });
});

t.teardown(async () => {
  await proxy?.stop();
  await Promise.all([tlsBackend, rawBackend, defaultBackend].filter(Boolean).map((backend) => backend.close()));
});

/** Client addresses ("127.0.0.1:PORT") of the connections this file opened, each of which must be logged once. */
const clients: string[] = [];
const clientOf = (socket: net.Socket): string => {
  const client = `127.0.0.1:${socket.localPort}`;
  clients.push(client);
  return client;
};
const accepted = (): number => tlsBackend.accepted + rawBackend.accepted + defaultBackend.accepted;

function closedLogFor(client: string): Promise<LogLine> {
  return proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, GUARD_MS * 2);
}

/** `promise`'s value, or 'guard' if GUARD_MS passes first. */
async function beforeGuard<T>(promise: Promise<T>): Promise<T | 'guard'> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<'guard'>((resolve) => (timer = setTimeout(() => resolve('guard'), GUARD_MS)));
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends `bytes` the proxy must reject, and returns how the connection ended
 * (or 'guard') and the proxy's log line for it.
 */
async function sendRejected(
  listener: string,
  bytes: Buffer,
  send: (socket: net.Socket, bytes: Buffer) => void | Promise<void> = (socket) => void socket.write(bytes),
): Promise<{ result: RawOutcome | 'guard'; log: LogLine; socket: net.Socket }> {
  const socket = await connectRaw(proxy.port(listener));
  const client = clientOf(socket);
  const closed = readUntilClosed(socket);
  void send(socket, bytes);
  const result = await beforeGuard(closed);
  socket.destroy();
  return { result, log: await closedLogFor(client), socket };
}

/**
 * Sends `bytes` (with `send`), waits until the echo backend has returned as
 * many bytes, then half-closes; resolves with everything echoed back and the
 * proxy's log line.
 */
async function echoThrough(
  bytes: Buffer,
  send: (socket: net.Socket, bytes: Buffer) => void | Promise<void> = (socket) => void socket.write(bytes),
  listener = 'main',
): Promise<{ echoed: Buffer; log: LogLine }> {
  const socket = await connectRaw(proxy.port(listener));
  const client = clientOf(socket);
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received >= bytes.length) socket.end();
  });
  const closed = readUntilClosed(socket);
  await send(socket, bytes);
  const result = await beforeGuard(closed);
  socket.destroy();
  if (result === 'guard') throw new Error(`no echo of ${bytes.length} bytes within ${GUARD_MS} ms (got ${received})`);
  return { echoed: result.received, log: await closedLogFor(client) };
}

/**
 * A Duplex over `raw` for `tls.connect({ socket })`: the TLS client's first
 * write (its ClientHello) may be rewritten, and every write leaves in
 * `pieceSize`-byte writes, each on its own turn of the event loop (the raw
 * socket has no Nagle), so the proxy sees the hello in tiny segments.
 */
function fragmentingSocket(raw: net.Socket, options: { pieceSize: number; rewriteHello?: (hello: Buffer) => Buffer }): Duplex & { pieces: number } {
  let first = true;
  const duplex = Object.assign(
    new Duplex({
      write(chunk: Buffer, _encoding, callback) {
        const bytes = first && options.rewriteHello ? options.rewriteHello(chunk) : chunk;
        first = false;
        duplex.pieces += Math.ceil(bytes.length / options.pieceSize);
        writeInPieces(raw, bytes, options.pieceSize).then(() => callback(), callback);
      },
      final(callback) {
        raw.end();
        callback();
      },
      read() {
        raw.resume();
      },
      destroy(error, callback) {
        raw.destroy();
        callback(error);
      },
    }),
    { pieces: 0 },
  );
  raw.on('data', (chunk: Buffer) => {
    if (!duplex.push(chunk)) raw.pause();
  });
  raw.on('end', () => duplex.push(null));
  raw.on('error', (error) => duplex.destroy(error));
  return duplex;
}

/** The handshake message carried by a record-layer ClientHello (records unwrapped). */
function unwrapRecords(records: Buffer): Buffer {
  const fragments: Buffer[] = [];
  for (let offset = 0; offset < records.length; offset += 5 + records.readUInt16BE(offset + 3)) {
    fragments.push(records.subarray(offset + 5, offset + 5 + records.readUInt16BE(offset + 3)));
  }
  return Buffer.concat(fragments);
}

/** An SSLv2-compatible ClientHello (as very old clients send): no extensions, so no SNI. */
function sslv2ClientHello(): Buffer {
  const cipherSpecs = Buffer.from([0x00, 0x00, 0x2f, 0x00, 0x00, 0x35, 0x01, 0x00, 0x80]);
  const challenge = Buffer.alloc(16, 0x5a);
  const body = Buffer.concat([
    Buffer.from([0x01, 0x03, 0x01]), // msg_type client_hello, version TLS 1.0
    Buffer.from([0x00, cipherSpecs.length, 0x00, 0x00, 0x00, challenge.length]), // cipher_spec, session_id, challenge lengths
    cipherSpecs,
    challenge,
  ]);
  return Buffer.concat([Buffer.from([0x80 | (body.length >> 8), body.length & 0xff]), body]);
}

t.test('not TLS: closed at once from the first bytes, no backend connection', async (t) => {
  const inputs: Array<[string, Buffer, string]> = [
    ['garbage bytes', Buffer.from('\x00\x01\x02garbage that is not TLS at all\r\n', 'latin1'), 'not_tls'],
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n'), 'not_tls'],
    ['garbage with the high bit set (not an SSLv2 hello)', Buffer.from('deadbeefcafebabe0011223344556677', 'hex'), 'not_tls'],
    ['a TLS application_data record', record(23, Buffer.from('not a hello')), 'not_tls'],
    ['an empty handshake record', Buffer.from('1603010000', 'hex'), 'bad_record'],
    [
      'a handshake record that is not a ClientHello (a ServerHello)',
      record(CONTENT_TYPE_HANDSHAKE, handshakeMessage(2, clientHelloBody({ serverName: 'app.example.com' }))),
      'not_client_hello',
    ],
  ];
  for (const [label, bytes, reason] of inputs) {
    t.test(label, async (t) => {
      const before = accepted();
      const { result, log } = await sendRejected('main', bytes);
      t.not(result, 'guard', `closed before the ${GUARD_MS} ms guard (the hello timeout is 30 s)`);
      if (result !== 'guard') t.equal(result.received.length, 0, 'nothing sent back');
      t.equal(log.outcome, 'bad_hello', 'outcome bad_hello');
      t.equal(log.reason, reason, `reason ${reason}`);
      t.equal(log.backend, null, 'no backend in the log');
      t.equal(log.route, null, 'no route in the log');
      t.equal(accepted(), before, 'no backend accepted a connection');
    });
  }
});

t.test('a real Node TLS client whose writes leave 1 byte at a time completes its session', async (t) => {
  const raw = await connectRaw(proxy.port('main'));
  const client = clientOf(raw);
  const socket = fragmentingSocket(raw, { pieceSize: 1 });
  const session = tls.connect({ socket, servername: 'bytes.example.com', ca: ca.cert });
  socket.on('error', () => {});
  try {
    const connected = await beforeGuard(once(session, 'secureConnect'));
    t.not(connected, 'guard', 'handshake completed through the proxy');
    t.ok(session.authorized, 'certificate verified');
    const identity = JSON.parse(await readLine(session)) as BackendIdentity;
    t.same(identity, { backend: 'tls', sni: 'bytes.example.com', alpn: null }, 'the TLS backend answered and saw the SNI');
    session.write('ping\n');
    t.equal(await readLine(session), 'ping', 'application data is echoed');
    t.ok(socket.pieces > 300, `the client's bytes left in ${socket.pieces} one-byte writes`);
    session.end();
    const log = await closedLogFor(client);
    t.equal(log.outcome, 'ok');
    t.equal(log.route, '*.example.com');
    t.equal(log.sni, 'bytes.example.com');
    t.equal(log.backend, tlsBackend.address);
  } finally {
    session.destroy();
  }
});

t.test('a real Node TLS client whose ClientHello is re-split over many TLS records completes its session', async (t) => {
  const raw = await connectRaw(proxy.port('main'));
  const client = clientOf(raw);
  let records = 0;
  const socket = fragmentingSocket(raw, {
    pieceSize: 64,
    // Fragments of 1, 2, 3 and then 40 bytes: the 4-byte handshake header alone spans three records.
    rewriteHello: (hello) => {
      const split = wrapInRecords(unwrapRecords(hello), [1, 2, 3, 40]);
      for (let offset = 0; offset < split.length; offset += 5 + split.readUInt16BE(offset + 3)) records++;
      return split;
    },
  });
  const session = tls.connect({ socket, servername: 'records.example.com', ca: ca.cert });
  socket.on('error', () => {});
  try {
    const connected = await beforeGuard(once(session, 'secureConnect'));
    t.not(connected, 'guard', 'handshake completed through the proxy');
    t.ok(records > 5, `the hello went out in ${records} records`);
    const identity = JSON.parse(await readLine(session)) as BackendIdentity;
    t.same(identity, { backend: 'tls', sni: 'records.example.com', alpn: null });
    session.end();
    const log = await closedLogFor(client);
    t.equal(log.outcome, 'ok');
    t.equal(log.route, '*.example.com');
  } finally {
    session.destroy();
  }
});

t.test("Node's captured ClientHello sent 1 byte at a time reaches the backend byte for byte", async (t) => {
  const hello = await captureClientHello({ servername: 'bytes.raw.test', ALPNProtocols: ['h2', 'http/1.1'] });
  const { echoed, log } = await echoThrough(hello, (socket, bytes) => writeInPieces(socket, bytes, 1));
  t.equal(echoed.toString('hex'), hello.toString('hex'), 'the backend received exactly the bytes sent');
  t.equal(log.outcome, 'ok');
  t.equal(log.route, '*.raw.test');
  t.equal(log.sni, 'bytes.raw.test');
  t.same(log.alpn, ['h2', 'http/1.1'], 'ALPN offered is logged');
  t.equal(log.backend, rawBackend.address);
  t.equal(log.bytesFromClient, hello.length);
  t.equal(log.bytesToClient, hello.length);
});

t.test('a hand-built hello split over several TLS records reaches the backend byte for byte', async (t) => {
  const handshake = buildClientHello({ serverName: 'records.raw.test', alpn: ['h2'] });
  for (const [label, sizes] of [
    ['1-byte records', [1]],
    ['uneven records', [3, 1, 7, 50]],
    ['header in one record, body in the next', [4, handshake.length]],
  ] as Array<[string, number[]]>) {
    const bytes = wrapInRecords(handshake, sizes);
    const { echoed, log } = await echoThrough(bytes);
    t.equal(echoed.toString('hex'), bytes.toString('hex'), `${label}: byte-identical at the backend`);
    t.equal(log.outcome, 'ok', `${label}: ok`);
    t.equal(log.route, '*.raw.test', `${label}: routed by its SNI`);
    t.equal(log.sni, 'records.raw.test');
  }
  // Records and TCP segments both split: 5-byte records written 3 bytes at a time.
  const bytes = wrapInRecords(handshake, [5]);
  const { echoed, log } = await echoThrough(bytes, (socket, data) => writeInPieces(socket, data, 3));
  t.equal(echoed.toString('hex'), bytes.toString('hex'), 'records and segments split: byte-identical');
  t.equal(log.route, '*.raw.test');
});

t.test('bytes sent right behind the hello are passed on, not dropped', async (t) => {
  const hello = await captureClientHello({ servername: 'early.raw.test' });
  const early = Buffer.from('bytes the client sent before any answer (as TLS 1.3 early data would be)\n');
  t.test('in the same write as the hello', async (t) => {
    const bytes = Buffer.concat([hello, early]);
    const { echoed, log } = await echoThrough(bytes);
    t.equal(echoed.toString('hex'), bytes.toString('hex'), 'hello and following bytes arrive byte-identical');
    t.equal(log.route, '*.raw.test');
    t.equal(log.bytesFromClient, bytes.length);
  });
  t.test('with the end of the hello and a FIN in one go', async (t) => {
    const bytes = Buffer.concat([hello, early]);
    const socket = await connectRaw(proxy.port('main'));
    const client = clientOf(socket);
    const closed = readUntilClosed(socket);
    socket.write(bytes.subarray(0, 10));
    await new Promise((resolve) => setImmediate(resolve));
    socket.end(bytes.subarray(10)); // write side shut right after the last hello byte
    const result = await beforeGuard(closed);
    t.not(result, 'guard', 'the exchange finished');
    if (result !== 'guard') t.equal(result.received.toString('hex'), bytes.toString('hex'), 'the backend got every byte and its echo came back');
    const log = await closedLogFor(client);
    t.equal(log.outcome, 'ok');
    t.equal(log.route, '*.raw.test');
  });
});

t.test('a large hello (20 KB of padding, spanning records) is routed', async (t) => {
  const handshake = buildClientHello({ serverName: 'large.raw.test', extraExtensionBytes: paddingExtension(20_000) });
  const bytes = wrapInRecords(handshake);
  t.ok(bytes.length > 20_000 && bytes.length < MAX_HELLO_BYTES, `${bytes.length} bytes in 2 records`);
  const { echoed, log } = await echoThrough(bytes, (socket, data) => writeInPieces(socket, data, 1000));
  t.equal(echoed.length, bytes.length, 'all of it echoed');
  t.ok(echoed.equals(bytes), 'byte-identical at the backend');
  t.equal(log.outcome, 'ok');
  t.equal(log.route, '*.raw.test');
  t.equal(log.sni, 'large.raw.test');
});

t.test('an SSLv2-format hello has no SNI and goes to default', async (t) => {
  const before = defaultBackend.accepted;
  const bytes = sslv2ClientHello();
  const { echoed, log } = await echoThrough(bytes);
  t.equal(echoed.toString('hex'), bytes.toString('hex'), 'byte-identical at the default backend');
  t.equal(defaultBackend.accepted, before + 1, 'the default backend took it');
  t.equal(log.outcome, 'ok');
  t.equal(log.route, 'default');
  t.equal(log.sni, null);
  t.equal(log.backend, defaultBackend.address);
});

t.test('a hello over 64 KiB is refused as too_large without a backend', async (t) => {
  // Valid in form: 60 000 bytes of cipher suites plus 10 000 bytes of padding.
  const handshake = buildClientHello({
    serverName: 'huge.raw.test',
    cipherSuites: Buffer.alloc(60_000, 0x13),
    extraExtensionBytes: paddingExtension(10_000),
  });
  const bytes = wrapInRecords(handshake);
  t.ok(bytes.length > MAX_HELLO_BYTES, `${bytes.length} bytes`);
  const before = accepted();
  const { result, log } = await sendRejected('main', bytes);
  t.not(result, 'guard', 'closed before the guard');
  t.equal(log.outcome, 'bad_hello');
  t.equal(log.reason, 'too_large');
  t.equal(log.backend, null);
  t.ok((log.bytesFromClient as number) <= MAX_HELLO_BYTES, `read at most 64 KiB (${log.bytesFromClient})`);
  t.equal(accepted(), before, 'no backend accepted a connection');
});

/** A valid hand-built hello whose record-layer bytes (16 KiB records) total exactly `total`. */
function helloOfRecordLength(serverName: string, total: number): Buffer {
  const records = Math.ceil(total / (16384 + 5));
  const handshakeLength = total - 5 * records;
  const cipherSuites = Buffer.alloc(30_000, 0x13);
  const base = buildClientHello({ serverName, cipherSuites, extraExtensionBytes: paddingExtension(0) }).length;
  const handshake = buildClientHello({ serverName, cipherSuites, extraExtensionBytes: paddingExtension(handshakeLength - base) });
  const bytes = wrapInRecords(handshake);
  if (bytes.length !== total) throw new Error(`built ${bytes.length} bytes, wanted ${total}`);
  return bytes;
}

t.test('the 64 KiB cap is exact: a hello of 65536 bytes is routed, 65537 is too_large', async (t) => {
  const fits = helloOfRecordLength('cap.raw.test', MAX_HELLO_BYTES);
  const { echoed, log } = await echoThrough(fits, (socket, data) => writeInPieces(socket, data, 4096));
  t.ok(echoed.equals(fits), '65536 bytes: byte-identical at the backend');
  t.equal(log.outcome, 'ok');
  t.equal(log.route, '*.raw.test');

  const before = accepted();
  const { result, log: refused } = await sendRejected('main', helloOfRecordLength('cap.raw.test', MAX_HELLO_BYTES + 1));
  t.not(result, 'guard', 'closed before the guard');
  t.equal(refused.outcome, 'bad_hello');
  t.equal(refused.reason, 'too_large');
  t.equal(accepted(), before, 'no backend accepted a connection');
});

t.test('clientHelloTimeout (500ms listener)', async (t) => {
  const hello = await captureClientHello({ servername: 'slow.raw.test' });

  t.test('half a hello, then silence: closed with hello_timeout', async (t) => {
    const before = accepted();
    const { result, log } = await sendRejected('short', hello.subarray(0, hello.length >> 1));
    t.not(result, 'guard', 'closed before the guard');
    t.equal(log.outcome, 'hello_timeout');
    t.equal(log.listener, 'short');
    t.equal(log.bytesFromClient, hello.length >> 1);
    t.equal(log.backend, null);
    t.equal(accepted(), before, 'no backend accepted a connection');
  });

  t.test('a client trickling 1 byte every 100 ms does not reset the timer', async (t) => {
    const before = accepted();
    const { result, log, socket } = await sendRejected('short', hello, (socket, bytes) => writeInPieces(socket, bytes, 1, 100));
    // At 100 ms a byte the whole hello would take tens of seconds; the guard is 5 s.
    t.not(result, 'guard', 'closed before the guard, though still sending');
    t.ok(socket.bytesWritten > 1, `the client kept sending (${socket.bytesWritten} bytes)`);
    t.ok(socket.bytesWritten < hello.length, 'and had not finished its hello');
    t.equal(log.outcome, 'hello_timeout');
    t.equal(accepted(), before, 'no backend accepted a connection');
  });

  t.test('a whole hello in time is routed on the same listener', async (t) => {
    const { echoed, log } = await echoThrough(hello, undefined, 'short');
    t.ok(echoed.equals(hello));
    t.equal(log.outcome, 'ok');
    t.equal(log.listener, 'short');
  });
});

t.test('a client that closes early', async (t) => {
  t.test('without sending anything: client_closed', async (t) => {
    const before = accepted();
    const { result, log } = await sendRejected('main', Buffer.alloc(0), (socket) => void socket.end());
    t.not(result, 'guard', 'closed before the guard');
    t.equal(log.outcome, 'client_closed');
    t.equal(log.bytesFromClient, 0);
    t.equal(log.backend, null);
    t.equal(accepted(), before, 'no backend accepted a connection');
  });

  t.test('after part of a hello: client_closed', async (t) => {
    const hello = buildClientHello({ serverName: 'part.raw.test' });
    const bytes = wrapInRecords(hello).subarray(0, 20);
    const before = accepted();
    const { result, log } = await sendRejected('main', bytes, (socket, data) => void socket.end(data));
    t.not(result, 'guard', 'closed before the guard');
    t.equal(log.outcome, 'client_closed');
    t.equal(log.bytesFromClient, 20);
    t.equal(accepted(), before, 'no backend accepted a connection');
  });

  t.test('with a reset mid-hello: client_closed, no backend', async (t) => {
    const socket = await connectRaw(proxy.port('main'));
    const client = clientOf(socket);
    const before = accepted();
    socket.write(wrapInRecords(buildClientHello({ serverName: 'reset.raw.test' })).subarray(0, 30));
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.resetAndDestroy();
    const log = await closedLogFor(client);
    t.equal(log.outcome, 'client_closed');
    t.equal(accepted(), before, 'no backend accepted a connection');
  });
});

t.test('after every bad client the process still serves good ones', async (t) => {
  await new Promise((resolve) => setTimeout(resolve, 200)); // room for a wrong second line to show up
  const lines = proxy.connectionLogs();
  t.ok(clients.length > 20, `${clients.length} connections tracked`);
  t.same(
    clients.filter((client) => lines.filter((line) => line.client === client).length !== 1),
    [],
    'every connection produced exactly one `connection closed` line',
  );
  t.equal(proxy.child.exitCode, null, 'the proxy process is running');
  t.notOk(
    proxy.logs.some((line) => /uncaught/i.test(line.msg)),
    'no uncaught exception was logged',
  );
  const socket = tls.connect({ host: '127.0.0.1', port: proxy.port('main'), servername: 'good.example.com', ca: ca.cert });
  try {
    await once(socket, 'secureConnect');
    t.ok(socket.authorized);
    const identity = JSON.parse(await readLine(socket)) as BackendIdentity;
    t.equal(identity.backend, 'tls', 'a good TLS client still reaches its backend');
  } finally {
    socket.destroy();
  }
  const hello = wrapInRecords(buildClientHello({ serverName: 'good.raw.test' }));
  const { echoed } = await echoThrough(hello);
  t.ok(echoed.equals(hello), 'and a raw one is still spliced');
});
