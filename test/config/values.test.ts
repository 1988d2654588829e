import fc from 'fast-check';
import t, { type Test } from 'tap';
import {
  formatAddress,
  formatDuration,
  normalizeHostnamePattern,
  parseAlpnProtocol,
  parseBackendAddress,
  parseCidr,
  parseDuration,
  parseListenAddress,
} from '../../lib/config/values.js';
import { ValueError } from '../../lib/errors.js';

/** Asserts `run` throws a `ValueError` whose message matches `message`. */
function rejects(t: Test, run: () => unknown, message: RegExp | string, label: string): void {
  try {
    const value = run();
    t.fail(`${label}: expected a ValueError, got ${JSON.stringify(value)}`);
  } catch (error) {
    t.ok(error instanceof ValueError, `${label}: throws a ValueError`);
    if (typeof message === 'string') t.equal((error as Error).message, message, `${label}: message`);
    else t.match((error as Error).message, message, `${label}: message`);
  }
}

t.test('parseDuration', async (t) => {
  t.test('units and plain milliseconds', async (t) => {
    const cases: Array<[unknown, number]> = [
      ['0', 0],
      [0, 0],
      ['250ms', 250],
      ['10s', 10_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['1m30s', 90_000],
      ['1h0m5s', 3_605_000],
      ['1.5s', 1_500],
      ['10', 10],
      [1500, 1500],
      [' 10s ', 10_000],
    ];
    for (const [input, expected] of cases) t.equal(parseDuration(input), expected, JSON.stringify(input));
  });

  t.test('fractions of a millisecond round to the nearest millisecond', async (t) => {
    t.equal(parseDuration(1.4), 1);
    t.equal(parseDuration(1.6), 2);
    t.equal(parseDuration('0.25s'), 250);
    t.equal(parseDuration('0.4ms'), 0);
  });

  t.test('rejects what is not a duration', async (t) => {
    const unitHint = /use a number with a unit \(ms, s, m, h\)/;
    rejects(t, () => parseDuration('5 sec'), 'invalid duration "5 sec": use a number with a unit (ms, s, m, h), e.g. "250ms", "10s", "5m"', '"5 sec"');
    rejects(t, () => parseDuration('10 s'), unitHint, 'space before the unit');
    rejects(t, () => parseDuration('10S'), unitHint, 'units are lower case');
    rejects(t, () => parseDuration('5d'), unitHint, 'no day unit');
    rejects(t, () => parseDuration('10sec'), unitHint, 'trailing letters');
    rejects(t, () => parseDuration('s'), unitHint, 'unit without a number');
    rejects(t, () => parseDuration('-1s'), unitHint, 'negative string');
    rejects(t, () => parseDuration('1e3'), unitHint, 'exponent');
    rejects(t, () => parseDuration('.5s'), unitHint, 'leading dot');
    rejects(t, () => parseDuration(''), 'invalid duration "": use e.g. "10s"', 'empty');
    rejects(t, () => parseDuration('   '), /invalid duration ""/, 'blank');
    rejects(t, () => parseDuration(-1), 'invalid duration -1: must be a non-negative number of milliseconds', '-1');
    rejects(t, () => parseDuration(Number.NaN), /invalid duration NaN/, 'NaN');
    rejects(t, () => parseDuration(Number.POSITIVE_INFINITY), /invalid duration Infinity/, 'Infinity');
    const notAString = 'a duration must be a string like "10s" or a number of milliseconds';
    rejects(t, () => parseDuration(true), notAString, 'boolean');
    rejects(t, () => parseDuration(null), notAString, 'null');
    rejects(t, () => parseDuration(['10s']), notAString, 'list');
  });

  t.test('the largest duration Node timers hold is accepted', async (t) => {
    t.equal(parseDuration(2_147_483_647), 2_147_483_647);
    t.equal(parseDuration('596h'), 2_145_600_000);
    t.equal(parseDuration('2147483647'), 2_147_483_647, 'as a digit string');
    t.equal(parseDuration('596h31m23s647ms'), 2_147_483_647, 'spelled out with units');
  });

  t.test('durations longer than Node timers hold (2147483647 ms) are refused', async (t) => {
    const tooLong = (input: unknown): string => `duration ${JSON.stringify(input)} is too long (at most 596h, about 24 days)`;
    rejects(t, () => parseDuration('600h'), tooLong('600h'), '"600h"');
    rejects(t, () => parseDuration('597h'), tooLong('597h'), '"597h"');
    rejects(t, () => parseDuration('596h31m23s648ms'), tooLong('596h31m23s648ms'), 'one millisecond too many, with units');
    rejects(t, () => parseDuration('2147483648'), tooLong('2147483648'), 'one millisecond too many, as a digit string');
    rejects(t, () => parseDuration(2_147_483_648), tooLong(2_147_483_648), 'one millisecond too many, as a number');
    rejects(t, () => parseDuration(1e20), /^duration 100000000000000000000 is too long/, 'a huge number');
    rejects(t, () => parseDuration(' 600h '), tooLong(' 600h '), 'quotes the input as written');
  });
});

t.test('formatDuration', async (t) => {
  t.test('the shortest exact spelling', async (t) => {
    const cases: Array<[number, string]> = [
      [0, '0'],
      [1, '1ms'],
      [250, '250ms'],
      [999, '999ms'],
      [1000, '1s'],
      [1500, '1500ms'],
      [10_000, '10s'],
      [60_000, '1m'],
      [90_000, '90s'],
      [300_000, '5m'],
      [3_600_000, '1h'],
      [5_400_000, '90m'],
      [86_400_000, '24h'],
    ];
    for (const [input, expected] of cases) t.equal(formatDuration(input), expected, String(input));
  });

  t.test('round-trips through parseDuration (property)', async (t) => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2_147_483_647 }), (milliseconds) => parseDuration(formatDuration(milliseconds)) === milliseconds),
      { numRuns: 2000 },
    );
    t.pass('parseDuration(formatDuration(n)) === n for 2000 integers');
  });
});

t.test('parseListenAddress', async (t) => {
  t.test('the accepted spellings', async (t) => {
    const cases: Array<[unknown, { host: string | null; port: number }]> = [
      ['127.0.0.1:8443', { host: '127.0.0.1', port: 8443 }],
      ['[::1]:8443', { host: '::1', port: 8443 }],
      ['[FE80::1]:8443', { host: 'fe80::1', port: 8443 }],
      ['[::ffff:127.0.0.1]:8443', { host: '::ffff:127.0.0.1', port: 8443 }],
      [':8443', { host: null, port: 8443 }],
      ['*:8443', { host: null, port: 8443 }],
      ['8443', { host: null, port: 8443 }],
      [8443, { host: null, port: 8443 }],
      [0, { host: null, port: 0 }],
      ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
      [65535, { host: null, port: 65535 }],
      ['LOCALHOST:8443', { host: 'localhost', port: 8443 }],
      ['proxy.internal:443', { host: 'proxy.internal', port: 443 }],
      ['example.com:08443', { host: 'example.com', port: 8443 }],
      ['0.0.0.0:8443', { host: '0.0.0.0', port: 8443 }],
      ['[::]:8443', { host: '::', port: 8443 }],
    ];
    for (const [input, expected] of cases) t.same(parseListenAddress(input), expected, JSON.stringify(input));
  });

  t.test('rejects bad addresses with a message naming the problem', async (t) => {
    rejects(t, () => parseListenAddress('127.0.0.1'), 'invalid address "127.0.0.1": expected "host:port"', 'no port');
    rejects(t, () => parseListenAddress(''), 'invalid address "": expected "host:port"', 'empty');
    rejects(t, () => parseListenAddress('127.0.0.1:'), 'missing port in "127.0.0.1:"', 'empty port');
    rejects(t, () => parseListenAddress('[::1]:'), 'missing port in "[::1]:"', 'empty port after brackets');
    rejects(t, () => parseListenAddress(':'), 'missing port in ":"', 'only a colon');
    rejects(t, () => parseListenAddress('127.0.0.1:84 43'), 'invalid port in "127.0.0.1:84 43"', 'space in port');
    rejects(t, () => parseListenAddress('127.0.0.1:http'), 'invalid port in "127.0.0.1:http"', 'service name');
    rejects(t, () => parseListenAddress('65536'), 'port 65536 in "65536" is out of range (0-65535)', 'port too big (string)');
    rejects(t, () => parseListenAddress(65536), 'port 65536 in "65536" is out of range (0-65535)', 'port too big (number)');
    rejects(t, () => parseListenAddress(-1), 'invalid port in "-1"', 'negative');
    rejects(t, () => parseListenAddress(8443.5), 'invalid port 8443.5', 'fraction');
    rejects(
      t,
      () => parseListenAddress('::1:8443'),
      'invalid address "::1:8443": write IPv6 addresses in brackets, e.g. "[::1]:8443"',
      'IPv6 without brackets',
    );
    rejects(t, () => parseListenAddress('[::1]8443'), 'invalid address "[::1]8443": expected "[IPv6]:port"', 'no colon after ]');
    rejects(t, () => parseListenAddress('[::1]'), 'invalid address "[::1]": expected "[IPv6]:port"', 'brackets, no port');
    rejects(t, () => parseListenAddress('[::1:8443'), 'invalid address "[::1:8443": expected "[IPv6]:port"', 'unclosed bracket');
    rejects(t, () => parseListenAddress('[zz]:8443'), 'invalid IPv6 address "zz" in "[zz]:8443"', 'not IPv6 in brackets');
    rejects(t, () => parseListenAddress('[127.0.0.1]:8443'), 'invalid IPv6 address "127.0.0.1" in "[127.0.0.1]:8443"', 'IPv4 in brackets');
    rejects(t, () => parseListenAddress('host name:8443'), 'invalid host "host name" in "host name:8443"', 'space in host');
    rejects(t, () => parseListenAddress('-bad.example:8443'), 'invalid host "-bad.example" in "-bad.example:8443"', 'label starts with -');
    const wrongType = 'a listen address must be a string like "127.0.0.1:8443" or a port number';
    rejects(t, () => parseListenAddress(true), wrongType, 'boolean');
    rejects(t, () => parseListenAddress(null), wrongType, 'null');
    rejects(t, () => parseListenAddress({ host: '127.0.0.1', port: 8443 }), wrongType, 'mapping');
  });

  t.test('a dotted all-numeric host that is not IPv4 is refused, not taken for a DNS name', async (t) => {
    rejects(t, () => parseListenAddress('127.0.0.256:8443'), 'invalid host "127.0.0.256" in "127.0.0.256:8443"', 'listen 127.0.0.256');
    rejects(t, () => parseListenAddress('10.0.0:8443'), 'invalid host "10.0.0" in "10.0.0:8443"', 'listen, three parts');
    rejects(t, () => parseListenAddress('example.123:8443'), 'invalid host "example.123" in "example.123:8443"', 'listen, numeric last label');
    rejects(t, () => parseBackendAddress('10.0.0.300:443'), 'invalid backend host "10.0.0.300" in "10.0.0.300:443"', 'backend 10.0.0.300');
    rejects(t, () => parseBackendAddress('1234:443'), 'invalid backend host "1234" in "1234:443"', 'backend, one numeric label');
    t.same(parseBackendAddress('123.example:443'), { host: '123.example', port: 443 }, 'numeric labels before the last are fine');
    t.same(parseBackendAddress('app.1a:443'), { host: 'app.1a', port: 443 }, 'a last label with a letter is fine');
  });

  t.test('IPv6 hosts are canonicalised so equal addresses compare equal', async (t) => {
    t.same(parseListenAddress('[0:0:0:0:0:0:0:1]:8443'), { host: '::1', port: 8443 }, 'long form of ::1');
    t.same(parseListenAddress('[0000::0001]:8443'), { host: '::1', port: 8443 }, 'leading zeros');
    t.same(parseListenAddress('[2001:DB8:0:0:0:0:0:1]:443'), { host: '2001:db8::1', port: 443 }, 'upper case, zero run');
    t.same(parseListenAddress('[0:0:0:0:0:0:0:0]:443'), { host: '::', port: 443 }, 'all zeros');
    t.same(parseListenAddress('[::FFFF:127.0.0.1]:8443'), { host: '::ffff:127.0.0.1', port: 8443 }, 'IPv4-mapped');
  });
});

t.test('formatAddress', async (t) => {
  t.equal(formatAddress(null, 8443), ':8443', 'all interfaces');
  t.equal(formatAddress('127.0.0.1', 8443), '127.0.0.1:8443');
  t.equal(formatAddress('::1', 8443), '[::1]:8443', 'IPv6 in brackets');
  t.equal(formatAddress('fe80::1', 1), '[fe80::1]:1');
  t.equal(formatAddress('example.com', 443), 'example.com:443', 'DNS name');
  t.equal(formatAddress('127.0.0.1', 0), '127.0.0.1:0');

  t.test('parseListenAddress(formatAddress(a)) gives a back', async (t) => {
    for (const address of [
      { host: null, port: 8443 },
      { host: '127.0.0.1', port: 1 },
      { host: '::1', port: 65535 },
      { host: 'proxy.internal', port: 443 },
    ]) {
      t.same(parseListenAddress(formatAddress(address.host, address.port)), address, JSON.stringify(address));
    }
  });
});

t.test('parseBackendAddress', async (t) => {
  t.test('the accepted spellings', async (t) => {
    const cases: Array<[string, { host: string; port: number }]> = [
      ['127.0.0.1:9443', { host: '127.0.0.1', port: 9443 }],
      ['app.internal:443', { host: 'app.internal', port: 443 }],
      ['App.Internal:443', { host: 'app.internal', port: 443 }],
      ['[::1]:9443', { host: '::1', port: 9443 }],
      ['localhost:1', { host: 'localhost', port: 1 }],
      ['svc_name.local:65535', { host: 'svc_name.local', port: 65535 }],
      ['[0:0:0:0:0:0:0:1]:9443', { host: '::1', port: 9443 }],
      ['[2001:DB8::0:1]:9443', { host: '2001:db8::1', port: 9443 }],
    ];
    for (const [input, expected] of cases) t.same(parseBackendAddress(input), expected, input);
  });

  t.test('rejects what cannot be dialled', async (t) => {
    rejects(t, () => parseBackendAddress('127.0.0.1'), 'invalid address "127.0.0.1": expected "host:port"', 'no port');
    rejects(t, () => parseBackendAddress('9443'), 'invalid address "9443": expected "host:port"', 'bare port (string)');
    rejects(t, () => parseBackendAddress('127.0.0.1:0'), 'port 0 in "127.0.0.1:0" is out of range (1-65535)', 'port 0');
    rejects(t, () => parseBackendAddress('a.example:65536'), 'port 65536 in "a.example:65536" is out of range (1-65535)', 'port too big');
    rejects(t, () => parseBackendAddress(':9443'), 'backend ":9443" needs a host, e.g. "127.0.0.1:9443"', 'no host');
    rejects(t, () => parseBackendAddress('127.0.0.1:'), 'missing port in "127.0.0.1:"', 'empty port');
    rejects(t, () => parseBackendAddress('*:9443'), 'invalid backend host "*" in "*:9443"', 'wildcard host');
    rejects(t, () => parseBackendAddress('a b:9443'), 'invalid backend host "a b" in "a b:9443"', 'space in host');
    rejects(t, () => parseBackendAddress('::1:9443'), /write IPv6 addresses in brackets/, 'IPv6 without brackets');
    const wrongType = 'a backend address must be a string "host:port"';
    rejects(t, () => parseBackendAddress(9443), wrongType, 'bare port (number)');
    rejects(t, () => parseBackendAddress(null), wrongType, 'null');
    rejects(t, () => parseBackendAddress({ address: '127.0.0.1:9443' }), wrongType, 'mapping');
  });
});

t.test('normalizeHostnamePattern', async (t) => {
  t.test('lower-cases, strips one trailing dot and whitespace, keeps wildcards', async (t) => {
    const cases: Array<[string, string]> = [
      ['example.com', 'example.com'],
      ['App.Example.COM', 'app.example.com'],
      ['example.com.', 'example.com'],
      [' example.com ', 'example.com'],
      ['*.Example.com.', '*.example.com'],
      ['*.dev.example.com', '*.dev.example.com'],
      ['*.com', '*.com'],
      ['_acme-challenge.example.com', '_acme-challenge.example.com'],
      ['localhost', 'localhost'],
    ];
    for (const [input, expected] of cases) t.equal(normalizeHostnamePattern(input), expected, input);
  });

  t.test('Unicode names become punycode (as clients send them)', async (t) => {
    t.equal(normalizeHostnamePattern('bücher.example'), 'xn--bcher-kva.example');
    t.equal(normalizeHostnamePattern('BÜCHER.Example.'), 'xn--bcher-kva.example', 'case and trailing dot too');
    t.equal(normalizeHostnamePattern('*.bücher.example'), '*.xn--bcher-kva.example', 'wildcard');
    t.equal(normalizeHostnamePattern('münchen.DE'), 'xn--mnchen-3ya.de');
    t.equal(normalizeHostnamePattern('例え.テスト'), 'xn--r8jz45g.xn--zckzah');
    t.equal(normalizeHostnamePattern('xn--bcher-kva.example'), 'xn--bcher-kva.example', 'already punycode: unchanged');
  });

  t.test('label and name length limits', async (t) => {
    const label63 = 'a'.repeat(63);
    t.equal(normalizeHostnamePattern(`${label63}.com`), `${label63}.com`, '63-byte label');
    rejects(t, () => normalizeHostnamePattern(`${'a'.repeat(64)}.com`), `invalid hostname "${'a'.repeat(64)}.com"`, '64-byte label');
    const name251 = `${`${'a'.repeat(61)}.`.repeat(4)}com`;
    t.equal(name251.length, 251);
    t.equal(normalizeHostnamePattern(name251), name251, '251-byte name');
    const name255 = `${`${'a'.repeat(62)}.`.repeat(4)}com`;
    t.equal(name255.length, 255);
    rejects(t, () => normalizeHostnamePattern(name255), `invalid hostname "${name255}"`, '255-byte name');
  });

  t.test('a bare "*" is not a hostname', async (t) => {
    const message = '"*" is not a hostname: put a catch-all backend under the listener\'s "default"';
    rejects(t, () => normalizeHostnamePattern('*'), message, '*');
    rejects(t, () => normalizeHostnamePattern('*.'), message, '*.');
    rejects(t, () => normalizeHostnamePattern(' * '), message, 'with spaces');
  });

  t.test('"*" only as the whole first label', async (t) => {
    for (const input of ['a.*.example.com', '*.*.example.com', '*example.com', 'foo*.example.com', '**.example.com', 'example.*', 'a*b.example.com']) {
      rejects(
        t,
        () => normalizeHostnamePattern(input),
        `invalid hostname "${input}": "*" is only allowed as the whole first label, as in "*.example.com"`,
        input,
      );
    }
  });

  t.test('rejects names that are not DNS names', async (t) => {
    for (const input of [
      '',
      '.example.com',
      'a..example.com',
      'example.com..',
      '-a.example.com',
      'a-.example.com',
      'a b.example.com',
      'example.com:443',
      'https://example.com',
      'a.com/x',
      'exämple.com:443',
    ]) {
      rejects(t, () => normalizeHostnamePattern(input), `invalid hostname "${input}"`, JSON.stringify(input));
    }
    for (const input of ['10.0.0.1', '127.0.0.256', '*.10', 'example.123', '1234']) {
      rejects(t, () => normalizeHostnamePattern(input), `invalid hostname "${input}"`, `${JSON.stringify(input)}: an all-numeric last label`);
    }
    t.equal(normalizeHostnamePattern('123.example'), '123.example', 'numeric labels before the last are fine');
    rejects(t, () => normalizeHostnamePattern(5), 'a hostname must be a string', 'number');
    rejects(t, () => normalizeHostnamePattern(null), 'a hostname must be a string', 'null');
    rejects(t, () => normalizeHostnamePattern(['a.example.com']), 'a hostname must be a string', 'list');
  });

  t.test('normalising twice changes nothing (property)', async (t) => {
    const label = fc.stringMatching(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?$/);
    // The last label is never all digits: "10.0.0.300" is a bad address, not a name.
    const lastLabel = label.filter((text) => !/^\d+$/.test(text));
    const name = fc.tuple(fc.array(label, { maxLength: 4 }), lastLabel).map(([labels, last]) => [...labels, last].join('.'));
    fc.assert(
      fc.property(fc.boolean(), name, fc.boolean(), (wildcard, base, trailingDot) => {
        const input = `${wildcard ? '*.' : ''}${base}${trailingDot ? '.' : ''}`;
        const once = normalizeHostnamePattern(input);
        return once === normalizeHostnamePattern(once) && once === once.toLowerCase() && !once.endsWith('.') && once.startsWith('*.') === wildcard;
      }),
      { numRuns: 1000 },
    );
    t.pass('idempotent, lower case, no trailing dot, wildcard kept');
  });
});

t.test('parseCidr', async (t) => {
  t.test('ranges and single addresses, with their prefix length', async (t) => {
    const cases: Array<[string, string]> = [
      ['10.0.0.0/8', '10.0.0.0/8'],
      ['192.0.2.7', '192.0.2.7/32'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['::1', '::1/128'],
      ['2001:DB8::/32', '2001:db8::/32'],
      ['::/0', '::/0'],
      [' 10.0.0.0/8 ', '10.0.0.0/8'],
      ['10.0.0.0/008', '10.0.0.0/8'],
      ['0:0:0:0:0:0:0:1', '::1/128'],
      ['0:0:0:0:0:0:0:1/128', '::1/128'],
      ['2001:0DB8:0000::/32', '2001:db8::/32'],
      ['::FFFF:10.0.0.0/104', '::ffff:10.0.0.0/104'],
    ];
    for (const [input, expected] of cases) t.equal(parseCidr(input), expected, input);
  });

  t.test('rejects what is not a range', async (t) => {
    rejects(t, () => parseCidr('10.0.0.0/33'), 'prefix length /33 in "10.0.0.0/33" is too long for IPv4 (max /32)', '/33');
    rejects(t, () => parseCidr('::/129'), 'prefix length /129 in "::/129" is too long for IPv6 (max /128)', '/129');
    rejects(t, () => parseCidr('10.0.0.0/x'), 'invalid prefix length in "10.0.0.0/x"', 'letters');
    rejects(t, () => parseCidr('10.0.0.0/'), 'invalid prefix length in "10.0.0.0/"', 'empty prefix');
    rejects(t, () => parseCidr('10.0.0.0/-1'), 'invalid prefix length in "10.0.0.0/-1"', 'negative prefix');
    rejects(t, () => parseCidr('10.0.0.0/8/1'), 'invalid address range "10.0.0.0/8/1"', 'two slashes');
    rejects(t, () => parseCidr('example.com/8'), 'invalid address range "example.com/8": "example.com" is not an IPv4 or IPv6 address', 'DNS name');
    rejects(t, () => parseCidr('/8'), 'invalid address range "/8": "" is not an IPv4 or IPv6 address', 'no address');
    rejects(t, () => parseCidr(10), 'an address range must be a string like "10.0.0.0/8" or "::1"', 'number');
  });
});

t.test('parseAlpnProtocol', async (t) => {
  for (const name of ['h2', 'http/1.1', 'acme-tls/1', 'x'.repeat(255)]) t.equal(parseAlpnProtocol(name), name, name.slice(0, 20));
  const hint = 'expected a name like "h2", "http/1.1" or "acme-tls/1"';
  rejects(t, () => parseAlpnProtocol(''), `invalid ALPN protocol "": ${hint}`, 'empty');
  rejects(t, () => parseAlpnProtocol('a b'), `invalid ALPN protocol "a b": ${hint}`, 'space');
  rejects(t, () => parseAlpnProtocol('é'), `invalid ALPN protocol "é": ${hint}`, 'non-ASCII');
  rejects(t, () => parseAlpnProtocol('x'.repeat(256)), /^invalid ALPN protocol "x{256}"/, '256 bytes');
  rejects(t, () => parseAlpnProtocol(2), `invalid ALPN protocol 2: ${hint}`, 'number');
});
