// The DNS cache (lib/backends/dns-cache.ts) in front of a real DNS server on
// loopback (test/helpers/dns-server.ts): answers kept for their TTL (clamped),
// failures for a short while, a bounded least-recently-used map, one query for
// concurrent lookups of a name. Time is a clock the test moves by hand, so no
// assertion depends on how fast the machine is.
import t from 'tap';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { DnsServer } from '../helpers/dns-server.js';
import { guard } from '../helpers/wait.js';

const server = await DnsServer.start();
t.teardown(() => server.close());

/** A resolver asking `server`, on a clock at `clock.now` ms. */
function resolverWithClock(options: { maxEntries?: number } = {}): { resolver: HostResolver; clock: { now: number } } {
  const clock = { now: 0 };
  return { resolver: new HostResolver([server.address], { now: () => clock.now, ...options }), clock };
}

function lookup(resolver: HostResolver, name: string): Promise<{ error: string | null; addresses: readonly string[] }> {
  return guard(new Promise((resolve) => resolver.lookup(name, (error, addresses) => resolve({ error, addresses }))), 30_000, `lookup ${name}`);
}

t.test('an answer is kept for its TTL, then asked again', async (t) => {
  server.set('ttl.test', ['10.0.0.1'], 30);
  const { resolver, clock } = resolverWithClock();
  t.same(await lookup(resolver, 'ttl.test'), { error: null, addresses: ['10.0.0.1'] });
  t.equal(server.count('ttl.test'), 1);
  server.set('ttl.test', ['10.0.0.2'], 30);
  clock.now = 29_999;
  t.same((await lookup(resolver, 'ttl.test')).addresses, ['10.0.0.1'], 'within the TTL: the cached answer');
  t.equal(server.count('ttl.test'), 1, 'no second query');
  clock.now = 30_000;
  t.same((await lookup(resolver, 'ttl.test')).addresses, ['10.0.0.2'], 'at the TTL: asked again, the new record');
  t.equal(server.count('ttl.test'), 2);
});

t.test('TTLs are clamped to 1 s .. 1 h', async (t) => {
  server.set('zero.test', ['10.0.0.3'], 0);
  server.set('day.test', ['10.0.0.4'], 86_400);
  const { resolver, clock } = resolverWithClock();
  await lookup(resolver, 'zero.test');
  await lookup(resolver, 'day.test');
  clock.now = 999;
  await lookup(resolver, 'zero.test');
  t.equal(server.count('zero.test'), 1, 'TTL 0 is kept 1 s');
  clock.now = 1_000;
  await lookup(resolver, 'zero.test');
  t.equal(server.count('zero.test'), 2, 'and asked again after it');
  clock.now = 3_599_999;
  await lookup(resolver, 'day.test');
  t.equal(server.count('day.test'), 1, 'a day is kept under an hour');
  clock.now = 3_600_000;
  await lookup(resolver, 'day.test');
  t.equal(server.count('day.test'), 2, 'then asked again');
});

t.test('"no such name" is kept 5 s', async (t) => {
  const { resolver, clock } = resolverWithClock();
  t.same(await lookup(resolver, 'missing.test'), { error: 'ENOTFOUND', addresses: [] });
  clock.now = 4_999;
  t.equal((await lookup(resolver, 'missing.test')).error, 'ENOTFOUND');
  t.equal(server.count('missing.test'), 1, 'not asked again within 5 s');
  server.set('missing.test', ['10.0.0.5'], 60);
  clock.now = 5_000;
  t.same(await lookup(resolver, 'missing.test'), { error: null, addresses: ['10.0.0.5'] }, 'asked again after 5 s');
  t.equal(server.count('missing.test'), 2);
});

t.test('a server failure is kept 1 s, just enough to spare the server a burst', async (t) => {
  server.fail('broken.test');
  const { resolver, clock } = resolverWithClock();
  t.equal((await lookup(resolver, 'broken.test')).error, 'ESERVFAIL');
  const asked = server.count('broken.test');
  t.ok(asked >= 1, `asked (${asked} A queries, retries included)`);
  clock.now = 999;
  t.equal((await lookup(resolver, 'broken.test')).error, 'ESERVFAIL');
  t.equal(server.count('broken.test'), asked, 'not asked again within 1 s');
  server.set('broken.test', ['10.0.0.9'], 60);
  clock.now = 1_000;
  t.same(await lookup(resolver, 'broken.test'), { error: null, addresses: ['10.0.0.9'] }, 'asked again after 1 s: the server has recovered');
});

t.test('concurrent lookups of one name share one query', async (t) => {
  server.set('burst.test', ['10.0.0.6'], 60);
  const { resolver } = resolverWithClock();
  const answers = await Promise.all(Array.from({ length: 50 }, () => lookup(resolver, 'burst.test')));
  t.ok(
    answers.every((answer) => answer.error === null && answer.addresses[0] === '10.0.0.6'),
    'every caller gets the answer',
  );
  t.equal(server.count('burst.test', 'A'), 1, 'one A query');
  t.equal(server.count('burst.test', 'AAAA'), 1, 'one AAAA query');
});

t.test('bounded: the least recently used name goes first', async (t) => {
  for (const name of ['a.lru.test', 'b.lru.test', 'c.lru.test', 'd.lru.test']) server.set(name, ['10.0.1.1'], 600);
  const { resolver } = resolverWithClock({ maxEntries: 3 });
  await lookup(resolver, 'a.lru.test');
  await lookup(resolver, 'b.lru.test');
  await lookup(resolver, 'c.lru.test');
  await lookup(resolver, 'a.lru.test');
  t.equal(server.count('a.lru.test'), 1, 'a is cached and now the most recently used');
  await lookup(resolver, 'd.lru.test');
  await lookup(resolver, 'a.lru.test');
  await lookup(resolver, 'c.lru.test');
  await lookup(resolver, 'd.lru.test');
  t.same(
    ['a', 'b', 'c', 'd'].map((name) => server.count(`${name}.lru.test`)),
    [1, 1, 1, 1],
    'a, c and d stayed cached',
  );
  await lookup(resolver, 'b.lru.test');
  t.equal(server.count('b.lru.test'), 2, 'b was pushed out by d, and is asked again');
});

t.test('a cached answer is still delivered asynchronously', async (t) => {
  server.set('async.test', ['10.0.0.7'], 60);
  const { resolver } = resolverWithClock();
  await lookup(resolver, 'async.test');
  let called = false;
  const delivered = new Promise<void>((resolve) =>
    resolver.lookup('async.test', () => {
      called = true;
      resolve();
    }),
  );
  t.notOk(called, 'not before lookup returns');
  await guard(delivered, 30_000, 'the cached answer');
  t.ok(called);
});
