// HostResolver (lib/backends/host-resolver.ts): the configured DNS servers
// (A then AAAA, the lowest TTL), "localhost" kept off the network, the
// system resolver without servers, and a change of servers starting afresh.
import dgram from 'node:dgram';
import t from 'tap';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { DnsServer } from '../helpers/dns-server.js';
import { guard } from '../helpers/wait.js';

const server = await DnsServer.start();
t.teardown(() => server.close());

function lookup(resolver: HostResolver, name: string): Promise<{ error: string | null; addresses: readonly string[] }> {
  return guard(new Promise((resolve) => resolver.lookup(name, (error, addresses) => resolve({ error, addresses }))), 30_000, `lookup ${name}`);
}

t.test('IPv4 addresses first, then IPv6, kept for the lowest TTL of them', async (t) => {
  server.set('dual.test', ['10.0.0.1', '2001:db8::1', '10.0.0.2'], 60);
  const clock = { now: 0 };
  const resolver = new HostResolver([server.address], { now: () => clock.now });
  t.same(await lookup(resolver, 'dual.test'), { error: null, addresses: ['10.0.0.1', '10.0.0.2', '2001:db8::1'] });
  server.set('short-v6.test', ['10.0.0.3', '2001:db8::3'], 60, 10);
  await lookup(resolver, 'short-v6.test');
  clock.now = 9_999;
  await lookup(resolver, 'short-v6.test');
  t.equal(server.count('short-v6.test'), 1, 'kept while both TTLs last');
  clock.now = 10_000;
  await lookup(resolver, 'short-v6.test');
  t.equal(server.count('short-v6.test'), 2, 'asked again at the AAAA record’s shorter TTL');
  server.set('v6only.test', ['2001:db8::4'], 60);
  t.same(await lookup(resolver, 'v6only.test'), { error: null, addresses: ['2001:db8::4'] }, 'no A record: the AAAA answer alone');
});

t.test('with servers, "localhost" is loopback without a query (RFC 6761), /etc/hosts is not read', async (t) => {
  const resolver = new HostResolver([server.address]);
  t.same(await lookup(resolver, 'localhost'), { error: null, addresses: ['127.0.0.1', '::1'] });
  t.same(await lookup(resolver, 'app.localhost'), { error: null, addresses: ['127.0.0.1', '::1'] });
  t.equal(server.count('localhost') + server.count('app.localhost'), 0, 'no query for them');
  // A name only /etc/hosts knows (every Linux system has localhost there, and ip6-localhost on Debian) goes to the server.
  t.equal((await lookup(resolver, 'ip6-localhost')).error, 'ENOTFOUND', 'the server decides');
  t.equal(server.count('ip6-localhost'), 1);
});

t.test('without servers, the system resolver (so /etc/hosts) answers', async (t) => {
  const resolver = new HostResolver();
  const { error, addresses } = await lookup(resolver, 'localhost');
  t.equal(error, null);
  t.ok(
    addresses.some((address) => address === '127.0.0.1' || address === '::1'),
    `localhost is loopback (${addresses.join(', ')})`,
  );
  t.equal(server.count('localhost'), 0, 'the test server was not asked');
  t.equal((await lookup(resolver, 'does-not-exist.invalid')).error, 'ENOTFOUND');
});

t.test('other servers from a reload: an empty cache asking them', async (t) => {
  const other = await DnsServer.start();
  t.teardown(() => other.close());
  server.set('moved.test', ['10.0.0.8'], 600);
  other.set('moved.test', ['10.0.0.9'], 600);
  const resolver = new HostResolver([server.address]);
  t.same((await lookup(resolver, 'moved.test')).addresses, ['10.0.0.8']);
  resolver.useServers([server.address]);
  t.same((await lookup(resolver, 'moved.test')).addresses, ['10.0.0.8'], 'the same servers: the cache stays');
  t.equal(server.count('moved.test'), 1);
  resolver.useServers([other.address]);
  t.same((await lookup(resolver, 'moved.test')).addresses, ['10.0.0.9'], 'new servers: asked afresh');
  t.equal(other.count('moved.test'), 1);
});

t.test('a server that does not answer is an error, not a name that does not exist', async (t) => {
  // A bound UDP socket that never replies: the resolver times out.
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => silent.close());
  const resolver = new HostResolver([`127.0.0.1:${silent.address().port}`]);
  const { error, addresses } = await lookup(resolver, 'app.test');
  t.same(addresses, []);
  t.ok(error !== null && error !== 'ENOTFOUND' && error !== 'ENODATA', `a server failure (${error})`);
});
