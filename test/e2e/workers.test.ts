// Worker processes end to end, through the compiled CLI with real sockets:
// the kernel spreads connections over two workers (and no message passes
// between primary and workers per connection), kill -9 of a worker costs
// exactly its own connections and a new one takes its place on the same
// socket, SIGTERM drains every worker, socket activation feeds every worker,
// and workers: 1 stays the single process. Reloads: workers-reload.test.ts.
//
// No assertion is on time: waits are for log lines and metrics, with guards
// that only catch hangs.
import t from 'tap';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type net from 'node:net';
import { startEchoBackend, unusedAddress } from '../helpers/backends.js';
import { which } from '../helpers/programs.js';
import { sumOf, type Exposition } from '../helpers/prometheus.js';
import { runCli, startProxy, writeConfig } from '../helpers/proxy-process.js';
import { tryConnect } from '../helpers/raw-client.js';
import { guard, sleep } from '../helpers/wait.js';
import {
  openConnectionsReach,
  openThrough,
  roundTrip,
  runConnections,
  scrape,
  servedBy,
  stillEchoes,
  workerPid,
  workersConfig as configWith,
} from '../helpers/workers.js';

/** Hang guards only. */
const GUARD_MS = 60_000;

const socketActivate = await which('systemd-socket-activate');
const echo = await startEchoBackend('echo');
t.teardown(() => echo.close());

function workersConfig(extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Record<string, unknown> {
  return configWith(echo.address, extra, listener);
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

  // Crashing again within the minute: the restart backs off.
  process.kill(Number(replaced.workerPid), 'SIGKILL');
  const again = await proxy.waitForLog((line) => line.msg.startsWith('worker 1 killed by SIGKILL') && line.workerPid === replaced.workerPid, GUARD_MS);
  t.match(again, { restartInMs: 500 }, 'the second crash in a minute waits 0.5 s');
  t.match(again.msg, /starting another in 500 ms \(it keeps crashing\)$/);
  await proxy.waitForLog((line) => line.msg === 'worker 1 started' && line.workerPid !== victim && line.workerPid !== replaced.workerPid, GUARD_MS);
  t.equal(await runConnections(port, 20, 4), 0, 'served again');
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

t.test('active health checks run once, in the primary, and every worker skips the backend they take down', async (t) => {
  const down = await unusedAddress();
  const proxy = await startProxy(
    workersConfig(
      {},
      {
        routes: [
          {
            hostnames: ['echo.example.com'],
            backends: [down, echo.address],
            // Passive health off: only the checks' verdict can make a worker skip the dead backend.
            maxFails: 0,
            healthCheck: { interval: '100ms', timeout: '1s', fall: 1, rise: 1 },
          },
        ],
      },
    ),
    { readyTimeoutMs: GUARD_MS },
  );
  t.teardown(() => proxy.stop('SIGKILL'));
  const downLine = await proxy.waitForLog((line) => line.msg === 'backend down', GUARD_MS);
  t.match(downLine, { backend: down, cause: 'health_check', pid: proxy.child.pid }, 'logged by the primary');
  t.notOk('worker' in downLine, 'not by a worker');
  const from = proxy.connectionLogs().length;
  // A few at a time, so that both workers take some.
  let failed = 0;
  for (let batch = 0; batch < 20; batch++) failed += await runConnections(proxy.port('web'), 4, 4);
  t.equal(failed, 0, 'every connection served');
  await guard(
    (async () => {
      while (proxy.connectionLogs().length < from + 80) await sleep(20);
    })(),
    GUARD_MS,
    'the connection lines',
  );
  const lines = proxy.connectionLogs().slice(from);
  t.same([...servedBy(lines).keys()].sort(), [1, 2], 'both workers served');
  t.same(
    lines.filter((line) => line.backend !== echo.address || line.attempts !== 1),
    [],
    'no worker tried the backend the checks took down',
  );
  t.equal(proxy.logs.filter((line) => line.msg === 'backend down').length, 1, 'one line for the whole proxy, not one per worker');
});

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

t.test('what workers do not offer yet says so: quic is refused, the live-connection endpoints answer 501', async (t) => {
  const quicFile = await writeConfig(workersConfig({}, { quic: true }));
  const refused = await guard(runCli(['--config', quicFile, '--log-format', 'json']), GUARD_MS, 'the proxy to give up');
  t.equal(refused.code, 1, 'exit 1');
  t.match(refused.stderr, /listener "web".*"quic: true" needs "workers: 1"/, 'one line naming the listener and why');

  const proxy = await startProxy(workersConfig(), { readyTimeoutMs: GUARD_MS });
  t.teardown(() => proxy.stop('SIGKILL'));
  const admin = proxy.logs.find((line) => line.msg === 'admin endpoint listening')!.address as string;
  for (const [method, path] of [
    ['GET', '/connections'],
    ['POST', '/connections/close?sni=echo.example.com&reason=test'],
    ['POST', `/backends/${encodeURIComponent(echo.address)}/drain`],
  ] as const) {
    const response = await fetch(`http://${admin}${path}`, { method });
    t.equal(response.status, 501, `${method} ${path}: 501`);
    t.match(await response.json(), { code: 'SNIP_ADMIN_UNAVAILABLE' });
  }
  t.equal(await roundTrip(proxy.port('web')), true, 'and connections are served as usual');
});
