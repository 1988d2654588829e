// dial() (lib/backends/dial.ts): TCP connects to backends with real sockets on
// loopback: IP addresses, DNS names resolved at connect time with every
// address tried in turn, error codes, and cancellation.
import t from 'tap';
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { dial } from '../../lib/backends/dial.js';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { unusedAddress } from '../helpers/backends.js';
import { guard, sleep } from '../helpers/wait.js';

interface Dialled {
  error: string | null;
  socket: net.Socket | null;
}

/** Dials and resolves with the (single) callback; counts callbacks so a second one is caught. */
const resolver = new HostResolver();

function dialOnce(host: string, port: number, timeout = 2_000): { result: Promise<Dialled>; calls(): number; cancel(): void } {
  let calls = 0;
  let cancel: () => void = () => {};
  const result = new Promise<Dialled>((resolve) => {
    cancel = dial(host, port, timeout, resolver, (error, socket) => {
      calls++;
      resolve({ error, socket });
    });
  });
  return {
    // Guarded only when awaited: a cancelled dial never settles.
    get result() {
      return guard(result, 30_000, `dial ${host}:${port}`);
    },
    calls: () => calls,
    cancel,
  };
}

/** A server that answers each connection with `hello <port>` and records which local address was reached. */
async function startServer(host: string): Promise<{ port: number; accepted: string[]; close(): Promise<void> }> {
  const accepted: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted.push(socket.localAddress ?? '?');
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.end('hello\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    accepted,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function readAll(socket: net.Socket): Promise<string> {
  return guard(
    new Promise((resolve, reject) => {
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    }),
    3_000,
    'reading from the dialled socket',
  );
}

/**
 * A loopback port that accepts no connection and refuses none: a listening
 * socket (backlog 1) in a child process whose event loop is blocked, with its
 * accept queue filled, so a further connect just hangs like a firewalled host.
 */
async function startBlackhole(): Promise<{ port: number; close(): void }> {
  const script = `
    const server = require('node:net').createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000); // never accept
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = Number(
    await guard(new Promise<string>((resolve) => child.stdout.once('data', (data) => resolve(String(data).trim()))), 30_000, 'blackhole port'),
  );
  // Fill the accept queue: these complete in the kernel, later ones hang.
  const fillers: net.Socket[] = [];
  for (let index = 0; index < 4; index++) {
    const filler = net.connect(port, '127.0.0.1');
    filler.on('error', () => {});
    fillers.push(filler);
  }
  await sleep(50);
  return {
    port,
    close: () => {
      for (const filler of fillers) filler.destroy();
      child.kill('SIGKILL');
    },
  };
}

const server = await startServer('127.0.0.1');
t.teardown(() => server.close());
const blackhole = await startBlackhole();
t.teardown(() => blackhole.close());

t.test('connects to a listening server by IPv4 address', async (t) => {
  const attempt = dialOnce('127.0.0.1', server.port);
  const { error, socket } = await attempt.result;
  t.equal(error, null);
  t.ok(socket instanceof net.Socket, 'a socket');
  t.equal(socket!.remotePort, server.port);
  t.equal(await readAll(socket!), 'hello\n', 'connected to that server');
  socket!.destroy();
  t.equal(attempt.calls(), 1, 'called back once');
});

const v6 = await startServer('::1').catch(() => null);
if (v6) t.teardown(() => v6.close());

t.test('connects by IPv6 address', { skip: v6 === null ? 'no IPv6 loopback on this machine' : false }, async (t) => {
  if (v6 === null) return;
  const { error, socket } = await dialOnce('::1', v6.port).result;
  t.equal(error, null);
  t.equal(await readAll(socket!), 'hello\n');
  socket!.destroy();
});

t.test('the socket keeps half-close and no Nagle for splicing', async (t) => {
  const { socket } = await dialOnce('127.0.0.1', server.port).result;
  t.equal(socket!.allowHalfOpen, true, 'allowHalfOpen: a backend FIN does not end our write side');
  await readAll(socket!);
  socket!.destroy();
});

t.test('a refused address calls back ECONNREFUSED and no socket', async (t) => {
  const address = await unusedAddress();
  const attempt = dialOnce('127.0.0.1', Number(address.split(':')[1]));
  t.same(await attempt.result, { error: 'ECONNREFUSED', socket: null });
  await sleep(20);
  t.equal(attempt.calls(), 1, 'called back once');
});

t.test('the DNS name localhost works', async (t) => {
  const { error, socket } = await dialOnce('localhost', server.port).result;
  t.equal(error, null);
  t.equal(await readAll(socket!), 'hello\n');
  socket!.destroy();
});

t.test('a DNS name whose addresses all refuse: the connect error, not a DNS error', async (t) => {
  const address = await unusedAddress();
  const { error, socket } = await dialOnce('localhost', Number(address.split(':')[1])).result;
  t.equal(error, 'ECONNREFUSED');
  t.equal(socket, null);
});

t.test('a name that does not resolve: ENOTFOUND-like code', async (t) => {
  const attempt = dialOnce('does-not-exist.invalid', server.port);
  const { error, socket } = await attempt.result;
  t.equal(socket, null);
  t.match(error, /^(ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL)$/, `a resolver error code (${error})`);
  await sleep(20);
  t.equal(attempt.calls(), 1, 'called back once');
});

t.test('cancel', async (t) => {
  t.test('during the connect: no callback', async (t) => {
    const attempt = dialOnce('127.0.0.1', server.port);
    attempt.cancel();
    await sleep(100);
    t.equal(attempt.calls(), 0, 'no callback after cancel');
  });

  t.test('during the DNS lookup: no callback', async (t) => {
    const attempt = dialOnce('localhost', server.port);
    attempt.cancel();
    await sleep(100);
    t.equal(attempt.calls(), 0);
  });

  t.test('of a name that does not resolve: no callback', async (t) => {
    const attempt = dialOnce('does-not-exist.invalid', server.port);
    attempt.cancel();
    await sleep(300);
    t.equal(attempt.calls(), 0);
  });

  t.test('of a refused connect: no callback', async (t) => {
    const address = await unusedAddress();
    const attempt = dialOnce('127.0.0.1', Number(address.split(':')[1]));
    attempt.cancel();
    await sleep(100);
    t.equal(attempt.calls(), 0);
  });

  t.test('while waiting on a connect that never completes: no callback, not even at the timeout', async (t) => {
    const attempt = dialOnce('127.0.0.1', blackhole.port, 100);
    await sleep(20);
    attempt.cancel();
    await sleep(250);
    t.equal(attempt.calls(), 0, 'no callback, not even connect_timeout');
  });

  t.test('after success: harmless', async (t) => {
    const attempt = dialOnce('127.0.0.1', server.port);
    const { socket } = await attempt.result;
    attempt.cancel();
    t.equal(socket!.destroyed, false, 'the connected socket is the caller’s now');
    t.equal(await readAll(socket!), 'hello\n');
    socket!.destroy();
  });
});

t.test('connect timeout: "connect_timeout" when an address does not answer', async (t) => {
  const attempt = dialOnce('127.0.0.1', blackhole.port, 100);
  t.same(await attempt.result, { error: 'connect_timeout', socket: null });
  await sleep(50);
  t.equal(attempt.calls(), 1, 'called back once');
});

const localhost = await lookup('localhost', { all: true, verbatim: true });
const dualStack = new Set(localhost.map((entry) => entry.family)).size === 2;

t.test(
  'every address of a name is tried in turn',
  { skip: dualStack ? false : `localhost resolves to ${localhost.map((entry) => entry.address).join(', ')} here, not to both ::1 and 127.0.0.1` },
  async (t) => {
    // Listen on only one family: whichever comes first in the resolver's order is refused, the other connects.
    for (const only of ['127.0.0.1', '::1']) {
      const single = await startServer(only);
      const { error, socket } = await dialOnce('localhost', single.port).result;
      t.equal(error, null, `listening on ${only} only: connected`);
      t.equal(await readAll(socket!), 'hello\n');
      t.same(single.accepted, [only], `reached over ${only}`);
      socket!.destroy();
      await single.close();
    }
  },
);
