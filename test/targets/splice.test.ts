// Splice (lib/targets/splice.ts) between two real TCP connections inside this
// process: the proxy's client socket (accepted end of one pair) and its
// backend socket (connecting end of another), with the test playing the
// client and the backend at the far ends.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type net from 'node:net';
import t, { type Test } from 'tap';
import { Splice, type SpliceOwner, type SpliceTimeouts } from '../../lib/targets/splice.js';
import { socketPair } from '../helpers/socket-pair.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';

class RecordingOwner implements SpliceOwner {
  answered = 0;
  failures: string[] = [];
  backendAnswered(): void {
    this.answered++;
  }
  backendFailed(error: NodeJS.ErrnoException): void {
    this.failures.push(error.code ?? error.message);
  }
}

interface Spliced {
  /** The test's client and backend, at the far ends. */
  client: net.Socket;
  backend: net.Socket;
  /** The proxy's two sockets. */
  proxyClient: net.Socket;
  proxyBackend: net.Socket;
  owner: RecordingOwner;
  splice: Splice;
}

async function spliced(t: Test, timeouts: SpliceTimeouts = { idleTimeout: 0, halfCloseTimeout: 0 }, start = true): Promise<Spliced> {
  const front = await socketPair();
  const back = await socketPair();
  const sockets = [front.accepted, front.peer, back.accepted, back.peer];
  for (const socket of sockets) socket.on('error', () => {});
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
  });
  back.accepted.resume();
  const owner = new RecordingOwner();
  const splice = new Splice(front.accepted, back.peer, owner, timeouts);
  if (start) splice.start();
  return { client: front.peer, backend: back.accepted, proxyClient: front.accepted, proxyBackend: back.peer, owner, splice };
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Everything `socket` receives until its peer ends. */
function receiveAll(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return guard(
    once(socket, 'end').then(() => Buffer.concat(chunks)),
    20_000,
    'the far end ended',
  );
}

t.test('4 MiB each way arrive intact, at the same time; the backend’s first byte is reported once', async (t) => {
  const { client, backend, owner } = await spliced(t);
  const upload = randomBytes(4 * 1024 * 1024);
  const download = randomBytes(4 * 1024 * 1024);
  const uploaded = receiveAll(backend);
  const downloaded = receiveAll(client);
  client.end(upload);
  backend.end(download);
  t.equal(sha256(await uploaded), sha256(upload), 'client to backend');
  t.equal(sha256(await downloaded), sha256(download), 'backend to client');
  t.equal(owner.answered, 1);
});

t.test('half-close passes on as such: the client’s FIN reaches the backend, which still answers', async (t) => {
  const { client, backend, proxyClient, proxyBackend } = await spliced(t);
  const proxySocketsClosed = Promise.all([once(proxyClient, 'close'), once(proxyBackend, 'close')]);
  const request = receiveAll(backend);
  client.end('request');
  t.equal(String(await request), 'request', 'the backend got the request and the FIN');
  const response = receiveAll(client);
  backend.write('response part 1, ');
  await sleep(20);
  backend.end('part 2');
  t.equal(String(await response), 'response part 1, part 2', 'the client got the whole response after its own FIN');
  await guard(proxySocketsClosed, 30_000, 'both proxy sockets closed');
  t.pass('both proxy sockets closed once both directions were done');
});

t.test('a FIN that arrived before the splice is passed on when it starts', async (t) => {
  const pieces = await spliced(t, { idleTimeout: 0, halfCloseTimeout: 0 }, false);
  const { client, backend, proxyClient, splice } = pieces;
  client.end('early');
  proxyClient.resume();
  const early: Buffer[] = [];
  proxyClient.on('data', (chunk: Buffer) => early.push(chunk));
  await guard(once(proxyClient, 'end'), 30_000, 'the FIN at the proxy');
  proxyClient.removeAllListeners('data');
  proxyClient.pause();
  t.equal(String(Buffer.concat(early)), 'early');
  const received = receiveAll(backend);
  splice.start();
  t.equal(String(await received), '', 'the backend gets the FIN at once');
});

t.test('backpressure: a backend that does not read stops the client from being read', async (t) => {
  const { client, backend, proxyClient, proxyBackend } = await spliced(t);
  backend.pause();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let written = 0;
  // Keep the client writing (at most 256 MiB) until every buffer between it and the backend is full.
  while (!proxyClient.isPaused() && written < 256 * 1024 * 1024) {
    written += chunk.length;
    if (!client.write(chunk)) await guard(Promise.race([once(client, 'drain'), sleep(50)]), 10_000, 'the client drained');
  }
  t.ok(proxyClient.isPaused(), `the proxy stopped reading the client (after ${written} bytes)`);
  const readSoFar = proxyClient.bytesRead;
  await sleep(200);
  t.equal(proxyClient.bytesRead, readSoFar, 'nothing more is read while the backend does not read');
  t.ok(
    proxyBackend.writableLength <= 2 * chunk.length + proxyBackend.writableHighWaterMark,
    `the proxy holds at most about one read (${proxyBackend.writableLength} bytes)`,
  );
  const received = receiveAll(backend);
  backend.resume();
  client.end();
  t.equal((await received).length, written, 'once it reads again, every byte arrives');
});

t.test('a backend error is reported to the owner; a client error is not the splice’s to handle', async (t) => {
  const { backend, owner } = await spliced(t);
  backend.resetAndDestroy();
  await waitFor(() => owner.failures.length > 0, 'the backend error reported', 20_000);
  t.same(owner.failures, ['ECONNRESET']);
  t.equal(owner.answered, 0, 'the backend never answered');
});

t.test('stop(): both sockets as before the splice, paused, and nothing relayed any more', async (t) => {
  const pieces = await spliced(t, { idleTimeout: 0, halfCloseTimeout: 0 }, false);
  const { client, backend, proxyClient, proxyBackend, splice } = pieces;
  const events = ['data', 'end', 'drain', 'error'] as const;
  const counts = (socket: net.Socket) => events.map((event) => socket.listenerCount(event));
  const before = [counts(proxyClient), counts(proxyBackend)];
  splice.start();
  splice.stop();
  t.same([counts(proxyClient), counts(proxyBackend)], before, 'every handler it attached is detached');
  t.ok(proxyClient.isPaused() && proxyBackend.isPaused(), 'both paused');
  let relayed = 0;
  backend.on('data', (chunk: Buffer) => (relayed += chunk.length));
  client.write('after the splice was undone');
  await sleep(100);
  t.equal(relayed, 0, 'nothing reaches the backend');
});

t.test('idle timeout: the client socket times out after silence, not while bytes flow', async (t) => {
  const { client, proxyClient } = await spliced(t, { idleTimeout: 300, halfCloseTimeout: 0 });
  let timedOut = false;
  proxyClient.on('timeout', () => (timedOut = true));
  for (let index = 0; index < 6; index++) {
    client.write('x');
    await sleep(100);
  }
  t.notOk(timedOut, 'a byte every 100 ms keeps it open');
  await guard(once(proxyClient, 'timeout'), 10_000, 'the timeout after silence');
  t.pass('silence: timed out');
});

t.test('half-close timeout: armed once a side has sent its FIN, shorter than idle', async (t) => {
  const { client, proxyClient } = await spliced(t, { idleTimeout: 60_000, halfCloseTimeout: 200 });
  let timedOut = false;
  proxyClient.on('timeout', () => (timedOut = true));
  await sleep(400);
  t.notOk(timedOut, 'both sides open: only the idle timeout applies');
  client.end();
  await guard(once(proxyClient, 'timeout'), 10_000, 'the half-close timeout');
  t.ok(proxyClient.readableEnded, 'it fired after the client’s FIN');
});
