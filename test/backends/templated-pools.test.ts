// TemplatedPools (lib/backends/templated-pools.ts): a pool per set of names a
// connection fills in, passive health per name, a fixed backend beside a
// template sharing the registry's state, names that cannot be made refused,
// and a bounded number of pools however many names clients send.
import t from 'tap';
import { BackendRegistry, type HealthChange } from '../../lib/backends/health.js';
import { TemplatedPools } from '../../lib/backends/templated-pools.js';
import { parseConfig } from '../../lib/config/load.js';

const config = parseConfig(
  [
    'listeners:',
    '  - listen: 127.0.0.1:0',
    '    routes:',
    '      - hostnames: ["*.example.com"]',
    '        backends: ["{1}.internal:8443", { address: "fixed.internal:443", weight: 3 }]',
    '        maxFails: 1',
    '',
  ].join('\n'),
  'pools.yaml',
);
const route = config.listeners[0]!.routes[0]!;

function setUp(): { pools: TemplatedPools; registry: BackendRegistry; events: HealthChange[] } {
  const events: HealthChange[] = [];
  const registry = new BackendRegistry({ backendHealthChanged: (change) => events.push(change) });
  registry.sync(config);
  return { pools: new TemplatedPools(route, registry), registry, events };
}

t.test('a pool per name, with the template filled in and the fixed backend shared', async (t) => {
  const { pools, registry } = setUp();
  const pool = pools.poolFor('blue.example.com', '*.example.com')!;
  t.same(
    pool.targets.map((target) => [target.config.address, target.config.host, target.config.port, target.config.weight]),
    [
      ['blue.internal:8443', 'blue.internal', 8443, 1],
      ['fixed.internal:443', 'fixed.internal', 443, 3],
    ],
  );
  t.equal(pool.targets[0]!.state.template, '{1}.internal:8443', 'the filled-in backend knows its template');
  t.equal(pool.targets[1]!.state, registry.get('fixed.internal:443'), 'the fixed backend is the registry’s');
  t.equal(pools.poolFor('blue.example.com', '*.example.com'), pool, 'the same name: the same pool (balancing and health carry on)');
  t.not(pools.poolFor('green.example.com', '*.example.com'), pool, 'another name: another pool');
  t.same(
    registry.health().map((entry) => entry.backend),
    ['fixed.internal:443'],
    'names from clients do not grow the registry',
  );
});

t.test('names that cannot fill the template get no pool', async (t) => {
  const { pools } = setUp();
  t.equal(pools.poolFor(null, 'default'), null, 'no name');
  t.equal(pools.poolFor('a:1.example.com', '*.example.com'), null, 'a label no DNS name has');
  t.equal(pools.poolFor('example.org', 'example.org'), null, 'a pattern without a wildcard label');
});

t.test('passive health per name: one name going down leaves the others alone', async (t) => {
  const { pools, events } = setUp();
  const blue = pools.poolFor('blue.example.com', '*.example.com')!;
  const green = pools.poolFor('green.example.com', '*.example.com')!;
  const attempt = blue.beginAttempt(blue.targets[0]!)!;
  blue.attemptFailed(attempt);
  t.same(events, [{ backend: 'blue.internal:8443', state: 'down', cause: 'connect_failures', template: '{1}.internal:8443' }]);
  t.same(
    blue.plan('192.0.2.1').map((target) => target.config.address),
    ['fixed.internal:443'],
    'blue.internal is skipped for blue',
  );
  t.equal(green.plan('192.0.2.1').length, 2, 'green.internal is still used for green');
});

t.test('bounded: past 1024 names the least recently used pool goes', async (t) => {
  const { pools } = setUp();
  const first = pools.poolFor('n0.example.com', '*.example.com')!;
  const second = pools.poolFor('n1.example.com', '*.example.com')!;
  for (let index = 2; index < 1024; index++) pools.poolFor(`n${index}.example.com`, '*.example.com');
  t.equal(pools.poolFor('n0.example.com', '*.example.com'), first, 'at the bound, all kept (n0 now the most recent)');
  pools.poolFor('n1024.example.com', '*.example.com');
  t.equal(pools.poolFor('n0.example.com', '*.example.com'), first, 'n0 stayed');
  t.not(pools.poolFor('n1.example.com', '*.example.com'), second, 'n1, the least recently used, was dropped and is built anew');
});
