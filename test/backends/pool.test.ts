// BackendPool (lib/backends/pool.ts): how a route's backends are chosen
// for each new connection and in which order they are tried, with the
// shared per-backend state from BackendRegistry (passive and active health,
// open connections for leastconn). Pure, apart from a few short waits for a
// small failTimeout to elapse.
import fc from 'fast-check';
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../../lib/config/load.js';
import type { BackendConfig, RouteConfig } from '../../lib/config/types.js';
import { BackendRegistry, type HealthChange } from '../../lib/backends/health.js';
import { BackendPool, type BackendTarget } from '../../lib/backends/pool.js';
import { waitFor } from '../helpers/wait.js';

const CLIENT = '192.0.2.1';

function backend(port: number, weight = 1): BackendConfig {
  return { address: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight, proxyProtocol: null };
}

function routeOf(backends: BackendConfig[], options: Partial<RouteConfig> = {}): RouteConfig {
  return {
    hostnames: ['app.example.com'],
    alpn: [],
    backends,
    balance: 'roundrobin',
    retries: null,
    maxFails: 3,
    failTimeout: 10_000,
    healthCheck: null,
    tls: null,
    backendTls: null,
    allow: [],
    deny: [],
    redirect: null,
    acmeChallenge: [],
    ...options,
  };
}

function recordingRegistry(): { registry: BackendRegistry; events: HealthChange[] } {
  const events: HealthChange[] = [];
  return { registry: new BackendRegistry({ backendHealthChanged: (change) => events.push(change) }), events };
}

function poolOf(backends: BackendConfig[], options: Partial<RouteConfig> = {}, registry = recordingRegistry().registry): BackendPool {
  return new BackendPool(routeOf(backends, options), registry);
}

/** The ports of one connection's plan, in the order they would be tried. */
const planPorts = (pool: BackendPool, client = CLIENT): number[] => pool.plan(client).map((target) => target.config.port);

/** The port chosen first for each of `count` connections. */
function firstChoices(pool: BackendPool, count: number, client = CLIENT): number[] {
  return Array.from({ length: count }, () => planPorts(pool, client)[0]!);
}

function countBy(values: number[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

function targetOf(pool: BackendPool, port: number): BackendTarget {
  const target = pool.targets.find((candidate) => candidate.config.port === port);
  if (!target) throw new Error(`no target on port ${port}`);
  return target;
}

/** One connection's dial to `target` that fails (nothing, when the pool does not let it try). */
function failDial(pool: BackendPool, target: BackendTarget): void {
  const attempt = pool.beginAttempt(target);
  if (attempt) pool.attemptFailed(attempt);
}

/** One connection that reaches `target` and ends. */
function succeedDial(pool: BackendPool, target: BackendTarget): void {
  const attempt = pool.beginAttempt(target);
  if (!attempt) return;
  pool.attemptSucceeded(attempt);
  pool.release(attempt);
}

/** Deterministic pseudo-random numbers (mulberry32), so address samples are the same on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` distinct client addresses, IPv4 and IPv6 mixed, as the pipeline passes them (no port). */
function randomClients(count: number, seed = 42): string[] {
  const next = random(seed);
  const byte = (): number => Math.floor(next() * 256);
  const clients = new Set<string>();
  while (clients.size < count) {
    if (next() < 0.8) clients.add(`${byte()}.${byte()}.${byte()}.${byte()}`);
    else clients.add(`2001:db8:${Math.floor(next() * 65536).toString(16)}::${Math.floor(next() * 65536).toString(16)}`);
  }
  return [...clients];
}

t.test('smooth weighted round robin', async (t) => {
  t.test('weights 1 and 2: the heavier first, interleaved, period 3', async (t) => {
    const pool = poolOf([backend(1, 1), backend(2, 2)]);
    t.strictSame(firstChoices(pool, 9), [2, 1, 2, 2, 1, 2, 2, 1, 2]);
  });

  t.test('weights 5, 1, 1: the sequence nginx documents (a a b a c a a)', async (t) => {
    const pool = poolOf([backend(1, 5), backend(2, 1), backend(3, 1)]);
    t.strictSame(firstChoices(pool, 14), [1, 1, 2, 1, 3, 1, 1, 1, 1, 2, 1, 3, 1, 1]);
  });

  t.test('weights 1 and 4: the light backend comes mid-cycle, not after a run of four', async (t) => {
    const pool = poolOf([backend(1, 1), backend(2, 4)]);
    t.strictSame(firstChoices(pool, 10), [2, 2, 1, 2, 2, 2, 2, 1, 2, 2]);
  });

  t.test('equal weights: strict rotation in list order', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3)]);
    t.strictSame(firstChoices(pool, 7), [1, 2, 3, 1, 2, 3, 1]);
  });

  t.test('a single backend is always chosen', async (t) => {
    const pool = poolOf([backend(7, 5)]);
    t.strictSame(firstChoices(pool, 3), [7, 7, 7]);
    t.strictSame(planPorts(pool), [7]);
  });

  t.test('the client address does not matter', async (t) => {
    const pool = poolOf([backend(1), backend(2)]);
    t.strictSame([planPorts(pool, '10.0.0.1')[0], planPorts(pool, '10.0.0.1')[0], planPorts(pool, '10.0.0.2')[0]], [1, 2, 1]);
  });

  t.test('a backend out of service is left out and the others keep their rotation', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3)], { maxFails: 1, failTimeout: 60_000 });
    failDial(pool, targetOf(pool, 2));
    t.strictSame(firstChoices(pool, 6), [1, 3, 1, 3, 1, 3]);
  });

  t.test('over full cycles the shares equal the weights exactly and the sequence is periodic (property)', async (t) => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 3 }), (weights, cycles) => {
        const pool = poolOf(weights.map((weight, index) => backend(index + 1, weight)));
        const total = weights.reduce((sum, weight) => sum + weight, 0);
        const picks = firstChoices(pool, total * cycles);
        const counts = countBy(picks);
        weights.forEach((weight, index) => {
          if ((counts.get(index + 1) ?? 0) !== weight * cycles)
            throw new Error(`weights ${weights}: backend ${index + 1} got ${counts.get(index + 1)} of ${total * cycles}`);
        });
        for (let index = total; index < picks.length; index++) if (picks[index] !== picks[index - total]) throw new Error(`weights ${weights}: not periodic`);
        return true;
      }),
      { numRuns: 300 },
    );
    t.pass('exact shares per cycle, periodic');
  });

  t.test('smooth: no backend is chosen more often than its share allows in any prefix (property)', async (t) => {
    // Smooth WRR keeps every prefix within one pick of the ideal share weight/total.
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 2, maxLength: 5 }), (weights) => {
        const pool = poolOf(weights.map((weight, index) => backend(index + 1, weight)));
        const total = weights.reduce((sum, weight) => sum + weight, 0);
        const counts = weights.map(() => 0);
        for (let pick = 1; pick <= total; pick++) {
          counts[planPorts(pool)[0]! - 1]!++;
          weights.forEach((weight, index) => {
            const ideal = (pick * weight) / total;
            if (Math.abs(counts[index]! - ideal) >= weights.length)
              throw new Error(`weights ${weights}: backend ${index + 1} has ${counts[index]} after ${pick} picks (ideal ${ideal})`);
          });
        }
        return true;
      }),
      { numRuns: 200 },
    );
    t.pass('interleaved');
  });
});

t.test('weight 0 takes no new connections', async (t) => {
  const pool = poolOf([backend(1, 0), backend(2, 1), backend(3, 2)]);
  t.strictSame(
    pool.targets.map((target) => target.config.port),
    [2, 3],
    'not among the targets',
  );
  for (const balance of ['roundrobin', 'leastconn', 'source'] as const) {
    const modePool = poolOf([backend(1, 0), backend(2, 1), backend(3, 2)], { balance });
    const planned = new Set<number>();
    for (const client of randomClients(100, 7)) for (const port of planPorts(modePool, client)) planned.add(port);
    t.strictSame([...planned].sort(), [2, 3], `${balance}: never planned, not even as a failover`);
  }
  t.strictSame(planPorts(poolOf([backend(1, 0), backend(2, 0)])), [], 'all weight 0: nothing to try');
  t.strictSame(planPorts(poolOf([backend(1, 0)], { retries: 3 })), [], 'weight 0 and retries: still nothing');

  t.test('from a parsed config', async (t) => {
    const config = parseConfig(
      ['listeners:', '  - listen: 127.0.0.1:0', '    default:', '      backends: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 0 }]', ''].join('\n'),
      'pool.yaml',
    );
    const pool = new BackendPool(config.listeners[0]!.defaultRoute!, recordingRegistry().registry);
    t.strictSame(firstChoices(pool, 4), [9001, 9001, 9001, 9001]);
    t.strictSame(planPorts(pool), [9001]);
  });
});

t.test('failover order and retries', async (t) => {
  t.test('retries null: the chosen backend first, then each other usable one once', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3)]);
    t.strictSame(planPorts(pool), [1, 2, 3]);
    t.strictSame(planPorts(pool), [2, 3, 1]);
    t.strictSame(planPorts(pool), [3, 1, 2]);
  });

  t.test('retries null leaves out backends that are not usable', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3)], { maxFails: 1, failTimeout: 60_000 });
    failDial(pool, targetOf(pool, 1));
    for (let connection = 0; connection < 4; connection++) {
      const plan = planPorts(pool);
      t.strictSame([...plan].sort(), [2, 3], `connection ${connection}: each usable backend once (${plan})`);
    }
  });

  t.test('retries null with weights: each usable backend exactly once (property)', async (t) => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom('roundrobin', 'leastconn', 'source'),
        fc.integer({ min: 1, max: 20 }),
        (weights, balance, connections) => {
          const pool = poolOf(
            weights.map((weight, index) => backend(index + 1, weight)),
            { balance },
          );
          const usable = weights.flatMap((weight, index) => (weight > 0 ? [index + 1] : []));
          for (let connection = 0; connection < connections; connection++) {
            const plan = planPorts(pool, `10.0.0.${connection}`);
            if ([...plan].sort((a, b) => a - b).join() !== usable.join())
              throw new Error(`weights ${weights} (${balance}): plan ${plan} is not each usable backend once`);
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
    t.pass('every plan holds each backend with weight > 0 exactly once');
  });

  t.test('retries N: N + 1 attempts, cycling through the usable backends', async (t) => {
    const three = (retries: number): number[] => planPorts(poolOf([backend(1), backend(2), backend(3)], { retries }));
    t.strictSame(three(0), [1], 'retries 0: only the chosen one');
    t.strictSame(three(1), [1, 2]);
    t.strictSame(three(2), [1, 2, 3]);
    t.strictSame(three(4), [1, 2, 3, 1, 2], 'more retries than backends: round again');
    t.strictSame(planPorts(poolOf([backend(1), backend(2)], { retries: 4 })), [1, 2, 1, 2, 1]);
    t.strictSame(planPorts(poolOf([backend(5)], { retries: 2 })), [5, 5, 5], 'one backend, tried three times');

    const rotating = poolOf([backend(1), backend(2), backend(3)], { retries: 3 });
    t.strictSame(planPorts(rotating), [1, 2, 3, 1]);
    t.strictSame(planPorts(rotating), [2, 3, 1, 2], 'starts at the balancer’s choice');

    const withOneOut = poolOf([backend(1), backend(2), backend(3)], { retries: 3, maxFails: 1, failTimeout: 60_000 });
    failDial(withOneOut, targetOf(withOneOut, 2));
    t.strictSame(planPorts(withOneOut), [1, 3, 1, 3], 'cycling over the usable ones only');
  });

  t.test('retries N: always N + 1 attempts, each a usable backend (property)', async (t) => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 8 }), (weights, retries) => {
        const pool = poolOf(
          weights.map((weight, index) => backend(index + 1, weight)),
          { retries },
        );
        const plan = planPorts(pool);
        if (plan.length !== retries + 1) throw new Error(`weights ${weights}, retries ${retries}: ${plan.length} attempts`);
        // Consecutive attempts go round the list: the next backend after each one.
        for (let index = 1; index < plan.length; index++) {
          if (plan[index] !== (plan[index - 1]! % weights.length) + 1) throw new Error(`weights ${weights}, retries ${retries}: ${plan} does not cycle`);
        }
        return true;
      }),
      { numRuns: 300 },
    );
    t.pass('N + 1 attempts, cycling');
  });
});

t.test('leastconn', async (t) => {
  t.test('picks the fewest open connections', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3)], { balance: 'leastconn' });
    targetOf(pool, 1).state.active = 5;
    targetOf(pool, 2).state.active = 1;
    targetOf(pool, 3).state.active = 3;
    t.strictSame(firstChoices(pool, 4), [2, 2, 2, 2], 'planning alone opens nothing: the same one each time');
    t.strictSame(planPorts(pool).length, 3, 'the others follow as failovers');
  });

  t.test('relative to weight: state.active / weight', async (t) => {
    const pool = poolOf([backend(11, 3), backend(12, 1)], { balance: 'leastconn' });
    targetOf(pool, 11).state.active = 3; // 1 per unit of weight
    targetOf(pool, 12).state.active = 2; // 2 per unit of weight
    t.equal(planPorts(pool)[0], 11);
    targetOf(pool, 11).state.active = 9; // 3 per unit of weight
    t.equal(planPorts(pool)[0], 12);
  });

  t.test('ties spread instead of piling onto the first backend', async (t) => {
    const idle = poolOf([backend(21), backend(22), backend(23)], { balance: 'leastconn' });
    t.strictSame(new Set(firstChoices(idle, 3)), new Set([21, 22, 23]), 'three idle backends: three different choices');

    const partial = poolOf([backend(31), backend(32), backend(33)], { balance: 'leastconn' });
    targetOf(partial, 33).state.active = 4;
    const picks = firstChoices(partial, 6);
    t.notOk(picks.includes(33), 'the loaded one is never chosen');
    t.ok(picks.includes(31) && picks.includes(32), `both tied backends are chosen (${picks})`);
  });

  t.test('connections that stay open end up spread by weight', async (t) => {
    const pool = poolOf([backend(1, 1), backend(2, 2), backend(3, 1)], { balance: 'leastconn' });
    for (let connection = 0; connection < 400; connection++) pool.beginAttempt(pool.plan(CLIENT)[0]!);
    t.strictSame(
      pool.targets.map((target) => target.state.active),
      [100, 200, 100],
      'open connections per backend proportional to weight',
    );
  });

  t.test('a dial in flight counts as a connection, until it fails or is abandoned', async (t) => {
    const pool = poolOf([backend(1), backend(2)], { balance: 'leastconn' });
    const dialling = pool.beginAttempt(targetOf(pool, 1))!;
    t.strictSame(firstChoices(pool, 3), [2, 2, 2], 'the backend being dialled is not idle');
    pool.attemptFailed(dialling);
    t.equal(targetOf(pool, 1).state.active, 0, 'a failed dial is no longer counted');
    pool.attemptAbandoned(pool.beginAttempt(targetOf(pool, 2))!);
    t.equal(targetOf(pool, 2).state.active, 0, 'nor is an abandoned one');
  });

  t.test('a backend that is not usable is never chosen, however idle', async (t) => {
    const pool = poolOf([backend(1), backend(2)], { balance: 'leastconn', maxFails: 1, failTimeout: 60_000 });
    targetOf(pool, 2).state.active = 50;
    failDial(pool, targetOf(pool, 1));
    t.strictSame(firstChoices(pool, 3), [2, 2, 2]);
  });
});

t.test('source', async (t) => {
  const clients = randomClients(1000);

  t.test('the same client always gets the same backend while the usable set is unchanged', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3), backend(4, 2)], { balance: 'source' });
    const first = new Map(clients.map((client) => [client, planPorts(pool, client)[0]!]));
    // Interleave other clients' connections: source hashing has no hidden rotation.
    let changed = 0;
    for (let round = 0; round < 3; round++) for (const client of clients) if (planPorts(pool, client)[0] !== first.get(client)) changed++;
    t.equal(changed, 0, 'no client ever changed backend over 3000 more connections');

    const twin = poolOf([backend(1), backend(2), backend(3), backend(4, 2)], { balance: 'source' });
    t.ok(
      clients.every((client) => planPorts(twin, client)[0] === first.get(client)),
      'a new pool for the same backends (a reload) gives every client the same backend',
    );
  });

  t.test('removing one backend from the config moves only that backend’s clients', async (t) => {
    const before = poolOf([backend(1), backend(2), backend(3), backend(4)], { balance: 'source' });
    const after = poolOf([backend(1), backend(2), backend(4)], { balance: 'source' });
    let moved = 0;
    let wrongly = 0;
    for (const client of clients) {
      const was = planPorts(before, client)[0]!;
      const now = planPorts(after, client)[0]!;
      if (was === 3) moved++;
      else if (now !== was) wrongly++;
    }
    t.equal(wrongly, 0, 'clients of the remaining backends stay where they were');
    t.ok(moved > 150 && moved < 350, `about a quarter of the clients were on the removed backend and moved (${moved} of 1000)`);
  });

  t.test('a backend taken out by failures moves only its clients, and they come back with it', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3)], { balance: 'source', maxFails: 1, failTimeout: 60_000 });
    const before = new Map(clients.map((client) => [client, planPorts(pool, client)[0]!]));
    failDial(pool, targetOf(pool, 2));
    let wrongly = 0;
    for (const client of clients) {
      const now = planPorts(pool, client)[0]!;
      if (now === 2 || (before.get(client) !== 2 && now !== before.get(client))) wrongly++;
    }
    t.equal(wrongly, 0, 'only the clients of backend 2 moved, and none went to it');
    targetOf(pool, 2).state.connectSucceeded();
    t.ok(
      clients.every((client) => planPorts(pool, client)[0] === before.get(client)),
      'back up: every client is on its original backend again',
    );
  });

  t.test('shares roughly follow the weights', async (t) => {
    const many = randomClients(3000, 99);
    const pool = poolOf([backend(1, 1), backend(2, 2), backend(3, 3)], { balance: 'source' });
    const counts = countBy(many.map((client) => planPorts(pool, client)[0]!));
    const expected = { 1: 500, 2: 1000, 3: 1500 } as Record<number, number>;
    for (const port of [1, 2, 3]) {
      const got = counts.get(port) ?? 0;
      t.ok(Math.abs(got - expected[port]!) <= expected[port]! * 0.2, `weight ${port}: ${got} of 3000 clients (expected ${expected[port]} ± 20%)`);
    }
  });

  t.test('equal weights: an even spread', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3), backend(4)], { balance: 'source' });
    const counts = countBy(clients.map((client) => planPorts(pool, client)[0]!));
    for (const port of [1, 2, 3, 4]) t.ok(Math.abs((counts.get(port) ?? 0) - 250) <= 60, `backend ${port}: ${counts.get(port)} of 1000 (expected 250 ± 60)`);
  });
});

t.test('passive health through the registry states', async (t) => {
  t.test('after maxFails consecutive failures a backend is skipped until failTimeout elapses, then probed by exactly one connection', async (t) => {
    const { registry, events } = recordingRegistry();
    const pool = poolOf([backend(1), backend(2)], { maxFails: 2, failTimeout: 50 }, registry);
    const one = targetOf(pool, 1);

    failDial(pool, one);
    t.strictSame([...planPorts(pool)].sort(), [1, 2], 'one failure of two allowed: still planned');
    t.same(events, [], 'no health change yet');

    const failedAt = performance.now();
    failDial(pool, one);
    t.notOk(planPorts(pool).includes(1), 'maxFails reached: skipped');
    t.ok(one.state.downUntil >= failedAt + 50, 'out for failTimeout from the failure');
    t.same(events, [{ backend: '127.0.0.1:1', state: 'down', cause: 'connect_failures' }], 'one "down" event');
    t.strictSame(firstChoices(pool, 4), [2, 2, 2, 2], 'every connection goes to the other backend meanwhile');

    await waitFor(() => planPorts(pool).includes(1), 'backend 1 planned again after failTimeout', 20_000);
    t.ok(performance.now() >= one.state.downUntil, 'planned again only once failTimeout has elapsed');
    const probe = pool.beginAttempt(one);
    t.ok(probe?.probe, 'the first connection claims the probe');
    t.equal(pool.beginAttempt(one), null, 'a second connection may not try it meanwhile');
    t.notOk(planPorts(pool).includes(1), 'nor is it planned for new connections while the probe runs');
    pool.attemptAbandoned(probe!);
    const retry = pool.beginAttempt(one);
    t.ok(retry?.probe, 'the client of the probe left: the next connection probes instead');

    pool.attemptSucceeded(retry!);
    pool.release(retry!);
    t.same(events[1], { backend: '127.0.0.1:1', state: 'up', cause: 'recovered' }, 'success brings it up');
    t.equal(events.length, 2);
    t.equal(one.state.downUntil, 0);
    t.equal(one.state.failures, 0, 'failures reset');
    t.ok(one.state.startAttempt(performance.now()) && one.state.startAttempt(performance.now()), 'up: any number of connections may try it');
    t.strictSame([...planPorts(pool)].sort(), [1, 2], 'planned again');
  });

  t.test('a failed probe keeps it out for another failTimeout (a single failure is enough)', async (t) => {
    const { registry, events } = recordingRegistry();
    const pool = poolOf([backend(1), backend(2)], { maxFails: 3, failTimeout: 50 }, registry);
    const one = targetOf(pool, 1);
    for (let failure = 0; failure < 3; failure++) failDial(pool, one);
    t.notOk(planPorts(pool).includes(1));

    await waitFor(() => planPorts(pool).includes(1), 'backend 1 planned again after failTimeout', 20_000);
    const probe = pool.beginAttempt(one);
    t.ok(probe?.probe, 'the probe');
    const probeFailedAt = performance.now();
    pool.attemptFailed(probe!);
    t.notOk(planPorts(pool).includes(1), 'the probe failed: out again at once, without waiting for maxFails failures');
    t.ok(one.state.downUntil >= probeFailedAt + 50, 'for another failTimeout');
    t.notOk(one.state.startAttempt(performance.now()), 'no probe before that');
    t.equal(events.length, 1, 'still the one "down" event: it never came up');

    await waitFor(() => planPorts(pool).includes(1), 'backend 1 planned again after the second failTimeout', 20_000);
    const secondProbe = pool.beginAttempt(one);
    t.ok(secondProbe?.probe, 'probed again');
    pool.attemptSucceeded(secondProbe!);
    t.same(
      events.map((event) => `${event.state}:${event.cause}`),
      ['down:connect_failures', 'up:recovered'],
    );
  });

  t.test('only consecutive failures count', async (t) => {
    const pool = poolOf([backend(1), backend(2)], { maxFails: 2, failTimeout: 60_000 });
    const one = targetOf(pool, 1);
    failDial(pool, one);
    succeedDial(pool, one);
    failDial(pool, one);
    t.ok(planPorts(pool).includes(1), 'two failures with a success between: still in');
    failDial(pool, one);
    t.notOk(planPorts(pool).includes(1), 'two in a row: out');
  });

  t.test('maxFails 0 never takes a backend out', async (t) => {
    const { registry, events } = recordingRegistry();
    const pool = poolOf([backend(1), backend(2)], { maxFails: 0, failTimeout: 50 }, registry);
    for (let failure = 0; failure < 100; failure++) failDial(pool, targetOf(pool, 1));
    t.strictSame([...planPorts(pool)].sort(), [1, 2]);
    t.equal(targetOf(pool, 1).state.downUntil, 0);
    t.same(events, [], 'no health change');
  });

  t.test('all backends out: an empty plan, for every balance mode', async (t) => {
    for (const balance of ['roundrobin', 'leastconn', 'source'] as const) {
      const pool = poolOf([backend(1), backend(2)], { balance, maxFails: 1, failTimeout: 60_000, retries: 5 });
      for (const target of pool.targets) failDial(pool, target);
      t.strictSame(planPorts(pool), [], balance);
    }
  });

  t.test('the state is shared by every route listing the backend', async (t) => {
    const { registry } = recordingRegistry();
    const first = poolOf([backend(1), backend(2)], { maxFails: 1, failTimeout: 60_000 }, registry);
    const second = poolOf([backend(1), backend(3)], { maxFails: 1, failTimeout: 60_000 }, registry);
    t.equal(targetOf(first, 1).state, targetOf(second, 1).state, 'one BackendState per address');
    failDial(first, targetOf(first, 1));
    t.strictSame(planPorts(second), [3], 'failures seen through one route take it out for the other');
  });
});

t.test('active health: a backend failing its health checks is not planned', async (t) => {
  const healthCheck = { interval: 60_000, timeout: 1_000, rise: 2, fall: 3 };
  const { registry } = recordingRegistry();
  const checked = poolOf([backend(1), backend(2), backend(3)], { healthCheck }, registry);
  targetOf(checked, 2).state.healthy = false;
  for (let connection = 0; connection < 6; connection++) t.notOk(planPorts(checked).includes(2), `connection ${connection}: not planned`);
  t.equal(planPorts(checked).length, 2);

  const leastconn = poolOf([backend(1), backend(2), backend(3)], { healthCheck, balance: 'leastconn' }, registry);
  targetOf(leastconn, 1).state.active = 10;
  targetOf(leastconn, 3).state.active = 10;
  t.notOk(planPorts(leastconn).includes(2), 'leastconn: not even when it is the least loaded');

  const unchecked = poolOf([backend(1), backend(2), backend(3)], {}, registry);
  t.ok(planPorts(unchecked).includes(2), 'a route without healthCheck ignores the flag');

  targetOf(checked, 2).state.healthy = true;
  t.ok(planPorts(checked).includes(2), 'healthy again: planned');

  for (const target of checked.targets) target.state.healthy = false;
  t.strictSame(planPorts(checked), [], 'none healthy: nothing to try');
});

t.test('drain: a drained backend gets no new connection, whatever the route or balance mode', async (t) => {
  t.test('left out of every plan; the others keep their rotation, and undrain brings it back', async (t) => {
    const { registry } = recordingRegistry();
    const pool = poolOf([backend(1), backend(2), backend(3)], {}, registry);
    targetOf(pool, 2).state.drained = true;
    t.strictSame(firstChoices(pool, 4), [1, 3, 1, 3], 'rotation over the others');
    t.strictSame([...planPorts(pool)].sort(), [1, 3], 'not even as a failover');
    targetOf(pool, 2).state.drained = false;
    t.ok(firstChoices(pool, 3).includes(2), 'undrained: chosen again');
  });

  t.test('every balance mode skips it, leastconn even when it is the least loaded', async (t) => {
    for (const balance of ['roundrobin', 'leastconn', 'source'] as const) {
      const pool = poolOf([backend(1), backend(2)], { balance });
      targetOf(pool, 1).state.drained = true;
      targetOf(pool, 2).state.active = 50;
      for (const client of randomClients(20)) t.strictSame(planPorts(pool, client), [2], `${balance} ${client}`);
    }
  });

  t.test('panic routing (the others all down) tries only the undrained ones; all drained: nothing to try', async (t) => {
    const pool = poolOf([backend(1), backend(2), backend(3)], { maxFails: 1, failTimeout: 60_000 });
    failDial(pool, targetOf(pool, 1));
    failDial(pool, targetOf(pool, 3));
    targetOf(pool, 2).state.drained = true;
    t.strictSame(planPorts(pool), [], 'no usable backend: the all-down path');
    t.strictSame(
      pool
        .panicPlan(CLIENT)
        .map((target) => target.config.port)
        .sort(),
      [1, 3],
      'panic plan: the down ones, never the drained one',
    );
    targetOf(pool, 1).state.drained = true;
    targetOf(pool, 3).state.drained = true;
    t.strictSame(pool.panicPlan(CLIENT), [], 'all drained: the panic plan is empty too');
  });

  t.test('drained after a plan was made: beginAttempt refuses it, in panic routing as well', async (t) => {
    const pool = poolOf([backend(1), backend(2)]);
    const plan = pool.plan(CLIENT);
    t.equal(plan.length, 2);
    const drainedTarget = plan[0]!;
    drainedTarget.state.drained = true;
    t.equal(pool.beginAttempt(drainedTarget), null, 'no dial');
    t.equal(pool.beginAttempt(drainedTarget, true), null, 'not even ignoring health');
    t.equal(drainedTarget.state.active, 0, 'nothing counted');
    const other = pool.beginAttempt(plan[1]!);
    t.ok(other, 'the next of the plan is dialled');
  });

  t.test('open connections to a drained backend are untouched: release still counts them down', async (t) => {
    const pool = poolOf([backend(1)]);
    const attempt = pool.beginAttempt(targetOf(pool, 1))!;
    pool.attemptSucceeded(attempt);
    targetOf(pool, 1).state.drained = true;
    t.equal(targetOf(pool, 1).state.active, 1, 'still counted as open');
    pool.release(attempt);
    t.equal(targetOf(pool, 1).state.active, 0);
  });
});
