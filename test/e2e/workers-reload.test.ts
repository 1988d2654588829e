// Reloads with worker processes, through the compiled CLI: 30 reloads under
// load fail no connection and cut none, and a reload one worker cannot take
// (its descriptor limit lowered with prlimit(1), so it cannot open the
// certificate) leaves both workers on the old config, with one line naming
// the worker and why.
//
// No assertion is on time: waits are for log lines, with guards that only
// catch hangs.
import t from 'tap';
import { mkdtemp, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startEchoBackend, startTlsBackend, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { runProgram, which } from '../helpers/programs.js';
import { startProxy } from '../helpers/proxy-process.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard, sleep } from '../helpers/wait.js';
import { openThrough, roundTrip, stillEchoes, workerPid, workersConfig as configWith } from '../helpers/workers.js';

/** Hang guards only. */
const GUARD_MS = 60_000;

const prlimit = await which('prlimit');
const echo = await startEchoBackend('echo');
t.teardown(() => echo.close());

function workersConfig(extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Record<string, unknown> {
  return configWith(echo.address, extra, listener);
}

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
      const results = await Promise.all(Array.from({ length: 4 }, () => roundTrip(port)));
      served += results.length;
      failed += results.filter((ok) => !ok).length;
      // Steady, not flat out: the machine's two cores must also run the reloads.
      await sleep(20);
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
  /** Whether each connection `name` got was routed, by worker: a few at a time at a time (a burst would mostly go to one worker) until both have answered. */
  const routedBy = async (name: string): Promise<Map<number, boolean[]>> => {
    const from = proxy.connectionLogs().length;
    const routed = new Map<number, boolean[]>();
    for (let round = 0; round < 50 && routed.size < 2; round++) {
      const sessions = await Promise.all(
        Array.from({ length: 4 }, async () => {
          try {
            const socket = await connectTls({ port, servername: name, ca: ca.cert });
            await readLine(socket);
            socket.destroy();
          } catch {
            // No route: an unrecognized_name alert. The connection's line says which worker answered so.
          }
        }),
      );
      const seen = from + (round + 1) * sessions.length;
      await guard(
        (async () => {
          while (proxy.connectionLogs().length < seen) await sleep(20);
        })(),
        GUARD_MS,
        'the connection lines',
      );
      routed.clear();
      for (const line of proxy.connectionLogs().slice(from)) {
        routed.set(Number(line.worker), [...(routed.get(Number(line.worker)) ?? []), line.outcome === 'ok']);
      }
    }
    return routed;
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
  const every = (routed: Map<number, boolean[]>, ok: boolean): boolean => [...routed.values()].every((outcomes) => outcomes.every((outcome) => outcome === ok));
  const old = await routedBy('old.example.com');
  t.same([...old.keys()].sort(), [1, 2], 'both workers answered');
  t.ok(every(old, true), 'both still route the old name');
  const unknown = await routedBy('new.example.com');
  t.same([...unknown.keys()].sort(), [1, 2], 'both workers answered');
  t.ok(every(unknown, false), 'neither routes the name the refused config added: worker 1 rolled back too');

  proxy.child.kill('SIGHUP');
  await proxy.waitForLog((line) => line.msg === 'config reloaded' && line.generation === 2, GUARD_MS);
  const now = await routedBy('new.example.com');
  t.same([...now.keys()].sort(), [1, 2], 'both workers answered');
  t.ok(every(now, true), 'the same config, taken by both once worker 2 can read it');
});
