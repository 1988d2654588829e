// Backend health end to end through the compiled CLI: passive health (a
// backend killed mid-run is failed over transparently, marked down after
// `maxFails`, probed by exactly one connection after `failTimeout` even under
// concurrent traffic, and back when it answers; an abandoned probe does not
// keep it out), active health checks (`rise`/`fall`), health state kept across
// a reload, and a route whose backends are all down.
//
// Every wait is a guard against a hang, never a measurement.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { stringify } from 'yaml';
import { startTlsBackend, unusedAddress, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { captureClientHello } from '../helpers/client-hello-fixtures.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { connectTls, whoAnswers } from '../helpers/tls-client.js';
import { guard, sleep } from '../helpers/wait.js';

/** The `t` handed to a subtest (assertions included). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const CONNECTION_GUARD_MS = 10_000;
const LOG_GUARD_MS = 10_000;
const SNI = 'app.example.com';

const ca = await createCertificateAuthority();

/**
 * A TLS backend like `startTlsBackend` (identity line, then echo) that can be
 * stopped (server and sockets closed: connecting is refused) and started again
 * on the same port, or started for the first time on a port chosen beforehand.
 */
interface RestartableBackend extends TestBackend {
  start(): Promise<void>;
}

async function restartableBackend(name: string, port = 0): Promise<RestartableBackend> {
  const { key, cert } = await ca.issue(name, ['*.example.com', 'example.com']);
  let server: tls.Server | null = null;
  const sockets = new Set<net.Socket>();
  const backend: RestartableBackend = {
    name,
    port,
    address: port === 0 ? '' : `127.0.0.1:${port}`,
    accepted: 0,
    async start() {
      if (server) return;
      const next = tls.createServer({ key, cert, allowHalfOpen: true });
      next.on('connection', (socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      next.on('tlsClientError', () => {}); // health checks connect and leave without a handshake
      next.on('secureConnection', (socket) => {
        backend.accepted++;
        socket.on('error', () => {});
        const identity: BackendIdentity = { backend: name, sni: (socket as tls.TLSSocket & { servername?: string | false }).servername || null, alpn: null };
        socket.write(`${JSON.stringify(identity)}\n`);
        socket.pipe(socket);
      });
      // Listening again on a port just closed can meet a short EADDRINUSE on some kernels: a few bounded tries.
      for (let attempt = 1; ; attempt++) {
        try {
          await new Promise<void>((resolve, reject) => {
            next.once('error', reject);
            next.listen(backend.port, '127.0.0.1', () => {
              next.off('error', reject);
              resolve();
            });
          });
          break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw error;
          await sleep(100);
        }
      }
      server = next;
      backend.port = (next.address() as net.AddressInfo).port;
      backend.address = `127.0.0.1:${backend.port}`;
    },
    close() {
      const current = server;
      server = null;
      if (!current) return Promise.resolve();
      return new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        current.close(() => resolve());
      });
    },
  };
  return backend;
}

/** A backend that is not listening yet, on a port known now (for the config). */
async function backendDownAtStart(name: string): Promise<RestartableBackend> {
  const address = await unusedAddress();
  return restartableBackend(name, Number(address.split(':').pop()));
}

/**
 * Makes `port` on 127.0.0.1 a place where a connect hangs: a listening socket
 * (backlog 1) in a child process whose event loop is blocked, its accept queue
 * filled, so further SYNs are dropped (as in test/e2e/backends.test.ts).
 * `close` kills it and frees the port.
 */
async function blackholeOn(port: number): Promise<{ port: number; close(): Promise<void> }> {
  const script = `
    const server = require('node:net').createServer();
    server.listen({ port: ${port}, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write('listening\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000); // never accept
      process.exit(0);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const fillers: net.Socket[] = [];
  const close = async (): Promise<void> => {
    for (const filler of fillers) filler.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    await guard(once(child.stdout!, 'data'), 30_000, 'the blackhole process to listen');
    for (let attempt = 0; attempt < 8; attempt++) {
      const filler = net.connect(port, '127.0.0.1');
      filler.on('error', () => {});
      fillers.push(filler);
      const connected = await Promise.race([once(filler, 'connect').then(() => true), sleep(800).then(() => false)]);
      if (!connected) return { port, close };
    }
    throw new Error(`could not fill the accept queue of port ${port}`);
  } catch (error) {
    await close();
    throw error;
  }
}

function proxyConfig(route: Record<string, unknown>, hostnames = [SNI]): Record<string, unknown> {
  return {
    listeners: [
      {
        name: 'health',
        listen: '127.0.0.1:0',
        drainTimeout: '1s', // a failed test's teardown need not wait the default 30 s
        routes: [{ hostnames, ...route }],
      },
    ],
  };
}

const isHealthLine = (line: LogLine, state: 'down' | 'up', backend: string): boolean => line.msg === `backend ${state}` && line.backend === backend;
const healthLines = (proxy: ProxyProcess, state: 'down' | 'up', backend: string): LogLine[] => proxy.logs.filter((line) => isHealthLine(line, state, backend));

/** Sequential sessions to `sni`, each guarded; who answered each. Bounded in count and time. */
async function sequential(port: number, count: number, sni = SNI): Promise<string[]> {
  const answers: string[] = [];
  const deadline = Date.now() + 60_000;
  for (let index = 0; index < count && Date.now() < deadline; index++) {
    answers.push((await guard(whoAnswers({ port, servername: sni, ca: ca.cert }), CONNECTION_GUARD_MS, `connection ${index + 1}`)).backend);
  }
  if (answers.length < count) throw new Error(`only ${answers.length} of ${count} connections within the loop guard`);
  return answers;
}

/** Waits (bounded) until the proxy has logged `count` connection lines in all. */
async function waitForConnectionLogs(proxy: ProxyProcess, count: number): Promise<LogLine[]> {
  await proxy.waitForLog(() => proxy.connectionLogs().length >= count, LOG_GUARD_MS);
  return proxy.connectionLogs();
}

function tally(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

/** Stops the proxy, then the backends, when the subtest ends. */
function cleanUp(t: Test, proxy: ProxyProcess, backends: TestBackend[]): void {
  t.teardown(async () => {
    await proxy.stop();
    await Promise.all(backends.map((backend) => backend.close()));
  });
}

t.test('a backend killed mid-run: no client fails, it is marked down, probed after failTimeout, and comes back', async (t) => {
  const a = await startTlsBackend(ca, 'a');
  const b = await restartableBackend('b');
  await b.start();
  const port0 = b.port;
  const proxy = await startProxy(proxyConfig({ backends: [a.address, b.address], failTimeout: '500ms' }));
  cleanUp(t, proxy, [a, b]);
  const port = proxy.port('health');

  // 100 sequential connections; B is killed (server and its sockets closed) after 30.
  const answers: string[] = [];
  const deadline = Date.now() + 60_000;
  for (let index = 0; index < 100 && Date.now() < deadline; index++) {
    if (index === 30) await b.close();
    const answer = await guard(whoAnswers({ port, servername: SNI, ca: ca.cert }), CONNECTION_GUARD_MS, `connection ${index + 1}`).catch(
      (error: Error) => error,
    );
    answers.push(answer instanceof Error ? `failed: ${answer.message}` : answer.backend);
  }
  const beforeKill = tally(answers.slice(0, 30));
  const afterKill = tally(answers.slice(30));
  t.comment(`measured: first 30 ${JSON.stringify(beforeKill)}; last 70 (B killed) ${JSON.stringify(afterKill)}`);
  t.equal(answers.length, 100, '100 connections made');
  t.same(afterKill, { a: 70 }, 'after the kill every one of the 70 clients got an identity line, from A: none failed');
  t.same(beforeKill, { a: 15, b: 15 }, 'before it, round robin split 15/15 (exact)');

  const down = await proxy.waitForLog((line) => isHealthLine(line, 'down', b.address), LOG_GUARD_MS);
  t.equal(down.cause, 'connect_failures', 'B is marked down with cause connect_failures');
  const logs = await waitForConnectionLogs(proxy, 100);
  t.notOk(
    logs.some((line) => line.outcome === 'backend_unreachable'),
    'no connection was logged backend_unreachable',
  );
  const failedOver = logs.filter((line) => line.attempts === 2);
  t.ok(failedOver.length >= 3, `${failedOver.length} connections tried B first and failed over (maxFails 3 needs 3)`);
  t.ok(
    failedOver.every((line) => line.backend === a.address && line.outcome === 'ok'),
    'each of them was served by A (outcome ok, the log names A)',
  );

  // Still dead after failTimeout: one connection probes B again, fails over to A, and B stays down.
  await sleep(600);
  const probeStart = proxy.connectionLogs().length;
  let probes: LogLine[] = [];
  const probeAnswers: string[] = [];
  for (let index = 0; index < 40 && probes.length === 0; index++) {
    probeAnswers.push(...(await sequential(port, 1)));
    const logged = await waitForConnectionLogs(proxy, probeStart + index + 1);
    probes = logged.slice(probeStart).filter((line) => line.attempts === 2);
  }
  t.equal(probes.length, 1, `after failTimeout a connection tried B again (attempts 2) within ${probeAnswers.length} connections`);
  t.same(tally(probeAnswers), { a: probeAnswers.length }, 'and that client was still served, by A');
  t.equal(healthLines(proxy, 'down', b.address).length, 1, 'a failed probe logs no second `backend down`');
  t.equal(healthLines(proxy, 'up', b.address).length, 0, 'and no `backend up`');

  // B comes back on the same port; after failTimeout one connection probes it, succeeds, and B is up.
  await b.start();
  t.equal(b.port, port0, 'B listens again on its old port');
  const acceptedBefore = b.accepted;
  await sleep(600);
  const comeback: string[] = [];
  for (let index = 0; index < 40 && healthLines(proxy, 'up', b.address).length === 0; index++) {
    comeback.push(...(await sequential(port, 1)));
    await sleep(20); // lets the `backend up` line arrive
  }
  const up = await proxy.waitForLog((line) => isHealthLine(line, 'up', b.address), LOG_GUARD_MS);
  t.equal(up.cause, 'recovered', `B is up again with cause recovered (after ${comeback.length} connections: ${comeback.join(',')})`);
  t.ok(comeback.includes('b'), 'the probe connection was served by B');

  const after = await sequential(port, 20);
  const shares = tally(after);
  t.comment(`measured after recovery: ${JSON.stringify(shares)}`);
  t.ok(Math.abs((shares.b ?? 0) - 10) <= 2, `B gets its share again: ${shares.b ?? 0} of 20 (10 ± 2)`);
  t.ok(b.accepted > acceptedBefore, `B accepted ${b.accepted - acceptedBefore} sessions since it came back`);
  t.equal(healthLines(proxy, 'down', b.address).length, 1, 'one `backend down` line for B in all');
  t.equal(healthLines(proxy, 'up', b.address).length, 1, 'one `backend up` line for B in all');
});

t.test('after failTimeout exactly one connection probes a down backend; the others do not wait for it', async (t) => {
  const a = await startTlsBackend(ca, 'a');
  const blackhole = await blackholeOn(Number((await unusedAddress()).split(':').pop()));
  t.teardown(() => blackhole.close());
  const silent = `127.0.0.1:${blackhole.port}`;
  const config = proxyConfig({ backends: [a.address, silent], maxFails: 1, failTimeout: '1s' });
  // The probe hangs for connectTimeout; the margins (2 s of probe, then 1 s of failTimeout) are far above the
  // few milliseconds 10 concurrent clients take to be routed, so all of them arrive while the one probe is out.
  (config.listeners as Array<Record<string, unknown>>)[0]!.connectTimeout = '2s';
  const proxy = await startProxy(config);
  cleanUp(t, proxy, [a]);
  const port = proxy.port('health');

  // Round robin: the second connection dials the silent backend, times out, fails over to A; maxFails 1 takes it out.
  const first = await sequential(port, 2);
  t.same(first, ['a', 'a'], 'the first 2 clients are served by A');
  const down = await proxy.waitForLog((line) => isHealthLine(line, 'down', silent), LOG_GUARD_MS);
  t.equal(down.cause, 'connect_failures', 'the silent backend is marked down (connect_failures)');

  await sleep(1_100); // past failTimeout
  const startIndex = proxy.connectionLogs().length;
  const answers = await guard(
    Promise.all(Array.from({ length: 10 }, () => whoAnswers({ port, servername: SNI, ca: ca.cert }).then((answer) => answer.backend))),
    CONNECTION_GUARD_MS,
    '10 concurrent clients',
  );
  t.same(tally(answers), { a: 10 }, '10 concurrent clients after failTimeout: all served by A');
  const logs = (await waitForConnectionLogs(proxy, startIndex + 10)).slice(startIndex);
  const attempts = logs.map((line) => Number(line.attempts)).sort();
  t.comment(`attempts of the 10: ${attempts.join(',')}`);
  t.same(attempts, [1, 1, 1, 1, 1, 1, 1, 1, 1, 2], 'exactly one of them dialled the down backend (attempts 2); the other 9 went straight to A');
  t.ok(
    logs.every((line) => line.outcome === 'ok' && line.backend === a.address),
    'all 10 outcome ok, served by A',
  );
  t.equal(healthLines(proxy, 'down', silent).length, 1, 'the failed probe logs no second `backend down`');
});

/**
 * Sends a ClientHello for SNI on a raw socket, leaves (destroy) after `leaveAfterMs`, and returns the
 * connection's log line. `leaveAfterMs` only gives the proxy time to route the hello and start dialling.
 */
async function clientLeavingMidDial(proxy: ProxyProcess, port: number, leaveAfterMs: number): Promise<LogLine> {
  const hello = await captureClientHello({ servername: SNI });
  const socket = await connectRaw(port);
  const client = `127.0.0.1:${socket.localPort}`;
  const closed = readUntilClosed(socket);
  socket.write(hello);
  await sleep(leaveAfterMs);
  // A reset: a client that only half-closes may still be waiting for its answer, and the dial goes on for it.
  socket.resetAndDestroy();
  await guard(closed, CONNECTION_GUARD_MS, 'the client socket to close');
  return proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client, LOG_GUARD_MS);
}

t.test('a down backend whose probe connection hangs and whose client leaves mid-dial is probed again later and comes back', async (t) => {
  const b = await backendDownAtStart('b');
  const config = proxyConfig({ backends: [b.address], maxFails: 1, failTimeout: '500ms' });
  (config.listeners as Array<Record<string, unknown>>)[0]!.connectTimeout = '3s';
  const proxy = await startProxy(config);
  cleanUp(t, proxy, [b]);
  const port = proxy.port('health');

  // Nothing listens: one refused connect takes B out (maxFails 1).
  await t.rejects(
    guard(connectTls({ port, servername: SNI, ca: ca.cert }), CONNECTION_GUARD_MS, 'the proxy to close the client'),
    'the first client is closed',
  );
  await proxy.waitForLog((line) => isHealthLine(line, 'down', b.address), LOG_GUARD_MS);
  t.pass('B is marked down after one refused connect');

  // After failTimeout the next client is the one probing B, but B now hangs on connect, and that client leaves.
  const blackhole = await blackholeOn(b.port);
  t.teardown(() => blackhole.close());
  await sleep(600);
  const probeLog = await clientLeavingMidDial(proxy, port, 1_000);
  t.same(
    [probeLog.attempts, probeLog.backend],
    [1, b.address],
    `that client's connection was the one dialling B (outcome ${probeLog.outcome}, reason ${probeLog.reason})`,
  );

  // B comes back for real on its port: after failTimeout a connection probes it again and finds it up.
  await blackhole.close();
  await b.start();
  await sleep(600);
  const outcomes: string[] = [];
  for (let index = 0; index < 20 && healthLines(proxy, 'up', b.address).length === 0; index++) {
    const before = proxy.connectionLogs().length;
    const answer = await guard(whoAnswers({ port, servername: SNI, ca: ca.cert }), CONNECTION_GUARD_MS, `client ${index + 1}`).catch((error: Error) => error);
    const log = (await waitForConnectionLogs(proxy, before + 1)).at(-1);
    outcomes.push(answer instanceof Error ? `failed (${log?.outcome} ${log?.reason})` : answer.backend);
    await sleep(200);
  }
  t.comment(`clients after B came back: ${outcomes.join(', ')}`);
  t.ok(outcomes.includes('b'), 'B serves clients again: the abandoned probe did not keep it out for good');
  const up = await proxy.waitForLog((line) => isHealthLine(line, 'up', b.address), LOG_GUARD_MS);
  t.equal(up.cause, 'recovered', 'B is logged up again (cause recovered)');
});

t.test('a client that resets while its backend is being dialled is noticed: the dial stops and the connection is client_closed', async (t) => {
  const blackhole = await blackholeOn(Number((await unusedAddress()).split(':').pop()));
  t.teardown(() => blackhole.close());
  const silent = `127.0.0.1:${blackhole.port}`;
  const config = proxyConfig({ backends: [silent] });
  (config.listeners as Array<Record<string, unknown>>)[0]!.connectTimeout = '5s';
  const proxy = await startProxy(config);
  cleanUp(t, proxy, []);
  const log = await clientLeavingMidDial(proxy, proxy.port('health'), 1_000);
  t.same(
    [log.outcome, log.reason, log.attempts, log.backend],
    ['client_closed', 'ECONNRESET', 1, silent],
    `the client reset during the dial: client_closed (logged after ${log.durationMs} ms)`,
  );
});

t.test('active health checks: a backend down at start is never chosen, then used after `rise` passing checks', async (t) => {
  const a = await startTlsBackend(ca, 'a');
  const b = await backendDownAtStart('b');
  // maxFails 0 turns passive health off: any backend left out here is left out by the health checks.
  const proxy = await startProxy(
    proxyConfig({
      backends: [a.address, b.address],
      maxFails: 0,
      healthCheck: { interval: '200ms', timeout: '200ms', rise: 2, fall: 2 },
    }),
  );
  cleanUp(t, proxy, [a, b]);
  const port = proxy.port('health');

  const down = await proxy.waitForLog((line) => isHealthLine(line, 'down', b.address), LOG_GUARD_MS);
  t.equal(down.cause, 'health_check', 'B is marked down by the health checks (cause health_check)');
  t.notOk(
    proxy.logs.some((line) => isHealthLine(line, 'down', a.address)),
    'A, which listens, is not marked down',
  );

  const startIndex = proxy.connectionLogs().length;
  const whileDown = await sequential(port, 20);
  t.same(tally(whileDown), { a: 20 }, '20 connections after the checks marked it down: all to A');
  const logs = (await waitForConnectionLogs(proxy, startIndex + 20)).slice(startIndex);
  t.ok(
    logs.every((line) => line.attempts === 1 && line.outcome === 'ok' && line.backend === a.address),
    'each with 1 attempt: B was never even dialled',
  );

  await b.start();
  t.equal(b.accepted, 0, 'B, now listening, has accepted no session yet');
  const up = await proxy.waitForLog((line) => isHealthLine(line, 'up', b.address), LOG_GUARD_MS);
  t.equal(up.cause, 'health_check', 'B comes up after passing checks (cause health_check)');
  t.equal(b.accepted, 0, 'health checks are plain TCP connects: no TLS session counted on B');

  const afterUp = await sequential(port, 20);
  const shares = tally(afterUp);
  t.comment(`measured after it came up: ${JSON.stringify(shares)}`);
  t.ok(Math.abs((shares.b ?? 0) - 10) <= 2, `B receives connections: ${shares.b ?? 0} of 20 (10 ± 2)`);
  t.equal(b.accepted, shares.b ?? 0, 'B accepted exactly those sessions');
  t.equal(healthLines(proxy, 'down', b.address).length, 1, 'one `backend down` line for B');
  t.equal(healthLines(proxy, 'up', b.address).length, 1, 'one `backend up` line for B');
});

t.test('health state survives a reload for a backend that stays', async (t) => {
  const a = await startTlsBackend(ca, 'a');
  const b = await backendDownAtStart('b'); // never started: stays down
  const route = {
    backends: [a.address, b.address],
    maxFails: 0, // passive health off: only the health-check state keeps B out
    healthCheck: { interval: '200ms', timeout: '200ms', rise: 2, fall: 2 },
  };
  const proxy = await startProxy(proxyConfig(route));
  cleanUp(t, proxy, [a, b]);
  const port = proxy.port('health');

  await proxy.waitForLog((line) => isHealthLine(line, 'down', b.address) && line.cause === 'health_check', LOG_GUARD_MS);
  t.pass('B is marked down by the health checks');

  // An unrelated change: one more hostname on the route.
  await writeFile(proxy.configFile, stringify(proxyConfig(route, [SNI, 'other.example.com'])));
  const reloaded = await proxy.waitForLog((line) => line.msg === 'config reloaded', LOG_GUARD_MS);
  t.same(reloaded.changed, ['health'], 'config reloaded: the listener changed');
  t.equal(proxy.port('health'), port, 'same listening port');

  // Right after the reload, before a fresh check could have taken B out again: B must already count as down.
  const startIndex = proxy.connectionLogs().length;
  const answers = [...(await sequential(port, 10, SNI)), ...(await sequential(port, 10, 'other.example.com'))];
  t.same(tally(answers), { a: 20 }, '20 connections right after the reload (old and new hostname): all to A');
  await sleep(600); // three check intervals
  answers.push(...(await sequential(port, 10, SNI)));
  t.same(tally(answers), { a: 30 }, '10 more after three check intervals: all to A');
  const logs = (await waitForConnectionLogs(proxy, startIndex + 30)).slice(startIndex);
  t.ok(
    logs.every((line) => line.attempts === 1 && line.outcome === 'ok'),
    'each with 1 attempt: B was never dialled (a reset state would have been tried and failed over: attempts 2)',
  );
  t.equal(healthLines(proxy, 'up', b.address).length, 0, 'no `backend up` for B');
  t.equal(healthLines(proxy, 'down', b.address).length, 1, 'and no second `backend down` (its state was kept, not re-learned)');
});

t.test('all backends of a route down: every connection still tries them all (panic routing), and one that comes back is used at once', async (t) => {
  const backends = [await backendDownAtStart('panic-a'), await backendDownAtStart('panic-b')];
  const dead = backends.map((backend) => backend.address);
  const config = proxyConfig({ backends: dead, failTimeout: '5m' });
  const proxy = await startProxy({ ...config, admin: { listen: '127.0.0.1:0' } });
  cleanUp(t, proxy, backends);
  const port = proxy.port('health');

  const clients = 6;
  for (let index = 0; index < clients; index++) {
    await t.rejects(
      guard(connectTls({ port, servername: SNI, ca: ca.cert }), CONNECTION_GUARD_MS, `the proxy to close client ${index + 1}`),
      `client ${index + 1} is closed without a TLS session (before the ${CONNECTION_GUARD_MS} ms guard)`,
    );
    await waitForConnectionLogs(proxy, index + 1); // one at a time, so the order of the lines is the order of the clients
  }
  const logs = proxy.connectionLogs();
  t.equal(logs.length, clients, `${clients} connection lines`);
  t.ok(
    logs.every((line) => line.outcome === 'backend_unreachable'),
    'every one: outcome backend_unreachable',
  );
  const downLines = dead.map((address) => proxy.logs.find((line) => isHealthLine(line, 'down', address)));
  t.same(
    downLines.map((line) => line?.cause),
    ['connect_failures', 'connect_failures'],
    'both backends are marked down after maxFails (cause connect_failures)',
  );
  t.same(
    logs.map((line) => [line.attempts, line.reason]),
    Array(clients).fill([2, 'ECONNREFUSED']),
    'every client, before and after both were marked down, dialled both (attempts 2), reason ECONNREFUSED',
  );
  const panicLine = await proxy.waitForLog((line) => line.level === 40 && line.route === SNI && String(line.msg).includes('panic routing'), LOG_GUARD_MS);
  t.match(panicLine, { listener: 'health' }, 'panic routing is logged (rate-limited) with the listener and route');

  // failTimeout is 5 minutes: without panic routing the backend would be skipped that long after it is back.
  await backends[1]!.start();
  const identity = await guard(whoAnswers({ port, servername: SNI, ca: ca.cert }), CONNECTION_GUARD_MS, 'a client after the backend is back');
  t.equal(identity.backend, 'panic-b', 'the backend that came back serves the next client at once');
  await proxy.waitForLog((line) => isHealthLine(line, 'up', dead[1]!), LOG_GUARD_MS);
  t.pass('and it is marked up again (cause recovered)');

  const ready = proxy.logs.find((line) => line.msg === 'ready');
  const admin = String(ready?.admin);
  const metrics = await guard(
    new Promise<string>((resolve, reject) => {
      http
        .get(`http://${admin}/metrics`, (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve(body));
        })
        .on('error', reject);
    }),
    CONNECTION_GUARD_MS,
    'GET /metrics',
  );
  const counted = metrics
    .split('\n')
    .find((line) => line.startsWith('sni_passthrough_connections_closed_total{') && line.includes('outcome="backend_unreachable"'));
  t.ok(counted, `a connections_closed_total series for backend_unreachable (${counted})`);
  t.equal(Number(counted?.split(' ').pop()), clients, `it counts all ${clients} failed clients`);
  const panics = metrics.split('\n').find((line) => line.startsWith('sni_passthrough_panic_routing_total{') && line.includes(`route="${SNI}"`));
  t.equal(Number(panics?.split(' ').pop()), clients - 3 + 1, `panic_routing_total counts the connections that found every backend down (${panics})`);
  const up = metrics.split('\n').filter((line) => line.startsWith('sni_passthrough_backend_up{'));
  t.same(
    dead.map((address) =>
      up
        .find((line) => line.includes(`backend="${address}"`))
        ?.split(' ')
        .pop(),
    ),
    ['0', '1'],
    'backend_up: 0 for the one still down, 1 for the one back',
  );
});
