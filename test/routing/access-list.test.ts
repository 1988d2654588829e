// buildAccessCheck (lib/routing/access-list.ts): allow/deny CIDR lists for
// listeners and routes, as the config loader normalizes them.
import { isIP } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { parseConfig } from '../../lib/config/load.js';
import { buildAccessCheck, type AccessCheck } from '../../lib/routing/access-list.js';

function check(allow: string[], deny: string[]): AccessCheck {
  const built = buildAccessCheck({ allow, deny });
  if (built === null) throw new Error('expected a check');
  return built;
}

t.test('empty lists: no check at all', async (t) => {
  t.equal(buildAccessCheck({ allow: [], deny: [] }), null);
});

t.test('empty allow: everyone but the denied', async (t) => {
  const only = check([], ['192.0.2.0/24']);
  t.equal(only('192.0.2.9'), false);
  t.equal(only('198.51.100.1'), true);
  t.equal(only('::1'), true, 'IPv6 clients too');
  t.equal(only('2001:db8::1'), true);
});

t.test('allow only: nobody else', async (t) => {
  const only = check(['10.0.0.0/8', '2001:db8::/32'], []);
  t.equal(only('10.1.2.3'), true);
  t.equal(only('11.0.0.1'), false);
  t.equal(only('2001:db8:1::5'), true);
  t.equal(only('2001:db9::1'), false);
  t.equal(only('::1'), false);
});

t.test('deny wins over allow', async (t) => {
  const both = check(['10.0.0.0/8'], ['10.1.0.0/16']);
  t.equal(both('10.2.0.1'), true);
  t.equal(both('10.1.0.1'), false, 'in both lists: denied');
  t.equal(both('192.0.2.1'), false, 'in neither: not allowed');
  const same = check(['127.0.0.1/32'], ['127.0.0.1/32']);
  t.equal(same('127.0.0.1'), false, 'the same range in both: denied');
});

t.test('IPv4 prefixes', async (t) => {
  const ranges = check(['192.0.2.0/25', '198.51.100.7/32', '203.0.113.0/31'], []);
  t.equal(ranges('192.0.2.0'), true, 'network address');
  t.equal(ranges('192.0.2.127'), true, 'last address of the /25');
  t.equal(ranges('192.0.2.128'), false, 'first address after it');
  t.equal(ranges('198.51.100.7'), true, '/32: that address');
  t.equal(ranges('198.51.100.8'), false);
  t.equal(ranges('203.0.113.1'), true);
  t.equal(ranges('203.0.113.2'), false);
  const all = check(['0.0.0.0/0'], []);
  t.equal(all('1.2.3.4'), true, '/0: every IPv4 client');
  t.equal(all('255.255.255.255'), true);
});

t.test('IPv6 prefixes', async (t) => {
  const ranges = check(['2001:db8:abcd::/48', '::1/128', 'fe80::/10'], []);
  t.equal(ranges('2001:db8:abcd:ffff::1'), true);
  t.equal(ranges('2001:db8:abce::1'), false);
  t.equal(ranges('::1'), true, 'loopback');
  t.equal(ranges('::2'), false);
  t.equal(ranges('fe80::1234'), true);
  t.equal(ranges('febf::1'), true, 'last /10 block');
  t.equal(ranges('fec0::1'), false);
  t.equal(ranges('2001:0db8:abcd:0000:0000:0000:0000:0001'), true, 'uncompressed client address');
  t.equal(ranges('2001:DB8:ABCD::1'), true, 'upper-case client address');
  t.equal(check([], ['fe80::/10'])('fe80::1%eth0'), false, 'a link-local client with a zone id is still denied');
});

t.test('host bits in a range do not change what matches', async (t) => {
  t.equal(check(['10.1.2.3/8'], [])('10.200.0.1'), true);
  t.equal(check(['10.1.2.3/8'], [])('11.0.0.1'), false);
  t.equal(check(['2001:db8::1/32'], [])('2001:db8:ffff::1'), true);
});

t.test('IPv4-mapped IPv6 client addresses are matched against IPv4 ranges', async (t) => {
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
  const allow = check(['10.0.0.0/8'], []);
  t.equal(allow('::ffff:10.1.2.3'), true);
  t.equal(allow('::ffff:11.1.2.3'), false);
  const deny = check([], ['127.0.0.0/8']);
  t.equal(deny('::ffff:127.0.0.1'), false, 'a denied IPv4 client cannot slip through as a mapped address');
  t.equal(deny('::ffff:192.0.2.1'), true);
  const hex = check([], ['192.0.2.0/24']);
  t.equal(hex('::ffff:c000:0201'), false, 'the mapped address written in hex');
});

t.test('IPv4 ranges never match genuine IPv6 clients', async (t) => {
  const v4 = check(['0.0.0.0/0'], []);
  t.equal(v4('::1'), false);
  t.equal(v4('2001:db8::1'), false);
  t.equal(v4('::'), false);
});

// Not an IP: what the connection records when the socket closed before its address was read, and text no parser accepts.
const NOT_IPS = [
  'unknown',
  '',
  'localhost',
  '10.0.0.1:443',
  '[::1]',
  ' 10.0.0.1',
  '10.0.0.1 ',
  '010.0.0.1',
  '10.0.0',
  '10.0.0.1.5',
  '::ffff:10.0.0.1:443',
  '2001:db8::1::2',
];

t.test('a client address that is not an IP is refused by every list, never thrown on (fail closed)', async (t) => {
  const lists: Array<[string, AccessCheck]> = [
    ['allow only', check(['10.0.0.0/8'], [])],
    ['deny only', check([], ['10.0.0.0/8'])],
    ['deny only, IPv6', check([], ['2001:db8::/32'])],
    ['allow and deny', check(['0.0.0.0/0', '::/0'], ['192.0.2.0/24'])],
    ['allow everything', check(['0.0.0.0/0', '::/0'], [])],
  ];
  for (const [name, access] of lists) {
    for (const input of NOT_IPS) {
      t.doesNotThrow(() => access(input), `${name}, ${JSON.stringify(input)}`);
      t.equal(access(input), false, `${name} refuses ${JSON.stringify(input)}`);
    }
  }
  const denyOnly = check([], ['10.0.0.0/8']);
  t.equal(denyOnly('192.0.2.1'), true, 'while an IPv4 client outside the deny list is served');
  t.equal(denyOnly('2001:db8::1'), true, 'and an IPv6 one');
  t.equal(denyOnly('fe80::1%eth0'), true, 'and one with a zone id, which is an IP');
  t.equal(check(['10.0.0.0/8'], [])('fe80::1%eth0'), false, 'that an allow list without its range refuses');
});

t.test('lists as the config loader gives them', async (t) => {
  const config = parseConfig(
    [
      'listeners:',
      '  - listen: 127.0.0.1:0',
      '    allow: [10.0.0.0/8, "2001:DB8::/32", 192.0.2.7]',
      '    deny: [10.9.0.0/16]',
      '    default:',
      '      backends: [127.0.0.1:9]',
      '      allow: ["::1"]',
      '',
    ].join('\n'),
    'acl.yaml',
  );
  const listener = config.listeners[0]!;
  const forListener = buildAccessCheck(listener)!;
  t.equal(forListener('10.1.1.1'), true);
  t.equal(forListener('10.9.1.1'), false);
  t.equal(forListener('192.0.2.7'), true, 'a bare address is a /32');
  t.equal(forListener('192.0.2.8'), false);
  t.equal(forListener('2001:db8::5'), true, 'upper-case IPv6 range from the file');
  const forRoute = buildAccessCheck(listener.defaultRoute!)!;
  t.equal(forRoute('::1'), true, 'a bare IPv6 address is a /128');
  t.equal(forRoute('::2'), false);
  t.equal(forRoute('127.0.0.1'), false);
});

// Reference: IPv4 as 32-bit numbers, ranges by mask; deny wins, empty allow allows all.
const toNumber = (address: string): number => address.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
const inRange = (address: string, cidr: string): boolean => {
  const [network, prefixText] = cidr.split('/') as [string, string];
  const prefix = Number(prefixText);
  if (prefix === 0) return true;
  const size = 2 ** (32 - prefix);
  return Math.floor(toNumber(address) / size) === Math.floor(toNumber(network) / size);
};
const reference = (allow: string[], deny: string[], address: string): boolean =>
  !deny.some((cidr) => inRange(address, cidr)) && (allow.length === 0 || allow.some((cidr) => inRange(address, cidr)));

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((octets) => octets.join('.'));
/** Ranges near the probe addresses more often than chance would put them. */
const cidr = (near: string[]) =>
  fc
    .tuple(near.length > 0 ? fc.oneof(ipv4, fc.constantFrom(...near)) : ipv4, fc.integer({ min: 0, max: 32 }))
    .map(([address, prefix]) => `${address}/${prefix}`);

t.test('matches a simple reference implementation for IPv4 (property)', async (t) => {
  fc.assert(
    fc.property(
      fc
        .array(ipv4, { minLength: 1, maxLength: 8 })
        .chain((clients) => fc.tuple(fc.constant(clients), fc.array(cidr(clients), { maxLength: 5 }), fc.array(cidr(clients), { maxLength: 5 }))),
      ([clients, allow, deny]) => {
        const built = buildAccessCheck({ allow, deny });
        if (allow.length === 0 && deny.length === 0) return built === null;
        for (const client of clients) {
          const expected = reference(allow, deny, client);
          if (built!(client) !== expected) throw new Error(`allow ${allow} deny ${deny}: ${client} should be ${expected ? 'allowed' : 'refused'}`);
          if (built!(`::ffff:${client}`) !== expected)
            throw new Error(`allow ${allow} deny ${deny}: ::ffff:${client} should be ${expected ? 'allowed' : 'refused'}`);
        }
        return true;
      },
    ),
    { numRuns: 1_000 },
  );
  t.pass('same answer as the reference for 1000 random lists');
});

t.test('ranges apply to their own family only (as nginx): ::/0 is not every IPv4 client', async (t) => {
  const allowAllIPv6 = check(['::/0'], []);
  t.equal(allowAllIPv6('2001:db8::1'), true);
  t.equal(allowAllIPv6('192.0.2.1'), false, 'an IPv4 client is not in ::/0');
  t.equal(allowAllIPv6('::ffff:192.0.2.1'), false, 'nor is it as a mapped address');
  const denyAllIPv4 = check([], ['0.0.0.0/0']);
  t.equal(denyAllIPv4('2001:db8::1'), true, 'IPv4 ranges do not touch IPv6 clients');
  t.equal(denyAllIPv4('192.0.2.1'), false);
});

t.test('property: anything net.isIP rejects is refused by any list', async (t) => {
  const notIp = fc
    .oneof(
      fc.string(),
      fc.constantFrom(...NOT_IPS),
      fc.tuple(ipv4, fc.string({ minLength: 1 })).map(([address, noise]) => address + noise),
    )
    .filter((text) => isIP(text) === 0);
  const anyCidr = fc.oneof(cidr([]), fc.constantFrom('::/0', '2001:db8::/32', '::1/128'));
  fc.assert(
    fc.property(fc.array(anyCidr, { maxLength: 3 }), fc.array(anyCidr, { maxLength: 3 }), notIp, (allow, deny, address) => {
      const built = buildAccessCheck({ allow, deny });
      return built === null || built(address) === false;
    }),
    { numRuns: 1_000 },
  );
  t.pass('1000 random lists and non-addresses');
});
