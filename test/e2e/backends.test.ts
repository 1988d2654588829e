// Backend selection end to end through the compiled CLI: failover to the next
// backend when one refuses, does not answer the SYN, or takes the hello and
// resets without a byte; all backends down, weighted balancing, and a backend
// given by DNS name.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { startResettingBackend, startTlsBackend, unusedAddress, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { captureClientHello } from '../helpers/client-hello-fixtures.js';
import { startProxy, type LogLine } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed, type RawOutcome } from '../helpers/raw-client.js';
import { whoAnswers } from '../helpers/tls-client.js';
import { guard } from '../helpers/wait.js';

const ca = await createCertificateAuthority();

/**
 * Loopback addresses that accept no connection and refuse none: each is a
 * listening socket (backlog 1) in a child process whose event loop is blocked,
 * so nothing is ever accepted; once its accept queue is full the kernel drops
 * further SYNs and a connect there just hangs, like a firewalled host.
 */
async function startBlackholes(count: number): Promise<{ addresses: string[]; close(): void }> {
  const script = `
    const net = require('node:net');
    const servers = Array.from({ length: ${count} }, () => net.createServer());
    let ready = 0;
    for (const server of servers) server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      if (++ready < servers.length) return;
      process.stdout.write(servers.map((s) => s.address().port).join(' ') + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000); // never accept
      process.exit(0);
    });`;
  const child: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: net.Socket[] = [];
  const close = (): void => {
    for (const filler of fillers) filler.destroy();
    child.kill('SIGKILL');
  };
  try {
    const [line] = (await guard(once(child.stdout!, 'data'), 30_000, 'the blackhole process to listen')) as [Buffer];
    const ports = String(line).trim().split(' ').map(Number);
    for (const port of ports) {
      // Fill the accept queue: connections complete until it is full, then one hangs (its SYN is dropped).
      let filled = false;
      for (let attempt = 0; attempt < 8 && !filled; attempt++) {
        const filler = net.connect(port, '127.0.0.1');
        filler.on('error', () => {});
        fillers.push(filler);
        const connected = await Promise.race([once(filler, 'connect').then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, 800, false))]);
        if (!connected) filled = true;
      }
      if (!filled) throw new Error(`could not fill the accept queue of port ${port}`);
    }
    return { addresses: ports.map((port) => `127.0.0.1:${port}`), close };
  } catch (error) {
    close();
    throw error;
  }
}

const backendA = await startTlsBackend(ca, 'a');
const weight1 = await startTlsBackend(ca, 'weight-1');
const weight3 = await startTlsBackend(ca, 'weight-3');
const byName = await startTlsBackend(ca, 'by-name');
const resetter = await startResettingBackend();
const lastResetter = await startResettingBackend('last-resetting');
const backends: TestBackend[] = [backendA, weight1, weight3, byName, resetter, lastResetter];
const blackholes = await startBlackholes(2);
// A distinct dead address per route: backend failure state is kept per address.
const [downBeforeA, downOne, downTwo] = [await unusedAddress(), await unusedAddress(), await unusedAddress()];
const connectTimeoutMs = 300;

const proxy = await startProxy({
  listeners: [
    {
      name: 'backends',
      listen: '127.0.0.1:0',
      connectTimeout: `${connectTimeoutMs}ms`,
      drainTimeout: '2s', // a failed test's teardown need not wait the default 30 s
      routes: [
        { hostnames: ['failover.example.com'], backends: [downBeforeA, backendA.address] },
        { hostnames: ['all-down.example.com'], backends: [downOne, downTwo] },
        { hostnames: ['slow-first.example.com'], backends: [blackholes.addresses[0], backendA.address] },
        { hostnames: ['slow-only.example.com'], backends: [blackholes.addresses[1]] },
        {
          hostnames: ['weighted.example.com'],
          backends: [
            { address: weight1.address, weight: 1 },
            { address: weight3.address, weight: 3 },
          ],
        },
        { hostnames: ['by-name.example.com'], backends: [`localhost:${byName.port}`] },
        { hostnames: ['reset-first.example.com'], backends: [resetter.address, backendA.address] },
        { hostnames: ['resets-only.example.com'], backends: [lastResetter.address] },
      ],
    },
  ],
});
const port = proxy.port('backends');

t.teardown(async () => {
  await proxy.stop();
  blackholes.close();
  await Promise.all(backends.map((backend) => backend.close()));
});

const logsFor = (sni: string): LogLine[] => proxy.connectionLogs().filter((line) => line.sni === sni);

/** Waits (bounded) until `count` connection lines for `sni` are logged. */
async function waitForLogs(sni: string, count: number): Promise<LogLine[]> {
  await proxy.waitForLog(() => logsFor(sni).length >= count, 5_000);
  return logsFor(sni);
}

/** Sends a ClientHello for `servername` on a raw socket and collects how the proxy ends the connection. */
async function helloAndWaitForClose(servername: string, guardMs: number): Promise<{ outcome: RawOutcome; client: string }> {
  const hello = await captureClientHello({ servername });
  const socket = await connectRaw(port);
  const client = `127.0.0.1:${socket.localPort}`;
  const closed = readUntilClosed(socket);
  socket.write(hello);
  try {
    return { outcome: await guard(closed, guardMs, `the proxy to close the ${servername} connection`), client };
  } finally {
    socket.destroy();
  }
}

t.test('a backend that is down is skipped for the next one; the client never notices', async (t) => {
  const sni = 'failover.example.com';
  for (let index = 0; index < 4; index++) {
    const answer = await guard(whoAnswers({ port, servername: sni, ca: ca.cert }), 30_000, `connection ${index + 1}`);
    t.equal(answer.backend, 'a', `connection ${index + 1} is served by the live backend`);
    t.ok(answer.authorized, `connection ${index + 1}: its certificate verifies`);
    t.equal(answer.sni, sni, `connection ${index + 1}: the backend saw the SNI`);
  }
  const logs = await waitForLogs(sni, 4);
  t.equal(logs.length, 4, 'one log line per connection');
  for (const line of logs) {
    t.equal(line.outcome, 'ok', 'outcome ok');
    t.equal(line.backend, backendA.address, 'the log names the backend that served it');
  }
});

t.test('all backends down: the client is closed promptly (backend_unreachable)', async (t) => {
  const { outcome, client } = await helloAndWaitForClose('all-down.example.com', 4_000);
  t.pass(`closed by the proxy (${outcome.endedBy}${outcome.errorCode ? ` ${outcome.errorCode}` : ''}) after sending ${outcome.received.length} bytes`);
  const log = await proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, 5_000);
  t.equal(log.outcome, 'backend_unreachable', 'logged as backend_unreachable');
  t.equal(log.sni, 'all-down.example.com', 'the log names the SNI');
  t.ok(typeof log.reason === 'string' && log.reason.length > 0, `with a reason (${log.reason})`);
  t.ok([downOne, downTwo].includes(String(log.backend)), `the log names a backend tried (${log.backend})`);
});

t.test('connectTimeout: a backend that never answers the SYN is given up for the next one', async (t) => {
  const answer = await guard(whoAnswers({ port, servername: 'slow-first.example.com', ca: ca.cert }), 30_000, 'the failover connection');
  t.equal(answer.backend, 'a', 'served by the next backend after the connect timeout');
  t.ok(answer.authorized, 'its certificate verifies');
  const [log] = await waitForLogs('slow-first.example.com', 1);
  t.equal(log!.outcome, 'ok', 'outcome ok');
  t.equal(log!.backend, backendA.address, 'the log names the backend that served it');
});

t.test('connectTimeout: with only a silent backend the client is closed (backend_unreachable)', async (t) => {
  // The guard is far below the 5 s default, so it also shows the listener's connectTimeout applies.
  const { outcome, client } = await helloAndWaitForClose('slow-only.example.com', 3_000);
  t.pass(`closed by the proxy (${outcome.endedBy}${outcome.errorCode ? ` ${outcome.errorCode}` : ''})`);
  const log = await proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, 5_000);
  t.equal(log.outcome, 'backend_unreachable', 'logged as backend_unreachable');
  t.equal(log.reason, 'connect_timeout', 'the reason is the connect timeout');
  t.equal(log.backend, blackholes.addresses[1], 'the log names the silent backend');
});

t.test('weights 1 and 3 over 200 sequential connections give 50 and 150', async (t) => {
  const sni = 'weighted.example.com';
  const counts: Record<string, number> = {};
  const deadline = Date.now() + 30_000;
  for (let index = 0; index < 200 && Date.now() < deadline; index++) {
    const answer = await guard(whoAnswers({ port, servername: sni, ca: ca.cert }), 30_000, `connection ${index + 1}`);
    counts[answer.backend] = (counts[answer.backend] ?? 0) + 1;
  }
  const light = counts['weight-1'] ?? 0;
  const heavy = counts['weight-3'] ?? 0;
  t.equal(light + heavy, 200, `all 200 connections were served (${JSON.stringify(counts)})`);
  t.ok(Math.abs(light - 50) <= 2, `weight 1 got ${light} (50 ± 2)`);
  t.ok(Math.abs(heavy - 150) <= 2, `weight 3 got ${heavy} (150 ± 2)`);
  t.equal(weight1.accepted + weight3.accepted, 200, 'the backends saw exactly 200 sessions');

  const logs = await waitForLogs(sni, 200);
  const logged = {
    light: logs.filter((line) => line.backend === weight1.address).length,
    heavy: logs.filter((line) => line.backend === weight3.address).length,
  };
  t.same(logged, { light, heavy }, 'the log lines agree on which backend served each connection');
});

t.test('a backend given by DNS name (localhost:PORT) works', async (t) => {
  const sni = 'by-name.example.com';
  const answer = await guard(whoAnswers({ port, servername: sni, ca: ca.cert }), 30_000, 'the connection');
  t.equal(answer.backend, 'by-name', 'served by the backend behind localhost');
  t.ok(answer.authorized, 'its certificate verifies');
  const [log] = await waitForLogs(sni, 1);
  t.equal(log!.outcome, 'ok', 'outcome ok');
  t.equal(log!.backend, `localhost:${byName.port}`, 'the log names the backend as configured');
});

t.test('a backend that takes the hello and resets without answering: the next backend serves the client', async (t) => {
  const sni = 'reset-first.example.com';
  // Round robin over two backends: every other connection tries the resetting one first.
  for (let index = 0; index < 8; index++) {
    const answer = await guard(whoAnswers({ port, servername: sni, ca: ca.cert }), 30_000, `connection ${index + 1}`);
    t.equal(answer.backend, 'a', `connection ${index + 1} is served by the backend that answers`);
    t.ok(answer.authorized, `connection ${index + 1}: its certificate verifies (the hello was replayed intact)`);
  }
  const logs = await waitForLogs(sni, 8);
  t.ok(
    logs.every((line) => line.outcome === 'ok' && line.backend === backendA.address),
    'every line: ok, on the answering backend',
  );
  t.equal(logs.filter((line) => line.attempts === 2).length, 4, 'four connections went through the resetting backend first');
  t.equal(resetter.accepted, 4, 'and it kept being tried: closing before an answer does not count against its health (maxFails 3)');
});

t.test('the only backend takes the hello and resets: the reset is passed on (backend_error)', async (t) => {
  const { outcome, client } = await helloAndWaitForClose('resets-only.example.com', 4_000);
  t.equal(outcome.received.length, 0, 'nothing reached the client');
  const log = await proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, 5_000);
  t.equal(log.outcome, 'backend_error');
  t.equal(log.reason, 'ECONNRESET');
  t.equal(lastResetter.accepted, 1);
});
