// Graceful shutdown through the compiled CLI: the line a signal prints says
// how long the drain may take (the longest drainTimeout among listeners with
// open connections) and that a second signal exits now; with nothing open it
// says the proxy exits now. Real TLS sessions through the proxy are held
// open to a real backend.
import t from 'tap';
import type tls from 'node:tls';
import { startTlsBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { type LogLine, startProxy } from '../helpers/proxy-process.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard, waitFor } from '../helpers/wait.js';

const GUARD_MS = 20_000;
const ca = await createCertificateAuthority();
const backend = await startTlsBackend(ca, 'A');
t.teardown(() => backend.close());

function listener(name: string, drainTimeout: string): Record<string, unknown> {
  return { name, listen: '127.0.0.1:0', drainTimeout, routes: [{ hostnames: ['a.example.com'], backends: [backend.address] }] };
}

/** A TLS session through the proxy, established end to end (the backend's first line read), left open. */
async function openSession(port: number, sessions: tls.TLSSocket[]): Promise<void> {
  const socket = await connectTls({ port, servername: 'a.example.com', ca: ca.cert });
  socket.on('error', () => {});
  sessions.push(socket);
  await readLine(socket);
}

const shuttingDown = (line: LogLine): boolean => line.msg.startsWith('shutting down');

t.test('open connections: how long it waits, for how many, and that a second signal exits now', async (t) => {
  const proxy = await startProxy({ listeners: [listener('short', '5s'), listener('long', '45s'), listener('idle', '10m')] });
  t.teardown(() => proxy.stop('SIGKILL'));
  const sessions: tls.TLSSocket[] = [];
  t.teardown(() => sessions.forEach((socket) => socket.destroy()));
  await openSession(proxy.port('short'), sessions);
  await openSession(proxy.port('short'), sessions);
  await openSession(proxy.port('long'), sessions);

  proxy.child.kill('SIGTERM');
  const line = await proxy.waitForLog(shuttingDown, GUARD_MS);
  t.equal(line.msg, 'shutting down: waiting up to 45s for 3 open connections (send SIGTERM or press Ctrl-C again to close them and exit now)');
  t.match(
    line,
    { level: 30, signal: 'SIGTERM', openConnections: 3, drainTimeoutMs: 45_000 },
    'the longest drainTimeout among listeners with connections (not the idle 10m one)',
  );
  t.equal(proxy.child.exitCode, null, 'still draining');

  proxy.child.kill('SIGINT');
  t.equal(await guard(proxy.exited, GUARD_MS, 'the exit after the second signal'), 0, 'the second signal exits now, with 0');
  t.ok(
    proxy.logs.some((entry) => entry.msg.startsWith('second signal')),
    'and says so',
  );
});

t.test('one open connection, Ctrl-C: singular, the listener’s own drainTimeout', async (t) => {
  const proxy = await startProxy({ listeners: [listener('public', '30s')] });
  t.teardown(() => proxy.stop('SIGKILL'));
  const sessions: tls.TLSSocket[] = [];
  t.teardown(() => sessions.forEach((socket) => socket.destroy()));
  await openSession(proxy.port('public'), sessions);
  proxy.child.kill('SIGINT');
  const line = await proxy.waitForLog(shuttingDown, GUARD_MS);
  t.equal(line.msg, 'shutting down: waiting up to 30s for 1 open connection (send SIGTERM or press Ctrl-C again to close it and exit now)');
  t.match(line, { signal: 'SIGINT', openConnections: 1, drainTimeoutMs: 30_000 });

  // The connection ends by itself: the proxy stops without a second signal.
  sessions[0]!.end();
  t.equal(await guard(proxy.exited, GUARD_MS, 'the exit once drained'), 0);
  await waitFor(() => proxy.logs.some((entry) => entry.msg === 'stopped'), 'the stopped line', GUARD_MS);
});

t.test('nothing open: it says it exits now, and does', async (t) => {
  const proxy = await startProxy({ listeners: [listener('public', '30s')] });
  t.teardown(() => proxy.stop('SIGKILL'));
  proxy.child.kill('SIGTERM');
  const line = await proxy.waitForLog(shuttingDown, GUARD_MS);
  t.equal(line.msg, 'shutting down: no open connections, exiting now');
  t.match(line, { openConnections: 0, drainTimeoutMs: 0 });
  t.equal(await guard(proxy.exited, GUARD_MS, 'the exit'), 0);
});
