// The proxy at its file descriptor limit (run under `prlimit --nofile`):
// clients beyond what the descriptors allow are refused at once and
// reported, the connections already open keep working, and new clients are
// served again once descriptors free up.
import type net from 'node:net';
import t from 'tap';
import { startEchoBackend } from '../helpers/backends.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record } from '../helpers/client-hello-fixtures.js';
import { which } from '../helpers/programs.js';
import { startProxy } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { guard, waitFor } from '../helpers/wait.js';

const HELLO = record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName: 'app.example.com' }));
/** Low enough that a few dozen clients reach it; the proxy itself needs about 25 descriptors. */
const DESCRIPTOR_LIMIT = 64;
const GUARD_MS = 15_000;

const prlimit = await which('prlimit');

t.test(
  'at the descriptor limit: extra clients are refused at once and logged, open ones go on',
  { skip: prlimit ? false : 'prlimit (util-linux) is not installed' },
  async (t) => {
    const echo = await startEchoBackend();
    t.teardown(() => echo.close());
    const proxy = await startProxy(
      { listeners: [{ name: 'tight', listen: '127.0.0.1:0', default: { backends: [echo.address] } }] },
      { launcher: ['prlimit', `--nofile=${DESCRIPTOR_LIMIT}:${DESCRIPTOR_LIMIT}`] },
    );
    t.teardown(() => proxy.stop('SIGKILL'));
    const port = proxy.port('tight');

    /** A client whose hello was echoed back: it holds two of the proxy's descriptors. */
    const held: net.Socket[] = [];
    t.teardown(() => {
      for (const socket of held) socket.destroy();
    });
    let refused = 0;
    for (let index = 0; index < DESCRIPTOR_LIMIT && refused < 3; index++) {
      const client = await connectRaw(port).catch(() => null);
      if (client === null) {
        refused++; // reset before the connect completed here
        continue;
      }
      client.on('error', () => {});
      const served = guard(
        new Promise<boolean>((resolve) => {
          let received = 0;
          client.on('data', (chunk: Buffer) => {
            received += chunk.length;
            if (received >= HELLO.length) resolve(true);
          });
          client.once('close', () => resolve(false));
        }),
        GUARD_MS,
        `client ${index + 1} served or refused`,
      );
      client.write(HELLO);
      if ((await served) === true) held.push(client);
      else refused++;
    }
    t.ok(held.length >= 5, `${held.length} clients were served before the limit`);
    t.equal(refused, 3, 'then clients were refused');

    await proxy.waitForLog((line) => line.level === 40 && line.listener === 'tight' && line.reason === 'fd_limit', GUARD_MS);
    t.pass('the refusals are logged with reason fd_limit');

    // The open connections still work.
    const first = held[0]!;
    const echoed = new Promise<string>((resolve) => first.once('data', (chunk: Buffer) => resolve(String(chunk))));
    first.write('still there');
    t.equal(await guard(echoed, GUARD_MS, 'an echo on an open connection'), 'still there');

    // Closing some frees their descriptors: the next client is served.
    for (const socket of held.splice(0, 3)) socket.destroy();
    await waitFor(() => proxy.connectionLogs().length >= 3, 'the closed connections logged', GUARD_MS);
    const next = await connectRaw(port);
    held.push(next);
    const closed = readUntilClosed(next);
    next.end(HELLO);
    const outcome = await guard(closed, GUARD_MS, 'the next client served');
    t.ok(outcome.received.equals(HELLO), 'a new client is served again');
  },
);
