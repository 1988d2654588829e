// Passthrough behaviour of an established connection, end to end through the
// compiled CLI with real TLS at both ends (and raw TCP where the FIN itself is
// the point): bulk transfer integrity, half-close in both directions,
// backpressure (bounded proxy memory), reset propagation and the idle timeout.
// Every proxy gets a short drainTimeout so a failed test's teardown cannot
// wait the default 30 s for a connection left open.
import t from 'tap';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { startTlsBackend } from '../helpers/backends.js';
import { createCertificateAuthority, type KeyAndCertificate } from '../helpers/certificates.js';
import { captureClientHello } from '../helpers/client-hello-fixtures.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;
const HOSTNAME = 'stream.example.com';

const ca = await createCertificateAuthority();
const backendIdentity: KeyAndCertificate = await ca.issue('scripted backend', ['*.example.com']);

// ---------------------------------------------------------------------------
// Data: deterministic pseudo-random bytes, generated chunk by chunk.

/** `total` bytes from a xorshift32 stream seeded with `seed`, in fresh chunks of at most CHUNK bytes. */
function* seededChunks(seed: number, total: number): Generator<Buffer> {
  let state = seed >>> 0 || 0x9e3779b9;
  for (let offset = 0; offset < total; offset += CHUNK) {
    const size = Math.min(CHUNK, total - offset);
    const chunk = Buffer.allocUnsafe(Math.ceil(size / 4) * 4);
    for (let index = 0; index < chunk.length; index += 4) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      chunk.writeUInt32LE(state >>> 0, index);
    }
    yield chunk.subarray(0, size);
  }
}

/** Resolves on 'drain', rejects if the socket closes first; leaves no listener behind. */
function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      socket.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      socket.off('drain', onDrain);
      reject(new Error('socket closed while sending'));
    };
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

/** Writes the seeded stream to `socket`, honouring backpressure; optionally `end()`s; resolves with the SHA-256 of what was written. */
async function sendSeeded(socket: net.Socket, seed: number, total: number, options: { end: boolean }): Promise<string> {
  const hash = createHash('sha256');
  for (const chunk of seededChunks(seed, total)) {
    if (socket.destroyed) throw new Error('socket destroyed while sending');
    hash.update(chunk);
    if (!socket.write(chunk)) await drained(socket);
  }
  if (options.end) socket.end();
  return hash.digest('hex');
}

function expectedHash(seed: number, total: number): string {
  const hash = createHash('sha256');
  for (const chunk of seededChunks(seed, total)) hash.update(chunk);
  return hash.digest('hex');
}

interface Received {
  bytes: number;
  sha256: string;
}

/** Hashes everything read from `socket` until its peer ends (FIN / close_notify); rejects if it closes without an end. */
function receiveAll(socket: net.Socket): Promise<Received> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    socket.once('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    socket.once('close', () => reject(new Error(`closed without an end after ${bytes} bytes`)));
  });
}

// ---------------------------------------------------------------------------
// Peers: a scripted TLS backend (the test decides what each session does) and a
// TLS client over a half-open-capable TCP socket, both exposing the raw socket
// so a test can reset it.

interface Session {
  tls: tls.TLSSocket;
  raw: net.Socket;
}

interface ScriptedBackend {
  address: string;
  sessions: Session[];
  close(): Promise<void>;
}

async function startScriptedBackend(script: (session: Session) => void): Promise<ScriptedBackend> {
  const sessions: Session[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (raw) => {
    raw.on('error', () => {});
    const socket = new tls.TLSSocket(raw, { isServer: true, key: backendIdentity.key, cert: backendIdentity.cert });
    socket.on('error', () => {});
    const session = { tls: socket, raw };
    sessions.push(session);
    script(session);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.raw.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A plain TCP backend (half-close allowed) running `script` on each connection, `index` counting from 0. */
async function startRawBackend(script: (socket: net.Socket, index: number) => void): Promise<{ address: string; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    sockets.push(socket);
    script(socket, sockets.length - 1);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A verified TLS session through the proxy on a TCP socket that allows half-close. */
async function connectClient(port: number, servername = HOSTNAME): Promise<Session> {
  const raw = await connectRaw(port);
  raw.on('error', () => {});
  const socket = tls.connect({ socket: raw, servername, ca: ca.cert });
  await once(socket, 'secureConnect');
  return { tls: socket, raw };
}

/** The client's address as the proxy logs it. */
function clientKey(socket: net.Socket): string {
  return `127.0.0.1:${socket.localPort}`;
}

function connectionLog(proxy: ProxyProcess, client: string, timeoutMs = 5_000): Promise<LogLine> {
  return proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, timeoutMs);
}

function proxyConfig(backend: string, extra: Record<string, unknown> = {}): unknown {
  return { listeners: [{ name: 'stream', listen: '127.0.0.1:0', drainTimeout: '2s', ...extra, routes: [{ hostnames: [HOSTNAME], backends: [backend] }] }] };
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Resolves once `socket` closes, with the error code it closed with (if any). */
function closed(socket: net.Socket): Promise<string | null> {
  let code: string | null = null;
  socket.on('error', (error: NodeJS.ErrnoException) => (code ??= error.code ?? error.message));
  if (socket.closed) return Promise.resolve(code);
  return new Promise((resolve) => socket.once('close', () => resolve(code)));
}

// ---------------------------------------------------------------------------

t.test('32 MiB each way arrive intact (SHA-256 on both sides)', async (t) => {
  const size = 32 * MiB;
  let backendResult: Promise<{ received: Received; sentHash: string }> | null = null;
  const backend = await startScriptedBackend(({ tls: socket }) => {
    const received = receiveAll(socket);
    const sent = sendSeeded(socket, 2, size, { end: true });
    backendResult = Promise.all([received, sent]).then(([received, sentHash]) => ({ received, sentHash }));
  });
  const proxy = await startProxy(proxyConfig(backend.address));
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
  });

  const client = await connectClient(proxy.port('stream'));
  const key = clientKey(client.raw);
  const [clientSent, clientReceived] = await guard(
    Promise.all([sendSeeded(client.tls, 1, size, { end: true }), receiveAll(client.tls)]),
    30_000,
    '64 MiB transfer',
  );
  t.ok(backendResult, 'the backend saw the session');
  const fromBackend = await guard(backendResult!, 10_000, 'backend finishing');

  t.equal(fromBackend.received.bytes, size, 'the backend received all 32 MiB');
  t.equal(fromBackend.received.sha256, clientSent, 'client → backend: SHA-256 matches');
  t.equal(clientSent, expectedHash(1, size), 'the client sent the seeded stream');
  t.equal(clientReceived.bytes, size, 'the client received all 32 MiB');
  t.equal(clientReceived.sha256, fromBackend.sentHash, 'backend → client: SHA-256 matches');
  await guard(closed(client.raw), 30_000, 'the connection to close once both sides ended');

  const log = await connectionLog(proxy, key);
  t.equal(log.outcome, 'ok', 'logged as ok');
  t.equal(log.sni, HOSTNAME, 'the log names the SNI');
  t.equal(log.backend, backend.address, 'the log names the backend');
  t.equal(log.bytesFromClient, client.raw.bytesWritten, `bytesFromClient is every byte the client sent (${log.bytesFromClient})`);
  t.equal(log.bytesToClient, client.raw.bytesRead, `bytesToClient is every byte the client received (${log.bytesToClient})`);
  t.ok(typeof log.durationMs === 'number' && log.durationMs > 0, 'the log has the duration');
});

t.test('TCP half-close is passed on as such, in both directions (raw bytes after the hello)', async (t) => {
  const hello = await captureClientHello({ servername: HOSTNAME });
  const payload = Buffer.from('request body, then FIN\n');
  const reply = Buffer.from('reply, then FIN\n');
  const late = Buffer.alloc(256 * 1024, 0x6c);
  const seenByBackend: Array<Promise<Buffer>> = [];
  // First connection: the backend answers only after the client's FIN. Second: the backend sends FIN first.
  const backend = await startRawBackend((socket, index) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    seenByBackend.push(new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks)))));
    if (index === 0) socket.once('end', () => socket.end(reply));
    else socket.end(reply);
  });
  const proxy = await startProxy(proxyConfig(backend.address));
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
  });
  const port = proxy.port('stream');

  // Client FIN first.
  const first = await connectRaw(port);
  const firstOutcome = readUntilClosed(first);
  first.end(Buffer.concat([hello, payload]));
  await waitFor(() => seenByBackend.length > 0, 'the first backend connection', 20_000);
  t.same(
    await guard(seenByBackend[0]!, 30_000, 'the client FIN at the backend'),
    Buffer.concat([hello, payload]),
    "the backend got the hello, the payload and then the client's FIN",
  );
  const firstResult = await guard(firstOutcome, 30_000, 'the first connection to close');
  t.same(firstResult.received, reply, 'the client, after its FIN, still got the reply');
  t.equal(firstResult.endedBy, 'end', 'and then a FIN, not a reset');

  // Backend FIN first: the client keeps sending afterwards.
  const second = await connectRaw(port);
  const secondEnded = new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    second.on('data', (chunk: Buffer) => chunks.push(chunk));
    second.once('end', () => resolve(Buffer.concat(chunks)));
  });
  second.write(hello);
  t.same(await guard(secondEnded, 30_000, "the backend's FIN at the client"), reply, "the client got the reply and then the backend's FIN");
  t.notOk(second.destroyed, 'the client side is still open');
  second.end(late);
  await waitFor(() => seenByBackend.length > 1, 'the second backend connection', 20_000);
  t.same(
    await guard(seenByBackend[1]!, 30_000, 'the late bytes and FIN at the backend'),
    Buffer.concat([hello, late]),
    'the backend, after its FIN, still received everything and then the FIN',
  );
  await guard(closed(second), 30_000, 'the second connection to close');
});

t.test('half-close: the client ends its side and still receives the whole response', async (t) => {
  const responseSize = 1 * MiB;
  const request = Buffer.from('GET /everything\n');
  const backendGot: Array<Promise<Buffer>> = [];
  const backend = await startScriptedBackend(({ tls: socket }) => {
    // Answer only once the client has finished its request (its FIN / close_notify arrived).
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    backendGot.push(
      once(socket, 'end').then(() => {
        void sendSeeded(socket, 7, responseSize, { end: true }).catch(() => {});
        return Buffer.concat(chunks);
      }),
    );
  });
  const proxy = await startProxy(proxyConfig(backend.address));
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
  });

  const client = await connectClient(proxy.port('stream'));
  const key = clientKey(client.raw);
  const response = receiveAll(client.tls);
  client.tls.end(request);
  const received = await guard(response, 10_000, 'the response after half-close');
  t.equal(received.bytes, responseSize, 'the whole 1 MiB response arrived after the client half-closed');
  t.equal(received.sha256, expectedHash(7, responseSize), 'response SHA-256 matches');
  t.same(await guard(backendGot[0]!, 30_000, 'backend request'), request, 'the backend received the request and then the end');

  await guard(closed(client.raw), 30_000, 'the client connection to close after both sides ended');
  const log = await connectionLog(proxy, key);
  t.equal(log.outcome, 'ok', 'logged as ok');
});

t.test('half-close: the backend ends its side and still receives everything the client sends', async (t) => {
  const uploadSize = 1 * MiB;
  const greeting = Buffer.from('send me your data\n');
  let backendReceived: Promise<Received> | null = null;
  const backend = await startScriptedBackend(({ tls: socket }) => {
    backendReceived = receiveAll(socket);
    socket.end(greeting); // the backend's side is done at once
  });
  const proxy = await startProxy(proxyConfig(backend.address));
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
  });

  const client = await connectClient(proxy.port('stream'));
  const key = clientKey(client.raw);
  const fromBackend = await guard(receiveAll(client.tls), 30_000, 'the backend half-close to reach the client');
  t.equal(fromBackend.bytes, greeting.length, 'the client read the greeting and then the end');
  t.notOk(client.tls.destroyed, 'the client connection is still open for writing');

  const sentHash = await guard(sendSeeded(client.tls, 8, uploadSize, { end: true }), 10_000, 'the upload');
  t.ok(backendReceived, 'the backend saw the session');
  const received = await guard(backendReceived!, 10_000, 'the backend to receive the upload');
  t.equal(received.bytes, uploadSize, 'the backend received the whole 1 MiB after it had half-closed');
  t.equal(received.sha256, sentHash, 'upload SHA-256 matches');

  await guard(closed(client.raw), 30_000, 'the client connection to close after both sides ended');
  const log = await connectionLog(proxy, key);
  t.equal(log.outcome, 'ok', 'logged as ok');
});

t.test('backpressure: a client that does not read keeps the proxy memory bounded', async (t) => {
  const size = 64 * MiB;
  const growthBound = 48 * MiB;
  let backendSent: Promise<string> | null = null;
  let backendSession: Session | null = null;
  const backend = await startScriptedBackend((session) => {
    backendSession = session;
    const socket = session.tls;
    // Start streaming once the client says so, so the baseline is taken with the session set up.
    socket.once('data', () => {
      backendSent = sendSeeded(socket, 9, size, { end: true });
      backendSent.catch(() => {});
    });
  });
  const proxy = await startProxy(proxyConfig(backend.address));
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
  });
  const pid = proxy.child.pid!;

  const client = await connectClient(proxy.port('stream'));
  client.tls.pause();
  const before = await rssBytes(pid);
  client.tls.write('go\n');

  // Wait (bounded) until the backend is stuck: blocked on a write and no byte left it for a while.
  let written = -1;
  let stableRounds = 0;
  for (let round = 0; round < 200 && stableRounds < 5; round++) {
    await sleep(100);
    const session = backendSession as Session | null;
    const now = session ? session.raw.bytesWritten : -1;
    stableRounds = now === written && session !== null && session.tls.writableNeedDrain ? stableRounds + 1 : 0;
    written = now;
  }
  const stalledRss = await rssBytes(pid);
  t.equal(stableRounds, 5, `the backend stalled (its writes blocked after about ${(written / MiB).toFixed(1)} MiB)`);
  t.ok(written < size, 'the backend could not push the whole stream into a client that does not read');
  const growth = stalledRss - before;
  t.ok(
    growth < growthBound,
    `proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB (bound ${growthBound / MiB} MiB) while holding a stalled ${size / MiB} MiB stream`,
  );

  // Now read everything: nothing was lost while the stream was held back.
  const received = receiveAll(client.tls);
  client.tls.resume();
  const result = await guard(received, 30_000, 'reading the held-back stream');
  t.equal(result.bytes, size, `the client received all ${size / MiB} MiB`);
  t.equal(result.sha256, await guard(backendSent!, 30_000, 'backend send'), 'SHA-256 matches');
  // Informational only: after the transfer the RSS includes garbage the proxy's GC has not collected yet.
  t.comment(`proxy RSS after the transfer: ${(((await rssBytes(pid)) - before) / MiB).toFixed(1)} MiB above the baseline`);
  client.tls.end();
  await guard(closed(client.raw), 30_000, 'close');
});

t.test('a backend reset closes the client connection promptly (backend_error)', async (t) => {
  const backend = await startScriptedBackend(({ tls: socket, raw }) => {
    // Stream a little, then reset the TCP connection mid-stream.
    socket.once('data', () => {
      socket.write(Buffer.alloc(256 * 1024, 0x61), () => setTimeout(() => raw.resetAndDestroy(), 20));
    });
  });
  const proxy = await startProxy(proxyConfig(backend.address));
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
  });

  const client = await connectClient(proxy.port('stream'));
  const key = clientKey(client.raw);
  let received = 0;
  client.tls.on('data', (chunk: Buffer) => (received += chunk.length));
  const clientClosed = closed(client.tls);
  client.tls.write('start\n');
  const code = await guard(clientClosed, 30_000, 'the client connection to close after the backend reset');
  t.pass(`the client connection closed (${code ?? 'no error'}) after ${received} bytes`);
  t.ok(received > 0, 'data flowed before the reset');

  const log = await connectionLog(proxy, key);
  t.equal(log.outcome, 'backend_error', 'logged as backend_error');
  t.match(String(log.reason), /ECONNRESET|EPIPE/, `with the reason (${log.reason})`);
});

t.test('a client reset closes the backend connection promptly and is logged as such', async (t) => {
  const backendClosed: Array<Promise<string | null>> = [];
  const backend = await startScriptedBackend(({ tls: socket }) => {
    backendClosed.push(closed(socket));
    socket.pipe(socket);
  });
  const proxy = await startProxy(proxyConfig(backend.address));
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
  });

  const client = await connectClient(proxy.port('stream'));
  const key = clientKey(client.raw);
  client.tls.write('ping\n');
  t.equal(await guard(readLine(client.tls), 30_000, 'echo'), 'ping', 'the stream works before the reset');
  client.raw.resetAndDestroy();

  t.equal(backend.sessions.length, 1, 'one backend session');
  const code = await guard(backendClosed[0]!, 30_000, 'the backend connection to close after the client reset');
  t.pass(`the backend connection closed (${code ?? 'no error'})`);

  const log = await connectionLog(proxy, key);
  // A client's reset during the splice is a normal end (curl resets once it has its answer), on record as client_reset.
  const recorded = log.outcome === 'ok' && log.reason === 'client_reset';
  t.ok(recorded, `the log records the client's reset (outcome ${log.outcome}, reason ${log.reason})`);
});

t.test('idleTimeout: an idle connection is closed, a trickling one is not', async (t) => {
  const backend = await startTlsBackend(ca, 'idle-echo');
  // A backend that, once the client speaks, pushes one byte every 100 ms for 1 s and then ends.
  const pusher = await startScriptedBackend(({ tls: socket }) => {
    socket.once('data', async () => {
      for (let index = 0; index < 10 && !socket.destroyed; index++) {
        await sleep(100);
        socket.write(String.fromCharCode(0x41 + index));
      }
      socket.end();
    });
  });
  const proxy = await startProxy({
    listeners: [
      {
        name: 'stream',
        listen: '127.0.0.1:0',
        drainTimeout: '2s',
        idleTimeout: '300ms',
        routes: [
          { hostnames: [HOSTNAME], backends: [backend.address] },
          { hostnames: ['push.example.com'], backends: [pusher.address] },
        ],
      },
    ],
  });
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
    await pusher.close();
  });
  const port = proxy.port('stream');

  t.test('idle', async (t) => {
    const socket = await connectTls({ port, servername: HOSTNAME, ca: ca.cert });
    socket.on('error', () => {});
    const identity = JSON.parse(await readLine(socket)) as { backend: string };
    t.equal(identity.backend, 'idle-echo', 'the session reached the backend');
    const key = clientKey(socket);
    await guard(closed(socket), 30_000, 'the idle connection to be closed by the proxy');
    const log = await connectionLog(proxy, key);
    t.equal(log.outcome, 'idle_timeout', 'logged as idle_timeout');
  });

  t.test('a byte every 100 ms for 1 s', async (t) => {
    const socket = await connectTls({ port, servername: HOSTNAME, ca: ca.cert });
    socket.on('error', () => {});
    await readLine(socket);
    let closedEarly = false;
    socket.once('close', () => (closedEarly = true));
    let echoed = '';
    socket.on('data', (chunk: Buffer) => (echoed += chunk.toString('latin1')));
    const sent: string[] = [];
    for (let index = 0; index < 10 && !closedEarly; index++) {
      await sleep(100);
      const byte = String.fromCharCode(0x61 + index);
      socket.write(byte);
      sent.push(byte);
    }
    // Let the last echo come back (bounded).
    for (let round = 0; round < 50 && echoed.length < sent.length && !closedEarly; round++) await sleep(20);
    t.notOk(closedEarly, 'the connection stayed open for the whole second');
    t.equal(echoed, sent.join(''), 'every byte was echoed');
    const key = clientKey(socket);
    socket.end();
    await guard(closed(socket), 30_000, 'close after end');
    const log = await connectionLog(proxy, key);
    t.equal(log.outcome, 'ok', 'logged as ok, not idle_timeout');
  });

  t.test('bytes only from the backend (a byte every 100 ms for 1 s) also count as activity', async (t) => {
    const client = await connectClient(port, 'push.example.com');
    const key = clientKey(client.raw);
    let closedEarly = false;
    client.tls.once('close', () => (closedEarly = true));
    const pushed = receiveAll(client.tls);
    client.tls.write('start\n');
    const result = await guard(pushed, 30_000, 'the pushed bytes and the end');
    t.equal(result.bytes, 10, 'all 10 pushed bytes arrived, then the backend ended');
    t.notOk(closedEarly, 'the connection was not closed for idleness while the backend was sending');
    client.tls.end();
    await guard(closed(client.raw), 30_000, 'close after end');
    const log = await connectionLog(proxy, key);
    t.equal(log.outcome, 'ok', 'logged as ok, not idle_timeout');
  });
});

t.test('a backend that has not answered the hello yet is spliced all the same', async (t) => {
  const received: Buffer[][] = [];
  const backendClosed: Array<Promise<string | null>> = [];
  // Reads and never writes: the proxy must not wait for its first byte to pass on the client's bytes, reset or silence.
  const backend = await startRawBackend((socket, index) => {
    received[index] = [];
    socket.on('data', (chunk: Buffer) => received[index]!.push(chunk));
    backendClosed.push(closed(socket));
  });
  const proxy = await startProxy(proxyConfig(backend.address, { idleTimeout: '500ms' }));
  t.teardown(async () => {
    await proxy.stop();
    await backend.close();
  });
  const port = proxy.port('stream');
  const hello = await captureClientHello({ servername: HOSTNAME });
  const after = Buffer.from('bytes after the hello\n');
  const bytesAt = (index: number): number => Buffer.concat(received[index] ?? []).length;

  const talker = await connectRaw(port);
  talker.on('error', () => {});
  talker.write(hello);
  await waitFor(() => bytesAt(0) === hello.length, 'the hello at the backend', 20_000);
  talker.write(after);
  await waitFor(() => bytesAt(0) === hello.length + after.length, 'the later bytes at the backend', 20_000);
  t.ok(Buffer.concat(received[0]!).equals(Buffer.concat([hello, after])), 'the backend got the hello and the later bytes, unchanged');
  const idle = await connectionLog(proxy, clientKey(talker));
  t.equal(idle.outcome, 'idle_timeout', 'and idleTimeout closed the silent connection');

  const resetter = await connectRaw(port);
  resetter.on('error', () => {});
  resetter.write(hello);
  await waitFor(() => bytesAt(1) === hello.length, 'the second hello at the backend', 20_000);
  resetter.resetAndDestroy();
  t.equal(await guard(backendClosed[1]!, 30_000, 'the backend connection to close'), 'ECONNRESET', "the client's reset reached the backend as a reset");
});
