// Worker processes end to end, through the compiled CLI with real sockets:
// the kernel spreads connections over two workers (and no message passes
// between primary and workers per connection), reloads under load fail no
// connection, a reload one worker cannot take (its descriptor limit lowered
// with prlimit(1), so it cannot open the certificate) leaves both on the old
// config, kill -9 of a worker costs exactly its own connections and a new
// one takes its place, and SIGTERM drains every worker.
//
// No assertion is on time: waits are for log lines and metrics, with guards
// that only catch hangs.
import t from 'tap';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startEchoBackend, startTlsBackend, type TestBackend, unusedAddress } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { buildClientHello, wrapInRecords } from '../helpers/client-hello-fixtures.js';
import { runProgram, which } from '../helpers/programs.js';
import { parsePrometheus, sumOf, type Exposition } from '../helpers/prometheus.js';
import { runCli, startProxy, type LogLine, type ProxyProcess, writeConfig } from '../helpers/proxy-process.js';
import { tryConnect } from '../helpers/raw-client.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard, sleep } from '../helpers/wait.js';

/** Hang guards only. */
const GUARD_MS = 60_000;

const prlimit = await which('prlimit');
const socketActivate = await which('systemd-socket-activate');
const echo = await startEchoBackend('echo');
t.teardown(() => echo.close());

function workersConfig(extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    workers: 2,
    admin: { listen: '127.0.0.1:0' },
    listeners: [{ name: 'web', listen: '127.0.0.1:0', routes: [{ hostnames: ['echo.example.com'], backends: [echo.address] }], ...listener }],
    ...extra,
  };
}

async function scrape(proxy: ProxyProcess): Promise<Exposition> {
  const admin = proxy.logs.find((line) => line.msg === 'admin endpoint listening')!.address as string;
  const response = await fetch(`http://${admin}/metrics`);
  return parsePrometheus(await response.text());
}

/** A ClientHello for `name` in one TLS record: the echo backend sends it back once the proxy has connected the two. */
function helloFor(name: string): Buffer {
  return wrapInRecords(buildClientHello({ serverName: name }));
}

/** A connection through the proxy that stays open: the hello went through to the echo backend and came back. */
async function openThrough(port: number, name = 'echo.example.com'): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const hello = helloFor(name);
  await once(socket, 'connect');
  socket.write(hello);
  let received = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received < hello.length) return;
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before the echo')));
    socket.once('error', reject);
  });
  socket.removeAllListeners('close');
  socket.removeAllListeners('error');
  return socket;
}

/** One short connection: hello, its echo, close. Resolves with whether the echo came back whole. */
async function roundTrip(port: number, name = 'echo.example.com'): Promise<boolean> {
  try {
    const socket = await openThrough(port, name);
    socket.end();
    socket.on('error', () => {});
    return true;
  } catch {
    return false;
  }
}

/** `total` short connections, `concurrency` at a time; resolves with how many failed. */
async function runConnections(port: number, total: number, concurrency: number, name?: string): Promise<number> {
  let started = 0;
  let failed = 0;
  const lane = async (): Promise<void> => {
    while (started < total) {
      started++;
      if (!(await roundTrip(port, name))) failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return failed;
}

/** Whether a connection opened earlier still passes bytes both ways. */
async function stillEchoes(socket: net.Socket): Promise<boolean> {
  if (socket.destroyed) return false;
  return new Promise((resolve) => {
    const finish = (result: boolean): void => {
      socket.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => finish(chunk.toString() === 'ping');
    socket.on('data', onData);
    socket.once('close', () => finish(false));
    socket.once('error', () => finish(false));
    socket.write('ping');
  });
}

function workerPid(proxy: ProxyProcess, worker: number): number {
  const started = proxy.logs.filter((line) => line.msg === `worker ${worker} started`);
  return Number(started.at(-1)!.workerPid);
}

function servedBy(lines: LogLine[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const line of lines) counts.set(Number(line.worker), (counts.get(Number(line.worker)) ?? 0) + 1);
  return counts;
}

async function openConnectionsReach(proxy: ProxyProcess, count: number): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (sumOf(await scrape(proxy), 'sni_passthrough_connections_open') === count) return;
    await sleep(100);
  }
  throw new Error(`never ${count} open connections`);
}

t.test('two workers: the kernel spreads connections evenly and no message passes per connection', async (t) => {
  const proxy = await startProxy(workersConfig(), { readyTimeoutMs: GUARD_MS });
  t.teardown(() => proxy.stop('SIGKILL'));
  t.match(
    proxy.logs.find((line) => line.msg === 'ready'),
    { workers: 2 },
    'the ready line counts the workers',
  );
  t.equal(new Set([workerPid(proxy, 1), workerPid(proxy, 2), proxy.child.pid]).size, 3, 'a primary and two worker processes');

  const before = await scrape(proxy);
  const startedAt = Date.now();
  const total = 2_000;
  const failed = await guard(runConnections(proxy.port('web'), total, 50), GUARD_MS * 2, `${total} connections`);
  t.equal(failed, 0, 'every connection is served');
  await guard(
    (async () => {
      while (proxy.connectionLogs().length < total) await sleep(50);
    })(),
    GUARD_MS,
    'every connection line',
  );
  const after = await scrape(proxy);
  const elapsedSeconds = (Date.now() - startedAt) / 1000;

  const counts = servedBy(proxy.connectionLogs());
  t.same([...counts.keys()].sort(), [1, 2], 'each line names the worker that served it');
  const shares = [...counts.values()];
  const ratio = Math.max(...shares) / Math.min(...shares);
  t.ok(ratio <= 1.25, `largest share / smallest share ${ratio.toFixed(3)} (${shares.join(' / ')}) is at most 1.25`);

  t.equal(sumOf(after, 'sni_passthrough_connections_accepted_total'), total, "/metrics adds up both workers' connections");
  t.equal(sumOf(after, 'sni_passthrough_connections_closed_total', { outcome: 'ok' }), total);
  const delta = (type: string, direction = 'from_workers'): number =>
    sumOf(after, 'sni_passthrough_worker_messages_total', { direction, type }) - sumOf(before, 'sni_passthrough_worker_messages_total', { direction, type });
  t.equal(delta('cluster'), 0, 'no node:cluster message (round-robin would send one per connection): the primary accepts nothing');
  t.equal(delta('scrape', 'to_workers'), 2, 'to the workers: the one scrape, nothing else');
  t.equal(delta('scraped'), 2, 'from the workers: its answers...');
  t.ok(
    delta('load') <= 2 * (Math.ceil(elapsedSeconds) + 2),
    `...and load reports, at most one a second each (${delta('load')} in ${elapsedSeconds.toFixed(1)} s)`,
  );
  const all = (exposition: Exposition): number => sumOf(exposition, 'sni_passthrough_worker_messages_total');
  t.equal(all(after) - all(before), delta('scrape', 'to_workers') + delta('scraped') + delta('load'), 'no other message at all');
  t.ok(sumOf(after, 'process_cpu_user_seconds_total', { worker: '1' }) > 0, 'process metrics per worker, under a worker label');
});

t.test('reloads under load with two workers fail no connection', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'sni-passthrough-workers-'));
  const configFile = join(directory, 'proxy.yaml');
  const write = async (idleTimeout: string): Promise<void> => {
    await writeFile(`${configFile}.tmp`, stringify(workersConfig({}, { idleTimeout })));
    await rename(`${configFile}.tmp`, configFile);
  };
  await write('1h');
  const proxy = await startProxy(null, { configFile, args: ['--no-watch'], readyTimeoutMs: GUARD_MS });
  t.teardown(() => proxy.stop('SIGKILL'));
  const port = proxy.port('web');
  const longLived = await Promise.all(Array.from({ length: 10 }, () => openThrough(port)));

  let loading = true;
  let failed = 0;
  let served = 0;
  const load = (async () => {
    while (loading) {
      const results = await Promise.all(Array.from({ length: 5 }, () => roundTrip(port)));
      served += results.length;
      failed += results.filter((ok) => !ok).length;
      // Steady, not flat out: the machine's two cores must also run the reloads.
      await sleep(10);
    }
  })();
  const reloads = 30;
  for (let reload = 1; reload <= reloads; reload++) {
    await write(`${reload + 1}h`);
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog((line) => line.msg === 'config reloaded' && line.generation === reload + 1, GUARD_MS);
  }
  loading = false;
  await guard(load, GUARD_MS, 'the load to stop');
  t.equal(failed, 0, `none of ${served} connections made during ${reloads} reloads failed`);
  t.ok(served > 0);
  const echoes = await Promise.all(longLived.map(stillEchoes));
  t.same(
    echoes.filter((ok) => !ok),
    [],
    'connections opened before the reloads still pass bytes',
  );
  for (const socket of longLived) socket.destroy();
  t.equal(proxy.logs.filter((line) => line.msg === 'config reload refused').length, 0);
});

t.test('a reload one worker refuses leaves every worker on the old config', { skip: prlimit ? false : 'prlimit (util-linux) is not installed' }, async (t) => {
  const ca = await createCertificateAuthority();
  const directory = await mkdtemp(join(tmpdir(), 'sni-passthrough-workers-refuse-'));
  const site = await ca.issue('site', ['site.example.com']);
  await writeFile(join(directory, 'site.pem'), site.cert);
  await writeFile(join(directory, 'site-key.pem'), site.key);
  const tlsBackend: TestBackend = await startTlsBackend(ca, 'plain');
  t.teardown(() => tlsBackend.close());
  const configFile = join(directory, 'proxy.yaml');
  const config = (names: string[]): Record<string, unknown> =>
    workersConfig({
      listeners: [
        {
          name: 'web',
          listen: '127.0.0.1:0',
          routes: [
            // A terminating route: each worker reads its certificate files whenever it prepares a config.
            { hostnames: ['site.example.com'], tls: { cert: 'site.pem', key: 'site-key.pem' }, backends: [echo.address] },
            { hostnames: names, backends: [tlsBackend.address] },
          ],
        },
      ],
    });
  await writeFile(configFile, stringify(config(['old.example.com'])));
  const proxy = await startProxy(null, { configFile, args: ['--no-watch'], readyTimeoutMs: GUARD_MS });
  t.teardown(() => proxy.stop('SIGKILL'));
  const port = proxy.port('web');
  const answers = async (name: string): Promise<Map<number, boolean>> => {
    // Enough connections that both workers take some (the kernel picks); each line says which worker and whether a route matched.
    const from = proxy.connectionLogs().length;
    const results = await Promise.all(
      Array.from({ length: 40 }, async () => {
        try {
          const socket = await connectTls({ port, servername: name, ca: ca.cert });
          const line = await readLine(socket);
          socket.destroy();
          return line.includes('plain');
        } catch {
          return false;
        }
      }),
    );
    await guard(
      (async () => {
        while (proxy.connectionLogs().length < from + results.length) await sleep(20);
      })(),
      GUARD_MS,
      'the connection lines',
    );
    const byWorker = new Map<number, boolean>();
    for (const line of proxy.connectionLogs().slice(from)) byWorker.set(Number(line.worker), line.outcome === 'ok');
    return byWorker;
  };

  // Worker 2 may open no more files: its limit (prlimit(1) sets a running process's RLIMIT_NOFILE) becomes its lowest free descriptor number.
  const pid = workerPid(proxy, 2);
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8');
  const [soft, hard] = /Max open files\s+(\d+)\s+(\d+)/.exec(limits)!.slice(1);
  const open = new Set((await readdir(`/proc/${pid}/fd`)).map(Number));
  let lowestFree = 0;
  while (open.has(lowestFree)) lowestFree++;
  const lowered = await runProgram(prlimit!, [`--pid=${pid}`, `--nofile=${lowestFree}:${hard}`]);
  t.equal(lowered.code, 0, `worker 2 limited to descriptors below ${lowestFree}, all in use`);

  await writeFile(configFile, stringify(config(['new.example.com'])));
  proxy.child.kill('SIGHUP');
  const refused = await proxy.waitForLog((line) => line.msg.startsWith('config reload refused'), GUARD_MS);
  t.match(refused, { code: 'SNIP_WORKER_REFUSED', generation: 1 }, 'refused, still generation 1');
  t.match(
    String(refused.error),
    new RegExp(`^worker 2 \\(pid ${pid}\\) refused the config: .*site\\.pem: cannot read it`),
    'one line naming the worker and why',
  );
  t.equal(proxy.logs.filter((line) => line.msg.startsWith('config reload refused')).length, 1, 'one line');

  const restored = await runProgram(prlimit!, [`--pid=${pid}`, `--nofile=${soft}:${hard}`]);
  t.equal(restored.code, 0, 'worker 2 gets its descriptors back');
  const old = await answers('old.example.com');
  t.same([...old.keys()].sort(), [1, 2], 'both workers answered');
  t.same([...old.values()], [true, true], 'both still route the old name');
  const unknown = await answers('new.example.com');
  t.same([...unknown.values()], [false, false], 'neither routes the name the refused config added: worker 1 rolled back too');

  proxy.child.kill('SIGHUP');
  await proxy.waitForLog((line) => line.msg === 'config reloaded' && line.generation === 2, GUARD_MS);
  const now = await answers('new.example.com');
  t.same([...now.values()], [true, true], 'the same config, taken by both once worker 2 can read it');
});

t.test('kill -9 of one worker: exactly its connections fail, a new worker serves on the same socket', async (t) => {
  const proxy = await startProxy(workersConfig(), { readyTimeoutMs: GUARD_MS });
  t.teardown(() => proxy.stop('SIGKILL'));
  const port = proxy.port('web');
  // A few at a time, as clients come: a burst of simultaneous connects would mostly go to whichever worker woke first.
  const connections: net.Socket[] = [];
  for (let batch = 0; batch < 10; batch++) connections.push(...(await Promise.all(Array.from({ length: 4 }, () => openThrough(port)))));
  await guard(openConnectionsReach(proxy, connections.length), GUARD_MS, 'the workers to report 40 open connections');

  const victim = workerPid(proxy, 1);
  process.kill(victim, 'SIGKILL');
  const crash = await proxy.waitForLog((line) => line.msg.startsWith('worker 1 killed by SIGKILL'), GUARD_MS);
  t.match(crash, { worker: 1, workerPid: victim, signal: 'SIGKILL', level: 50 }, 'logged as an error, with the signal');
  const lost = Number(crash.openConnections);
  t.ok(lost > 0 && lost < connections.length, `worker 1 had ${lost} of the ${connections.length} connections`);

  const echoes = await Promise.all(connections.map(stillEchoes));
  t.equal(echoes.filter((ok) => !ok).length, lost, 'as many connections failed as the worker had open');
  t.equal(echoes.filter(Boolean).length, connections.length - lost, "worker 2's connections are untouched");
  for (const socket of connections) socket.destroy();

  const replaced = await proxy.waitForLog((line) => line.msg === 'worker 1 started' && line.workerPid !== victim, GUARD_MS);
  t.not(replaced.workerPid, victim, 'a new process in its place');
  t.equal(proxy.port('web'), port, 'on the same listening socket');
  const from = proxy.connectionLogs().length;
  t.equal(await runConnections(port, 200, 10), 0, 'new connections are all served');
  await guard(
    (async () => {
      while (proxy.connectionLogs().length < from + 200) await sleep(20);
    })(),
    GUARD_MS,
    'the connection lines',
  );
  const after = servedBy(
    proxy
      .connectionLogs()
      .slice(from)
      .filter((line) => line.outcome === 'ok'),
  );
  t.ok((after.get(1) ?? 0) > 0, 'the new worker 1 takes its share');
  t.equal(await tryConnect(port), 'connected');
});

t.test('SIGTERM: every worker drains, then the process exits 0', async (t) => {
  const proxy = await startProxy(workersConfig(), { readyTimeoutMs: GUARD_MS });
  const port = proxy.port('web');
  const connections = await Promise.all(Array.from({ length: 20 }, () => openThrough(port)));
  await guard(openConnectionsReach(proxy, connections.length), GUARD_MS, 'the workers to report their connections');
  proxy.child.kill('SIGTERM');
  const draining = await proxy.waitForLog((line) => line.msg.startsWith('shutting down'), GUARD_MS);
  t.match(draining, { openConnections: connections.length }, 'the shutdown line counts every worker’s connections');
  // Once every worker has stopped accepting, the socket is closed: nothing new gets in.
  let refused = 'connected';
  for (let attempt = 0; attempt < 200 && refused === 'connected'; attempt++) {
    refused = await tryConnect(port);
    if (refused === 'connected') await sleep(50);
  }
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused while draining');
  const echoes = await Promise.all(connections.map(stillEchoes));
  t.same(
    echoes.filter((ok) => !ok),
    [],
    'open connections keep working while the workers drain',
  );
  for (const socket of connections) socket.end();
  t.equal(await guard(proxy.exited, GUARD_MS, 'the exit'), 0, 'exit 0 once all are closed');
  t.equal(proxy.logs.filter((line) => line.msg.startsWith('worker') && line.level >= 50).length, 0, 'no worker exit reported as a crash');
});

t.test('SIGTERM with connections that stay open: closed at drainTimeout, exit 0', async (t) => {
  const proxy = await startProxy(workersConfig({}, { drainTimeout: '1s' }), { readyTimeoutMs: GUARD_MS });
  const connections = await Promise.all(Array.from({ length: 10 }, () => openThrough(proxy.port('web'))));
  await guard(openConnectionsReach(proxy, connections.length), GUARD_MS, 'the workers to report their connections');
  const closed = connections.map((socket) => once(socket, 'close'));
  proxy.child.kill('SIGTERM');
  t.equal(await guard(proxy.exited, GUARD_MS, 'the exit'), 0, 'exit 0');
  await guard(Promise.all(closed), GUARD_MS, 'the connections to close');
  t.equal(proxy.connectionLogs().filter((line) => line.outcome === 'shutdown').length, connections.length, 'each ended at drainTimeout, and logged');
});

t.test(
  'socket activation: every worker serves the socket systemd passed',
  { skip: socketActivate ? false : 'systemd-socket-activate is not installed' },
  async (t) => {
    const address = await unusedAddress();
    const port = Number(address.split(':').pop());
    // systemd-socket-activate binds the port, then starts the proxy on the first connection (which waits in the backlog).
    const starting = startProxy(
      { listeners: [{ name: 'web', listen: address, routes: [{ hostnames: ['echo.example.com'], backends: [echo.address] }] }] },
      { launcher: [socketActivate!, '-l', address], args: ['--workers', '2', '--no-watch'], readyTimeoutMs: GUARD_MS },
    );
    let first: Promise<boolean> | null = null;
    for (let attempt = 0; attempt < 600 && first === null; attempt++) {
      if ((await tryConnect(port)) === 'connected') first = roundTrip(port);
      else await sleep(50);
    }
    const proxy = await starting;
    t.teardown(() => proxy.stop('SIGKILL'));
    t.equal(await first, true, 'the connection that started it is served');
    t.match(
      proxy.logs.find((line) => line.msg === 'listening'),
      { listener: 'web', address, inherited: true },
      'on the inherited socket',
    );
    t.match(
      proxy.logs.find((line) => line.msg === 'ready'),
      { workers: 2 },
      '--workers 2 (the config says nothing)',
    );
    const from = proxy.connectionLogs().length;
    t.equal(await runConnections(port, 200, 10), 0, 'every connection served');
    await guard(
      (async () => {
        while (proxy.connectionLogs().length < from + 200) await sleep(20);
      })(),
      GUARD_MS,
      'the connection lines',
    );
    t.same([...servedBy(proxy.connectionLogs().slice(from)).keys()].sort(), [1, 2], 'by both workers');
    proxy.child.kill('SIGTERM');
    t.equal(await guard(proxy.exited, GUARD_MS, 'exit'), 0, 'SIGTERM: exit 0');
  },
);

t.test('--workers: a number or auto, checked like the config key', async (t) => {
  const bad = await runCli(['--config', '/nonexistent.yaml', '--workers', '0']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /option '--workers <n>' argument '0' is invalid\. invalid workers "0": use "auto" \(one per CPU\) or a number from 1 to 1024/);
  const configFile = await writeConfig({ ...workersConfig(), workers: 3 });
  const check = await runCli(['check', '--config', configFile]);
  t.equal(check.code, 0);
  t.match(check.stdout, /^workers: 3$/m, '`check` says how many workers');
});

t.test('workers: 1 (the default) is one process, as before', async (t) => {
  const proxy = await startProxy(workersConfig({ workers: 1 }), { readyTimeoutMs: GUARD_MS });
  t.teardown(() => proxy.stop('SIGKILL'));
  t.equal(await roundTrip(proxy.port('web')), true);
  await proxy.waitForLog((line) => line.msg === 'connection closed', GUARD_MS);
  t.equal(proxy.logs.filter((line) => String(line.msg).startsWith('worker')).length, 0, 'no worker started');
  t.notOk('workers' in proxy.logs.find((line) => line.msg === 'ready')!, 'the ready line is as before');
  t.notOk('worker' in proxy.connectionLogs()[0]!, 'connection lines are as before');
  const children = await readFile(`/proc/${proxy.child.pid}/task/${proxy.child.pid}/children`, 'utf8');
  t.equal(children.trim(), '', 'no child process');
});
