// Balancing end to end through the compiled CLI: the share of connections
// each backend receives under `balance: roundrobin | leastconn | source` and
// `weight` (counted by the backends themselves and by the log lines), `retries`,
// and backends given by DNS name (every resolved address tried in turn).
//
// Shares are exact where the algorithm is deterministic for the traffic sent
// (smooth weighted round robin with sequential connections, leastconn with
// connections held open) and stated with their tolerance in each test's name.
import { once } from 'node:events';
import { lookup } from 'node:dns/promises';
import { mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { startTlsBackend, unusedAddress, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectTls, readLine, whoAnswers } from '../helpers/tls-client.js';
import { guard, sleep } from '../helpers/wait.js';

/** A guard per connection: only against a hang, never a measurement. */
const CONNECTION_GUARD_MS = 10_000;
/** A guard for a whole loop of connections. */
const LOOP_GUARD_MS = 60_000;

const ca = await createCertificateAuthority();

const rr1 = await startTlsBackend(ca, 'rr-1');
const rr2 = await startTlsBackend(ca, 'rr-2');
const rr3 = await startTlsBackend(ca, 'rr-3');
const drainA = await startTlsBackend(ca, 'drain-a');
const drainB = await startTlsBackend(ca, 'drain-b');
const drained = await startTlsBackend(ca, 'drained');
const lc1 = await startTlsBackend(ca, 'lc-1');
const lc2 = await startTlsBackend(ca, 'lc-2');
const lcLight = await startTlsBackend(ca, 'lc-weight-1');
const lcHeavy = await startTlsBackend(ca, 'lc-weight-3');
const src1 = await startTlsBackend(ca, 'src-1');
const src2 = await startTlsBackend(ca, 'src-2');
const src3 = await startTlsBackend(ca, 'src-3');
const third = await startTlsBackend(ca, 'third');
const named = await startTlsBackend(ca, 'named');
const namedV6 = await startTlsBackend(ca, 'named-v6', { host: '::1' });
const backends: TestBackend[] = [rr1, rr2, rr3, drainA, drainB, drained, lc1, lc2, lcLight, lcHeavy, src1, src2, src3, third, named, namedV6];
// Failure state is kept per backend address, so every route gets its own dead addresses.
const [deadDrain, deadR1, deadR2, deadD1, deadD2] = [
  await unusedAddress(),
  await unusedAddress(),
  await unusedAddress(),
  await unusedAddress(),
  await unusedAddress(),
];

const proxy = await startProxy({
  listeners: [
    {
      name: 'balancing',
      listen: '127.0.0.1:0',
      drainTimeout: '1s', // a failed test's teardown need not wait the default 30 s
      routes: [
        {
          hostnames: ['rr.example.com'],
          backends: [
            { address: rr1.address, weight: 1 },
            { address: rr2.address, weight: 2 },
            { address: rr3.address, weight: 3 },
          ],
        },
        { hostnames: ['drain.example.com'], backends: [drainA.address, drainB.address, { address: drained.address, weight: 0 }] },
        { hostnames: ['drain-failover.example.com'], backends: [deadDrain, { address: drained.address, weight: 0 }] },
        { hostnames: ['leastconn.example.com'], balance: 'leastconn', backends: [lc1.address, lc2.address] },
        {
          hostnames: ['leastconn-weighted.example.com'],
          balance: 'leastconn',
          backends: [
            { address: lcLight.address, weight: 1 },
            { address: lcHeavy.address, weight: 3 },
          ],
        },
        // A killed backend stays out for the rest of the file: no probe connection muddles the mapping.
        { hostnames: ['source.example.com'], balance: 'source', failTimeout: '5m', backends: [src1.address, src2.address, src3.address] },
        { hostnames: ['retries-one.example.com'], retries: 1, backends: [deadR1, deadR2, third.address] },
        { hostnames: ['retries-default.example.com'], backends: [deadD1, deadD2, third.address] },
        { hostnames: ['by-name.example.com'], backends: [`localhost:${named.port}`] },
        { hostnames: ['by-name-v6.example.com'], backends: [`localhost:${namedV6.port}`] },
      ],
    },
  ],
});
const port = proxy.port('balancing');

t.teardown(async () => {
  await proxy.stop();
  await Promise.all(backends.map((backend) => backend.close()));
});

const logsFor = (target: ProxyProcess, sni: string): LogLine[] => target.connectionLogs().filter((line) => line.sni === sni);

/** Waits (bounded) until `count` connection lines for `sni` are logged; log lines are written asynchronously. */
async function waitForLogs(target: ProxyProcess, sni: string, count: number): Promise<LogLine[]> {
  await target.waitForLog(() => logsFor(target, sni).length >= count, 10_000);
  return logsFor(target, sni);
}

function tally(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

/** `count` sequential TLS sessions to `sni`; who answered each, in order. Bounded in count and time. */
async function sequential(sni: string, count: number, targetPort = port): Promise<string[]> {
  const answers: string[] = [];
  const deadline = Date.now() + LOOP_GUARD_MS;
  for (let index = 0; index < count; index++) {
    if (Date.now() > deadline) throw new Error(`${sni}: only ${index} of ${count} connections within ${LOOP_GUARD_MS} ms`);
    const answer = await guard(whoAnswers({ port: targetPort, servername: sni, ca: ca.cert }), CONNECTION_GUARD_MS, `${sni} connection ${index + 1}`);
    answers.push(answer.backend);
  }
  return answers;
}

/** One TLS session to `sni` from the loopback address `localAddress`: who answered. */
async function answerFrom(localAddress: string, sni: string): Promise<string> {
  // The TCP socket is bound first: tls.connect's own options have no localAddress in Node's types.
  const tcp = net.connect({ host: '127.0.0.1', port, localAddress });
  const socket = tls.connect({ socket: tcp, servername: sni, ca: ca.cert });
  try {
    await guard(once(socket, 'secureConnect'), CONNECTION_GUARD_MS, `${localAddress}: handshake`);
    const identity = JSON.parse(await guard(readLine(socket), CONNECTION_GUARD_MS, `${localAddress}: identity line`)) as BackendIdentity;
    return identity.backend;
  } finally {
    socket.destroy();
  }
}

t.test('roundrobin, weights 1/2/3, 300 sequential connections: exactly 50/100/150 (tolerance ±2)', async (t) => {
  const sni = 'rr.example.com';
  const before = rr1.accepted + rr2.accepted + rr3.accepted;
  const answers = await sequential(sni, 300);
  const counts = tally(answers);
  t.comment(`measured shares: ${JSON.stringify(counts)}`);
  t.equal(answers.length, 300, 'all 300 connections were served');
  t.ok(Math.abs((counts['rr-1'] ?? 0) - 50) <= 2, `weight 1 got ${counts['rr-1'] ?? 0} (50 ± 2)`);
  t.ok(Math.abs((counts['rr-2'] ?? 0) - 100) <= 2, `weight 2 got ${counts['rr-2'] ?? 0} (100 ± 2)`);
  t.ok(Math.abs((counts['rr-3'] ?? 0) - 150) <= 2, `weight 3 got ${counts['rr-3'] ?? 0} (150 ± 2)`);
  t.equal(rr1.accepted + rr2.accepted + rr3.accepted - before, 300, 'the backends saw exactly 300 sessions');

  // Smooth: the order repeats every 6 connections and each block of 6 holds 1/2/3, interleaved rather than in runs.
  const period = answers.slice(0, 6);
  t.same(tally(period), { 'rr-1': 1, 'rr-2': 2, 'rr-3': 3 }, `the first 6 connections hold 1/2/3 (${period.join(' ')})`);
  t.ok(
    answers.every((name, index) => name === period[index % 6]),
    'every following block of 6 repeats that order',
  );
  t.notOk(
    answers.some((name, index) => index >= 2 && name === answers[index - 1] && name === answers[index - 2]),
    'no backend gets 3 connections in a row (smooth, not 1×A 2×B 3×C)',
  );

  const logs = await waitForLogs(proxy, sni, 300);
  t.same(
    tally(logs.map((line) => String(line.backend))),
    { [rr1.address]: counts['rr-1'], [rr2.address]: counts['rr-2'], [rr3.address]: counts['rr-3'] },
    'the log lines agree on which backend served each connection',
  );
  t.ok(
    logs.every((line) => line.outcome === 'ok' && line.attempts === 1),
    'every connection: outcome ok, 1 attempt',
  );
});

t.test('weight 0: the backend takes no new connections (exact: 0)', async (t) => {
  t.test('next to two weight-1 backends, 60 connections split 30/30 (±1) and none to weight 0', async (t) => {
    const answers = await sequential('drain.example.com', 60);
    const counts = tally(answers);
    t.comment(`measured shares: ${JSON.stringify(counts)}`);
    t.ok(Math.abs((counts['drain-a'] ?? 0) - 30) <= 1, `drain-a got ${counts['drain-a'] ?? 0} (30 ± 1)`);
    t.ok(Math.abs((counts['drain-b'] ?? 0) - 30) <= 1, `drain-b got ${counts['drain-b'] ?? 0} (30 ± 1)`);
    t.equal(counts.drained ?? 0, 0, 'no client reached the weight-0 backend');
    t.equal(drained.accepted, 0, 'the weight-0 backend accepted no session');
  });

  t.test('not even as failover when the only other backend is down', async (t) => {
    const sni = 'drain-failover.example.com';
    await t.rejects(
      guard(connectTls({ port, servername: sni, ca: ca.cert }), CONNECTION_GUARD_MS, 'the proxy to close the client'),
      'the client is closed without a TLS session',
    );
    const [log] = await waitForLogs(proxy, sni, 1);
    t.equal(log!.outcome, 'backend_unreachable', 'outcome backend_unreachable');
    t.equal(log!.attempts, 1, 'only the weight-1 backend was dialled');
    t.equal(log!.backend, deadDrain, 'the log names the dead backend');
    t.equal(drained.accepted, 0, 'the weight-0 backend accepted no session');
  });
});

t.test('leastconn: new connections go to the backend with the fewest open ones', async (t) => {
  const held: tls.TLSSocket[] = [];
  t.teardown(() => {
    for (const socket of held) socket.destroy();
  });

  /** Opens a connection to `sni`, keeps it open, and says who answered. */
  const openHeld = async (sni: string): Promise<{ socket: tls.TLSSocket; backend: string }> => {
    const socket = await guard(connectTls({ port, servername: sni, ca: ca.cert }), CONNECTION_GUARD_MS, `${sni}: a held connection`);
    socket.on('error', () => {});
    held.push(socket);
    const identity = JSON.parse(await guard(readLine(socket), CONNECTION_GUARD_MS, `${sni}: identity line`)) as BackendIdentity;
    return { socket, backend: identity.backend };
  };

  t.test('equal weights: 10 held connections spread 5/5 (exact), then 4 new ones all go to the emptied backend (exact: 4/0)', async (t) => {
    const sni = 'leastconn.example.com';
    const open: Record<string, tls.TLSSocket[]> = { 'lc-1': [], 'lc-2': [] };
    const order: string[] = [];
    for (let index = 0; index < 10; index++) {
      const fewest = Math.min(open['lc-1']!.length, open['lc-2']!.length);
      const { socket, backend } = await openHeld(sni);
      t.ok(backend in open, `connection ${index + 1} reached a leastconn backend (${backend})`);
      t.equal(
        open[backend]!.length,
        fewest,
        `connection ${index + 1} went to a backend with the fewest open connections (${backend} had ${open[backend]!.length})`,
      );
      open[backend]!.push(socket);
      order.push(backend);
    }
    t.comment(`order: ${order.join(' ')}`);
    t.equal(open['lc-1']!.length, 5, 'lc-1 holds 5');
    t.equal(open['lc-2']!.length, 5, 'lc-2 holds 5');

    // Empty the backend that took the first connection, and wait until the proxy has seen all 5 close.
    const emptied = order[0]!;
    const other = emptied === 'lc-1' ? 'lc-2' : 'lc-1';
    const emptiedAddress = emptied === 'lc-1' ? lc1.address : lc2.address;
    const closedBefore = logsFor(proxy, sni).length;
    for (const socket of open[emptied]!) socket.end();
    await proxy.waitForLog(() => logsFor(proxy, sni).length >= closedBefore + 5, 10_000);
    t.same(
      logsFor(proxy, sni)
        .slice(closedBefore)
        .map((line) => line.backend),
      Array(5).fill(emptiedAddress),
      `the proxy logged the 5 connections of ${emptied} as closed`,
    );

    const next: string[] = [];
    for (let index = 0; index < 4; index++) next.push((await openHeld(sni)).backend);
    t.comment(`measured: 4 new connections → ${next.join(' ')} (other backend still holds 5)`);
    t.same(next, Array(4).fill(emptied), `all 4 new connections went to ${emptied} (it had 0..3 open, ${other} had 5)`);
  });

  t.test('weights 1 and 3: 8 held connections split 2/6 (exact), each to the lowest open/weight', async (t) => {
    const sni = 'leastconn-weighted.example.com';
    const weights: Record<string, number> = { 'lc-weight-1': 1, 'lc-weight-3': 3 };
    const open: Record<string, number> = { 'lc-weight-1': 0, 'lc-weight-3': 0 };
    for (let index = 0; index < 8; index++) {
      const lowest = Math.min(...Object.keys(open).map((name) => open[name]! / weights[name]!));
      const { backend } = await openHeld(sni);
      t.ok(backend in open, `connection ${index + 1} reached a leastconn backend (${backend})`);
      t.equal(open[backend]! / weights[backend]!, lowest, `connection ${index + 1} went to a backend with the lowest open/weight (${backend})`);
      open[backend]!++;
    }
    t.comment(`measured shares: ${JSON.stringify(open)}`);
    t.same(open, { 'lc-weight-1': 2, 'lc-weight-3': 6 }, 'split 2/6');
  });
});

t.test('source: a client address keeps its backend; removing a backend moves only its clients', async (t) => {
  const sni = 'source.example.com';
  // 40 client addresses; Linux routes all of 127.0.0.0/8 to loopback, so a socket can bind any of them.
  const clients = Array.from({ length: 40 }, (_, index) => `127.0.0.${index + 2}`);
  const perClient = 5;
  const deadline = Date.now() + LOOP_GUARD_MS;

  /** `count` connections from each client: the backend it reached each time. */
  const round = async (count: number): Promise<Map<string, string[]>> => {
    const seen = new Map<string, string[]>();
    for (const client of clients) {
      const answers: string[] = [];
      for (let index = 0; index < count; index++) {
        if (Date.now() > deadline) throw new Error(`source: out of time at client ${client}`);
        answers.push(await answerFrom(client, sni));
      }
      seen.set(client, answers);
    }
    return seen;
  };

  const first = await round(perClient);
  const home = new Map<string, string>();
  for (const [client, answers] of first) home.set(client, answers[0]!);
  const unstable = [...first].filter(([, answers]) => new Set(answers).size !== 1).map(([client, answers]) => `${client}: ${answers.join(',')}`);
  t.same(unstable, [], `each of ${clients.length} client addresses reached the same backend on all ${perClient} connections`);
  const shares = tally([...home.values()]);
  t.comment(`measured: clients per backend ${JSON.stringify(shares)} (connections: ×${perClient})`);
  for (const name of ['src-1', 'src-2', 'src-3'])
    t.ok((shares[name] ?? 0) > 0, `${name} has clients (${shares[name] ?? 0} of 40; an empty backend has odds ~1e-7)`);

  const logs = await waitForLogs(proxy, sni, clients.length * perClient);
  t.same(
    [...new Set(logs.map((line) => String(line.client).split(':')[0]))].sort(),
    [...clients].sort(),
    'the proxy saw each client address as its own (the address it hashes)',
  );

  // Kill one backend: its clients fail over at once, and after maxFails (3) failures it is out of the usable set.
  const victim = src3;
  const victimClients = clients.filter((client) => home.get(client) === victim.name);
  await victim.close();
  const failover: string[] = [];
  for (let index = 0; index < 20 && !proxy.logs.some((line) => line.msg === 'backend down' && line.backend === victim.address); index++) {
    failover.push(await answerFrom(victimClients[index % victimClients.length]!, sni));
    await sleep(20); // lets the `backend down` line arrive
  }
  const down = await proxy.waitForLog((line) => line.msg === 'backend down' && line.backend === victim.address, 10_000);
  t.equal(down.cause, 'connect_failures', `the killed backend is marked down (cause connect_failures) after ${failover.length} connections`);
  t.notOk(failover.includes(victim.name), `meanwhile its clients were served by the others (${failover.join(',')})`);

  const after = await round(3);
  const moved: string[] = [];
  const stayed: string[] = [];
  const problems: string[] = [];
  for (const [client, answers] of after) {
    if (new Set(answers).size !== 1) problems.push(`${client} is not stable: ${answers.join(',')}`);
    const before = home.get(client)!;
    if (before === victim.name) {
      moved.push(client);
      if (answers[0] === victim.name) problems.push(`${client} still reached the killed backend`);
    } else {
      stayed.push(client);
      if (answers[0] !== before) problems.push(`${client} moved from ${before} to ${answers[0]} though its backend is still up`);
    }
  }
  t.comment(`measured after the kill: ${JSON.stringify(tally([...after.values()].map((answers) => answers[0]!)))}`);
  t.same(problems, [], `only the ${moved.length} clients of the killed backend moved; the other ${stayed.length} kept theirs`);
  t.same(moved.sort(), [...victimClients].sort(), 'the clients that moved are exactly those of the killed backend');
  t.ok(
    logsFor(proxy, sni).every((line) => line.outcome === 'ok'),
    'no client of the source route failed',
  );
});

t.test('retries', async (t) => {
  t.test('retries: 1 with the first two of three backends down: the client fails after 2 attempts', async (t) => {
    const sni = 'retries-one.example.com';
    // A route's first connection starts at its first backend (equal weights: smooth round robin picks the first listed).
    await t.rejects(
      guard(connectTls({ port, servername: sni, ca: ca.cert }), CONNECTION_GUARD_MS, 'the proxy to close the client'),
      'the client is closed without a TLS session',
    );
    const [log] = await waitForLogs(proxy, sni, 1);
    t.equal(log!.outcome, 'backend_unreachable', 'outcome backend_unreachable');
    t.equal(log!.attempts, 2, 'attempts 2: the chosen backend and one retry');
    t.equal(log!.reason, 'ECONNREFUSED', 'reason: the connect error');
    t.equal(log!.backend, deadR2, 'the last backend tried is the second one');
  });

  t.test('default retries with the first two of three backends down: the third serves it after 3 attempts', async (t) => {
    const sni = 'retries-default.example.com';
    const answer = await guard(whoAnswers({ port, servername: sni, ca: ca.cert }), CONNECTION_GUARD_MS, 'the connection');
    t.equal(answer.backend, 'third', 'served by the third backend');
    t.ok(answer.authorized, 'its certificate verifies: the replayed hello reached it intact');
    const [log] = await waitForLogs(proxy, sni, 1);
    t.equal(log!.outcome, 'ok', 'outcome ok');
    t.equal(log!.attempts, 3, 'attempts 3');
    t.equal(log!.backend, third.address, 'the log names the third backend');
  });
});

t.test('DNS-name backends', async (t) => {
  const localhost = await lookup('localhost', { all: true, verbatim: true });
  const families = localhost.map((entry) => entry.address).join(', ');

  t.test('localhost:PORT with the backend on 127.0.0.1', async (t) => {
    const sni = 'by-name.example.com';
    const answers = await sequential(sni, 5);
    t.same(answers, Array(5).fill('named'), `5 connections served (localhost resolves to ${families})`);
    const logs = await waitForLogs(proxy, sni, 5);
    t.ok(
      logs.every((line) => line.outcome === 'ok' && line.attempts === 1 && line.backend === `localhost:${named.port}`),
      'each: outcome ok, 1 attempt, the backend named as configured',
    );
  });

  const hasV6 = localhost.some((entry) => entry.family === 6);
  t.test(
    'localhost:PORT with the backend only on ::1',
    { skip: hasV6 ? false : `localhost resolves only to ${families} here (no ::1); covered below with a stubbed resolver` },
    async (t) => {
      const answers = await sequential('by-name-v6.example.com', 5);
      t.same(answers, Array(5).fill('named-v6'), '5 connections served');
    },
  );

  // The order a resolver gives cannot be chosen from here, so the proxy process gets a stub of dns.lookup
  // (preloaded with --import) that answers `localhost` with ::1 first, as many systems do, and another
  // name with 127.0.0.1 first. Everything else (dial, failover inside one backend) is the real code.
  t.test('a name resolving to ::1 then 127.0.0.1 (stubbed resolver): every address is tried in turn', async (t) => {
    const directory = await mkdtemp(join(tmpdir(), 'sni-passthrough-dns-'));
    const stub = join(directory, 'stub-dns.mjs');
    await writeFile(
      stub,
      [
        "import dns from 'node:dns';",
        "import { syncBuiltinESMExports } from 'node:module';",
        'const table = JSON.parse(process.env.SNI_TEST_DNS_STUB);',
        'const original = dns.lookup;',
        'dns.lookup = function lookup(host, options, callback) {',
        "  if (typeof options === 'function') { callback = options; options = {}; }",
        '  const addresses = table[host];',
        '  if (!addresses) return original.call(this, host, options, callback);',
        "  const all = addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));",
        "  process.nextTick(() => (options && typeof options === 'object' && options.all ? callback(null, all) : callback(null, all[0].address, all[0].family)));",
        '};',
        'syncBuiltinESMExports();',
        '',
      ].join('\n'),
    );
    const stubbed = await startProxy(
      {
        listeners: [
          {
            name: 'dns',
            listen: '127.0.0.1:0',
            drainTimeout: '1s',
            routes: [
              { hostnames: ['v4-behind-v6.example.com'], backends: [`localhost:${named.port}`] },
              { hostnames: ['v6-behind-v4.example.com'], backends: [`v4-first.test:${namedV6.port}`] },
              { hostnames: ['v6-first.example.com'], backends: [`localhost:${namedV6.port}`] },
            ],
          },
        ],
      },
      {
        env: {
          NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${stub}`.trim(),
          SNI_TEST_DNS_STUB: JSON.stringify({ localhost: ['::1', '127.0.0.1'], 'v4-first.test': ['127.0.0.1', '::1'] }),
        },
      },
    );
    t.teardown(() => stubbed.stop());
    const dnsPort = stubbed.port('dns');

    const cases = [
      { sni: 'v4-behind-v6.example.com', backend: named, what: 'localhost → [::1, 127.0.0.1], backend on 127.0.0.1 only' },
      { sni: 'v6-behind-v4.example.com', backend: namedV6, what: 'v4-first.test → [127.0.0.1, ::1], backend on ::1 only' },
      // Shows the stub is in effect for localhost: the real resolver here may give no ::1 at all.
      { sni: 'v6-first.example.com', backend: namedV6, what: 'localhost → [::1, 127.0.0.1], backend on ::1 only' },
    ];
    for (const { sni, backend, what } of cases) {
      const answers = await sequential(sni, 5, dnsPort);
      t.same(answers, Array(5).fill(backend.name), `${what}: 5 connections served`);
      const logs = await waitForLogs(stubbed, sni, 5);
      t.ok(
        logs.every((line) => line.outcome === 'ok' && line.attempts === 1),
        `${what}: each outcome ok with 1 attempt (the addresses of one backend are one attempt)`,
      );
    }
    t.notOk(
      stubbed.logs.some((line) => line.msg === 'backend down'),
      'a refused first address does not count against the backend: no `backend down`',
    );
  });
});

t.test('the proxy logged no error-level line and nothing on stderr', async (t) => {
  t.notOk(
    proxy.logs.some((line) => line.level >= 50 || /uncaught/i.test(line.msg)),
    'no error-level line',
  );
  t.equal(proxy.stderr(), '', 'nothing on stderr');
});
