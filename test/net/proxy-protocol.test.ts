import t, { type Test } from 'tap';
import { SocketAddress, isIPv4 } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import {
  encodeProxyV1,
  encodeProxyV2,
  parseProxyHeader,
  type ProxiedAddresses,
  type ProxyHeaderRejection,
  type ProxyHeaderResult,
} from '../../lib/net/proxy-protocol.js';

// Vectors are written out by hand from haproxy's doc/proxy-protocol.txt, not
// produced by the encoder under test.

const SIG = '0d0a0d0a000d0a515549540a'; // \r\n\r\n\0\r\nQUIT\n

/** Bytes from hex, spaces ignored. */
function hex(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}

function ascii(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

function addrs(source: string, sourcePort: number, destination: string, destinationPort: number): ProxiedAddresses {
  return {
    source: { address: source, port: sourcePort },
    destination: { address: destination, port: destinationPort },
  };
}

function complete(length: number, addresses: ProxiedAddresses | null): ProxyHeaderResult {
  return { status: 'complete', length, addresses };
}

function rejected(reason: ProxyHeaderRejection): ProxyHeaderResult {
  return { status: 'invalid', reason };
}

/** Every proper prefix of `header` parses as incomplete, asking for more than it has and no more than the header. */
function checkPrefixes(t: Test, header: Uint8Array, label: string): void {
  let failures = 0;
  for (let n = 0; n < header.length; n++) {
    const result = parseProxyHeader(header.subarray(0, n));
    if (result.status !== 'incomplete' || result.need <= n || result.need > header.length) {
      failures++;
      t.fail(`${label}: prefix of ${n} bytes gave ${JSON.stringify(result)}`);
    }
  }
  t.equal(failures, 0, `${label}: all ${header.length} proper prefixes are incomplete`);
}

const V4 = addrs('192.0.2.1', 56324, '198.51.100.7', 443);
const V4_BYTES = 'c0000201 c6336407 dc04 01bb';
const V6 = addrs('2001:db8::1', 51000, '2001:db8::2', 443);
const V6_BYTES = '20010db8000000000000000000000001 20010db8000000000000000000000002 c738 01bb';

t.test('v1 encoding is byte-exact', async (t) => {
  t.same(encodeProxyV1(V4), ascii('PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n'), 'IPv4');
  t.same(encodeProxyV1(V6), ascii('PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\n'), 'IPv6');
  t.same(
    encodeProxyV1(addrs('2001:0DB8:0000:0000:0000:0000:0000:0001', 1, '2001:DB8:0:0:1:0:0:0', 2)),
    ascii('PROXY TCP6 2001:db8::1 2001:db8:0:0:1:: 1 2\r\n'),
    'IPv6 written compressed and lowercase, as node formats it',
  );
  t.same(
    encodeProxyV1(addrs('::ffff:192.0.2.1', 56324, '::FFFF:c633:6407', 443)),
    ascii('PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n'),
    'IPv4-mapped on both sides is written as IPv4',
  );
  t.same(
    encodeProxyV1(addrs('::ffff:192.0.2.1', 56324, '198.51.100.7', 443)),
    ascii('PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n'),
    'mapped and plain IPv4 are the same family',
  );
  t.same(
    encodeProxyV1(addrs('192.0.2.1', 56324, '2001:db8::2', 443)),
    ascii('PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 56324 443\r\n'),
    'mixed families: IPv4 source written as ::ffff:a.b.c.d',
  );
  t.same(
    encodeProxyV1(addrs('2001:db8::1', 56324, '::ffff:198.51.100.7', 443)),
    ascii('PROXY TCP6 2001:db8::1 ::ffff:198.51.100.7 56324 443\r\n'),
    'mixed families: mapped destination stays mapped',
  );
  t.same(encodeProxyV1(addrs('fe80::1%eth0', 1, '::1', 2)), ascii('PROXY TCP6 fe80::1 ::1 1 2\r\n'), 'a zone id is dropped');
  t.same(encodeProxyV1(addrs('0.0.0.0', 0, '255.255.255.255', 65535)), ascii('PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n'));
  const widest = encodeProxyV1(addrs('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535, 'FFFF:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535));
  t.equal(widest.length, 104, 'the widest v1 header fits in 107 bytes');
  t.ok(Buffer.isBuffer(widest));
});

t.test('v2 encoding is byte-exact', async (t) => {
  t.same(encodeProxyV2(V4, null), hex(SIG, '21 11 000c', V4_BYTES), 'IPv4, no authority');
  t.same(encodeProxyV2(V4, 'example.com'), hex(SIG, '21 11 001a', V4_BYTES, '02 000b 6578616d706c652e636f6d'), 'IPv4 with PP2_TYPE_AUTHORITY');
  t.same(encodeProxyV2(V6, null), hex(SIG, '21 21 0024', V6_BYTES), 'IPv6, no authority');
  t.same(encodeProxyV2(V6, 'www.example.org'), hex(SIG, '21 21 0036', V6_BYTES, '02 000f 7777772e6578616d706c652e6f7267'), 'IPv6 with PP2_TYPE_AUTHORITY');
  t.same(encodeProxyV2(V4, ''), hex(SIG, '21 11 000c', V4_BYTES), 'empty authority: no TLV');
  t.same(
    encodeProxyV2(addrs('::ffff:192.0.2.1', 56324, '::ffff:198.51.100.7', 443), null),
    hex(SIG, '21 11 000c', V4_BYTES),
    'mapped on both sides: TCP over IPv4',
  );
  t.same(
    encodeProxyV2(addrs('192.0.2.1', 56324, '2001:db8::2', 443), 'a.b'),
    hex(SIG, '21 21 002a', '00000000000000000000ffffc0000201 20010db8000000000000000000000002 dc04 01bb', '02 0003 612e62'),
    'mixed families: TCP over IPv6 with the IPv4 address mapped',
  );
  t.same(
    encodeProxyV2(V4, 'bücher.example'),
    hex(SIG, '21 11 001e', V4_BYTES, '02 000f 62c3bc636865722e6578616d706c65'),
    'authority is UTF-8, length in bytes',
  );
  const longest = encodeProxyV2(V4, 'a'.repeat(0xffff - 12 - 3));
  t.equal(longest.length, 16 + 0xffff, 'an authority filling the 16-bit length');
  t.equal(longest.readUInt16BE(14), 0xffff);
  t.throws(() => encodeProxyV2(V4, 'a'.repeat(0xffff - 12 - 2)), RangeError, 'one byte more does not fit');
});

t.test('encoders refuse what cannot be written', async (t) => {
  const bad: Array<[ProxiedAddresses, ErrorConstructor]> = [
    [addrs('192.0.2.256', 1, '192.0.2.1', 2), TypeError],
    [addrs('192.0.2', 1, '192.0.2.1', 2), TypeError],
    [addrs('192.0.2.01', 1, '192.0.2.1', 2), TypeError],
    [addrs('192.0.2.1', 1, '2001:db8:::1', 2), TypeError],
    [addrs('192.0.2.1', 1, '1:2:3:4:5:6:7:8:9', 2), TypeError],
    [addrs('192.0.2.1', 1, '1:2:3:4:5:6:7:8::', 2), TypeError],
    [addrs('192.0.2.1', 1, '2001:db8::1:', 2), TypeError],
    [addrs('192.0.2.1', 1, ':1::2', 2), TypeError],
    [addrs('192.0.2.1', 1, '1::2::3', 2), TypeError],
    [addrs('192.0.2.1', 1, '1:2:3:4:5:6:7:1.2.3.4', 2), TypeError],
    [addrs('192.0.2.1', 1, '::ffff:1.2.3', 2), TypeError],
    [addrs('192.0.2.1', 1, '1.2.3.4%eth0', 2), TypeError],
    [addrs(':', 1, '192.0.2.1', 2), TypeError],
    [addrs('192.0.2.1', 1, 'example.com', 2), TypeError],
    [addrs('', 1, '192.0.2.1', 2), TypeError],
    [addrs(undefined as unknown as string, 1, '192.0.2.1', 2), TypeError],
    [addrs('192.0.2.1', -1, '192.0.2.1', 2), RangeError],
    [addrs('192.0.2.1', 1, '192.0.2.1', 65536), RangeError],
    [addrs('192.0.2.1', 1.5, '192.0.2.1', 2), RangeError],
    [addrs('192.0.2.1', Number.NaN, '192.0.2.1', 2), RangeError],
    [addrs('192.0.2.1', '80' as unknown as number, '192.0.2.1', 2), RangeError],
  ];
  for (const [input, type] of bad) {
    t.throws(() => encodeProxyV1(input), type, `v1 ${JSON.stringify(input)}`);
    t.throws(() => encodeProxyV2(input, 'x'), type, `v2 ${JSON.stringify(input)}`);
  }
});

t.test('v1 decoding', async (t) => {
  const line = ascii('PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n');
  t.same(parseProxyHeader(line), complete(line.length, V4), 'TCP4');
  const withPayload = Buffer.concat([line, hex('16 03 01 00 05')]);
  t.same(parseProxyHeader(withPayload), complete(line.length, V4), 'length stops at the CRLF');
  t.same(
    parseProxyHeader(new Uint8Array(withPayload.buffer.slice(withPayload.byteOffset, withPayload.byteOffset + withPayload.length))),
    complete(line.length, V4),
    'a plain Uint8Array',
  );
  const shifted = Buffer.concat([ascii('xyz'), line]).subarray(3);
  t.same(parseProxyHeader(shifted), complete(line.length, V4), 'a view with a byte offset');

  const six = ascii('PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\n');
  t.same(parseProxyHeader(six), complete(six.length, V6), 'TCP6');
  const spelled = ascii('PROXY TCP6 2001:0DB8:0:0:0:0:0:1 0:0:0:0:0:0:0:1 1 2\r\n');
  t.same(parseProxyHeader(spelled), complete(spelled.length, addrs('2001:db8::1', 1, '::1', 2)), 'IPv6 normalised');
  const mapped = ascii('PROXY TCP6 ::FFFF:c000:201 ::ffff:198.51.100.7 1 2\r\n');
  t.same(
    parseProxyHeader(mapped),
    complete(mapped.length, addrs('::ffff:192.0.2.1', 1, '::ffff:198.51.100.7', 2)),
    'mapped IPv6 kept mapped, as node reports it on a dual-stack socket',
  );
  const leadingZeros = ascii('PROXY TCP4 192.0.2.1 198.51.100.7 00080 0\r\n');
  t.same(
    parseProxyHeader(leadingZeros),
    complete(leadingZeros.length, addrs('192.0.2.1', 80, '198.51.100.7', 0)),
    'ports with leading zeros are plain decimal',
  );
  const widest = ascii('PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n');
  const ones = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  t.same(parseProxyHeader(widest), complete(104, addrs(ones, 65535, ones, 65535)), 'the widest TCP6 line');

  t.same(parseProxyHeader(ascii('PROXY UNKNOWN\r\n')), complete(15, null), 'UNKNOWN');
  const unknownLong = ascii(`PROXY UNKNOWN ${ones} ${ones} 65535 65535\r\n`);
  t.same(parseProxyHeader(unknownLong), complete(unknownLong.length, null), 'UNKNOWN with addresses');
  const unknownJunk = Buffer.concat([ascii('PROXY UNKNOWN '), hex('00 ff 0a 0d 20'), ascii('\r\nGET')]);
  t.same(parseProxyHeader(unknownJunk), complete(unknownJunk.length - 3, null), 'UNKNOWN ignores the rest of the line');
  const unknown107 = ascii(`PROXY UNKNOWN ${'x'.repeat(107 - 16)}\r\n`);
  t.equal(unknown107.length, 107);
  t.same(parseProxyHeader(unknown107), complete(107, null), 'a line of exactly 107 bytes');
});

t.test('v1 rejections', async (t) => {
  const malformed = [
    'PROXY TCP4 192.0.2.1 198.51.100.7 56324\r\n', // missing field
    'PROXY TCP4 192.0.2.1 198.51.100.7 56324 443 1\r\n', // extra field
    'PROXY TCP4 192.0.2.1  198.51.100.7 56324 443\r\n', // double space
    'PROXY TCP4 192.0.2.1 198.51.100.7 56324 443 \r\n', // trailing space
    'PROXY  TCP4 192.0.2.1 198.51.100.7 56324 443\r\n',
    'PROXY TCP4\r\n',
    'PROXY TCP4 \r\n',
    'PROXY \r\n',
    'PROXY tcp4 192.0.2.1 198.51.100.7 56324 443\r\n',
    'PROXY TCP5 192.0.2.1 198.51.100.7 56324 443\r\n',
    'PROXY UDP4 192.0.2.1 198.51.100.7 56324 443\r\n',
    'PROXY UNKNOWNX\r\n',
    'PROXY UNKNOW\r\n',
    'PROXY TCP4 192.0.2.01 198.51.100.7 56324 443\r\n', // leading zero octet
    'PROXY TCP4 192.0.2.256 198.51.100.7 56324 443\r\n',
    'PROXY TCP4 192.0.2 198.51.100.7 56324 443\r\n',
    'PROXY TCP4 192.0.2.1. 198.51.100.7 56324 443\r\n',
    'PROXY TCP4 192.0.2.1 2001:db8::2 56324 443\r\n', // IPv6 in TCP4
    'PROXY TCP4 ::ffff:192.0.2.1 198.51.100.7 56324 443\r\n',
    'PROXY TCP6 192.0.2.1 2001:db8::2 56324 443\r\n', // IPv4 in TCP6
    'PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 443\r\n', // zone id
    'PROXY TCP6 2001:db8:::1 2001:db8::2 56324 443\r\n',
    'PROXY TCP6 1:2:3:4:5:6:7:8:9 2001:db8::2 56324 443\r\n',
    'PROXY TCP6 12345::1 2001:db8::2 56324 443\r\n',
    'PROXY TCP4 192.0.2.1 198.51.100.7 65536 443\r\n',
    'PROXY TCP4 192.0.2.1 198.51.100.7 +80 443\r\n',
    'PROXY TCP4 192.0.2.1 198.51.100.7 -1 443\r\n',
    'PROXY TCP4 192.0.2.1 198.51.100.7 000080 443\r\n', // six digits
    'PROXY TCP4 192.0.2.1 198.51.100.7 0x50 443\r\n',
    'PROXY TCP4 192.0.2.1 198.51.100.7 8 0 443\r\n',
    'PROXY TCP4 192.0.2.1\r198.51.100.7 56324 443\r\n', // a lone CR inside the line
    'PROXY TCP4 192.0.2.1\t198.51.100.7 56324 443\r\n',
  ];
  for (const line of malformed) {
    t.same(parseProxyHeader(ascii(line)), rejected('malformed'), JSON.stringify(line));
  }

  t.same(parseProxyHeader(ascii('PROXY X')), rejected('malformed'), 'unknown protocol refused before the line ends');
  t.same(parseProxyHeader(ascii('PROXY TCP46')), rejected('malformed'), 'protocol token too long, before the line ends');
  t.same(parseProxyHeader(ascii(`PROXY UNKNOWN ${'x'.repeat(107 - 15)}\r\n`)), rejected('malformed'), 'CRLF ending at byte 108');
  t.same(parseProxyHeader(ascii(`PROXY UNKNOWN ${'x'.repeat(107 - 14)}`)), rejected('malformed'), '107 bytes, no CRLF');
  t.same(parseProxyHeader(ascii(`PROXY UNKNOWN ${'x'.repeat(107 - 15)}\r`)), rejected('malformed'), '107 bytes ending in CR: the LF would be byte 108');
  const lfOnly = ascii('PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\n');
  t.same(parseProxyHeader(lfOnly), { status: 'incomplete', need: lfOnly.length + 1 }, 'LF alone does not end the line');
  const lfPadded = Buffer.concat([lfOnly, Buffer.alloc(107 - lfOnly.length, 0x41)]);
  t.same(parseProxyHeader(lfPadded), rejected('malformed'), '…and no CRLF by byte 107 is malformed');
});

t.test('v2 decoding', async (t) => {
  const v4 = hex(SIG, '21 11 000c', V4_BYTES);
  t.same(parseProxyHeader(v4), complete(28, V4), 'PROXY TCP over IPv4');
  const v6 = hex(SIG, '21 21 0024', V6_BYTES);
  t.same(parseProxyHeader(v6), complete(52, V6), 'PROXY TCP over IPv6');
  const mapped = hex(SIG, '21 21 0024', '00000000000000000000ffffc0000201 00000000000000000000000000000001 0001 0002');
  t.same(parseProxyHeader(mapped), complete(52, addrs('::ffff:192.0.2.1', 1, '::1', 2)), 'IPv6 formatted as node does');

  const tlvs = hex(
    SIG,
    '21 11 0025',
    V4_BYTES,
    '02 0009 612e6578616d706c65', // PP2_TYPE_AUTHORITY "a.example"
    '04 0003 000000', // PP2_TYPE_NOOP
    '03 0004 deadbeef', // PP2_TYPE_CRC32C, not checked
  );
  t.same(parseProxyHeader(Buffer.concat([tlvs, hex('16 03 01')])), complete(tlvs.length, V4), 'TLVs skipped');
  t.same(parseProxyHeader(hex(SIG, '21 11 000f', V4_BYTES, '04 0000')), complete(31, V4), 'an empty TLV');
  const ssl = hex(
    SIG,
    '21 21 002e',
    V6_BYTES,
    '20 0007', // PP2_TYPE_SSL: client, verify, and sub-TLVs that do not fit it
    '01 00000000 21 ff',
  );
  t.same(parseProxyHeader(ssl), complete(ssl.length, V6), "PP2_TYPE_SSL's contents are not interpreted, only bounded");

  t.same(parseProxyHeader(hex(SIG, '21 00 0005', 'ffffffffff')), complete(21, null), 'PROXY, family UNSPEC: the block is ignored, TLVs or not');
  t.same(parseProxyHeader(hex(SIG, '20 11 0010', V4_BYTES, '02ffff61')), complete(32, null), 'LOCAL: the block is discarded unread, TLVs or not');

  t.same(parseProxyHeader(hex(SIG, '20 00 0000')), complete(16, null), 'LOCAL');
  t.same(parseProxyHeader(hex(SIG, '20 11 000c', V4_BYTES)), complete(28, null), 'LOCAL ignores its address block');
  t.same(parseProxyHeader(hex(SIG, '20 11 0000')), complete(16, null), 'LOCAL need not carry the block its family implies');
  t.same(parseProxyHeader(hex(SIG, '20 00 0003 040000')), complete(19, null), 'LOCAL with a TLV');
  t.same(parseProxyHeader(hex(SIG, '21 00 0000')), complete(16, null), 'PROXY, family UNSPEC');
  const unixBlock = '00'.repeat(216);
  t.same(parseProxyHeader(hex(SIG, '21 31 00d8', unixBlock)), complete(232, null), 'PROXY, UNIX stream');
  t.same(parseProxyHeader(hex(SIG, '21 32 00d8', unixBlock)), complete(232, null), 'PROXY, UNIX datagram');
  t.same(parseProxyHeader(hex(SIG, '21 12 000c', V4_BYTES)), complete(28, null), 'PROXY, UDP over IPv4');
  t.same(parseProxyHeader(hex(SIG, '21 10 000c', V4_BYTES)), complete(28, null), 'PROXY, IPv4 unspecified transport');
});

t.test('v2 rejections', async (t) => {
  const cases: Array<[string, Buffer, ProxyHeaderRejection]> = [
    ['version 1', hex(SIG, '11 11 000c', V4_BYTES), 'unsupported'],
    ['version 3', hex(SIG, '31 11 000c', V4_BYTES), 'unsupported'],
    ['version 0', hex(SIG, '01'), 'unsupported'],
    ['command 2', hex(SIG, '22 11 000c', V4_BYTES), 'unsupported'],
    ['command 15', hex(SIG, '2f'), 'unsupported'],
    ['family 4', hex(SIG, '21 41 000c', V4_BYTES), 'unsupported'],
    ['transport 3', hex(SIG, '21 13 000c', V4_BYTES), 'unsupported'],
    ['LOCAL, family 15', hex(SIG, '20 f0 0000'), 'unsupported'],
    ['IPv4 block cut short', hex(SIG, '21 11 000b', V4_BYTES.slice(0, -2)), 'malformed'],
    ['IPv6 block cut short', hex(SIG, '21 21 0023', V6_BYTES.slice(0, -2)), 'malformed'],
    ['IPv4 family with no block', hex(SIG, '21 11 0000'), 'malformed'],
    ['UNIX block cut short', hex(SIG, '21 31 00d7'), 'malformed'],
    ['UDP over IPv6 cut short', hex(SIG, '21 22 000c'), 'malformed'],
    // TLVs must fill the rest of the header exactly, as HAProxy requires.
    ['a TLV longer than the header', hex(SIG, '21 11 0010', V4_BYTES, '02 ffff 61'), 'malformed'],
    ['a TLV one byte longer than the header', hex(SIG, '21 11 0011', V4_BYTES, '02 0003 6161'), 'malformed'],
    ['a second TLV longer than the header', hex(SIG, '21 11 0014', V4_BYTES, '04 0000 02 0003 6161'), 'malformed'],
    ['one byte after the address block', hex(SIG, '21 11 000d', V4_BYTES, '04'), 'malformed'],
    ['two bytes after the address block', hex(SIG, '21 11 000e', V4_BYTES, '04 00'), 'malformed'],
    ['a TLV header cut after a whole TLV', hex(SIG, '21 11 0011', V4_BYTES, '04 0000 02 00'), 'malformed'],
    ['IPv6, a TLV longer than the header', hex(SIG, '21 21 0028', V6_BYTES, '04 0002 00'), 'malformed'],
    ['UDP over IPv4, a TLV longer than the header', hex(SIG, '21 12 0010', V4_BYTES, '04 0002 00'), 'malformed'],
    ['UNIX, a stray byte after the block', hex(SIG, '21 31 00d9', '00'.repeat(216), '04'), 'malformed'],
    ['PP2_TYPE_SSL longer than the header', hex(SIG, '21 11 0015', V4_BYTES, '20 0009 01 00000000 21'), 'malformed'],
  ];
  for (const [label, bytes, reason] of cases) t.same(parseProxyHeader(bytes), rejected(reason), label);
  t.same(parseProxyHeader(hex(SIG, '31')), rejected('unsupported'), 'version refused from byte 13 alone');
  t.same(parseProxyHeader(hex(SIG, '21 51')), rejected('unsupported'), 'family refused from byte 14 alone');
  t.same(parseProxyHeader(hex(SIG, '21 11 0004')), rejected('malformed'), 'length refused from the first 16 bytes');
  const overrunThenHello = hex(SIG, '21 11 0010', V4_BYTES, '02 0005 61', '16 03 01 00 05');
  t.same(parseProxyHeader(overrunThenHello), rejected('malformed'), "a TLV reaching into the client's bytes after the header");
  t.same(parseProxyHeader(overrunThenHello.subarray(0, 31)), { status: 'incomplete', need: 32 }, 'decided once the whole header has arrived');
  t.same(parseProxyHeader(hex(SIG, '21 31 00dc', '00'.repeat(216), '04 0001 00')), complete(236, null), 'UNIX with a TLV');
});

t.test('not PROXY protocol, decided at the first differing byte', async (t) => {
  const notProxy = rejected('not_proxy_protocol');
  t.same(parseProxyHeader(ascii('G')), notProxy, 'HTTP GET at byte 0');
  t.same(parseProxyHeader(ascii('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), notProxy);
  t.same(parseProxyHeader(hex('16')), notProxy, 'TLS handshake record at byte 0');
  t.same(parseProxyHeader(hex('16 03 01 02 00 01 00 01 fc 03 03')), notProxy);
  t.same(parseProxyHeader(hex('80')), notProxy, 'SSLv2-style hello at byte 0');
  t.same(parseProxyHeader(ascii('P')), { status: 'incomplete', need: 15 }, '"P" could still be PROXY');
  t.same(parseProxyHeader(ascii('PO')), notProxy, 'HTTP POST at byte 1');
  t.same(parseProxyHeader(ascii('PUT / HTTP/1.1\r\n')), notProxy, 'HTTP PUT at byte 1');
  t.same(parseProxyHeader(ascii('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), notProxy, 'HTTP/2 preface at byte 2');
  t.same(parseProxyHeader(ascii('PROXY\r\n')), notProxy, '"PROXY" without the space');
  t.same(parseProxyHeader(ascii('PROXYTCP4')), notProxy);
  t.same(parseProxyHeader(hex('0d 0d')), notProxy, 'v2 signature wrong at byte 1');
  t.same(parseProxyHeader(ascii('\r\nGET')), notProxy, 'v2 signature wrong at byte 2');
  t.same(parseProxyHeader(hex('0d0a0d0a000d0a5155495420')), notProxy, 'v2 signature wrong at byte 11');
  t.same(parseProxyHeader(hex('00')), notProxy);
});

t.test('prefixes of valid headers are incomplete, never invalid', async (t) => {
  t.same(parseProxyHeader(new Uint8Array(0)), { status: 'incomplete', need: 15 }, 'nothing yet');
  const headers: Array<[string, Buffer]> = [
    ['v1 TCP4', ascii('PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n')],
    ['v1 TCP6', ascii('PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\n')],
    ['v1 UNKNOWN', ascii('PROXY UNKNOWN\r\n')],
    ['v1 UNKNOWN, 107 bytes', ascii(`PROXY UNKNOWN ${'x'.repeat(107 - 16)}\r\n`)],
    ['v2 IPv4', hex(SIG, '21 11 000c', V4_BYTES)],
    ['v2 IPv6 + TLV', hex(SIG, '21 21 0036', V6_BYTES, '02 000f 7777772e6578616d706c652e6f7267')],
    ['v2 LOCAL', hex(SIG, '20 00 0000')],
    ['v2 UNIX', hex(SIG, '21 31 00d8', '00'.repeat(216))],
  ];
  for (const [label, header] of headers) {
    t.equal(parseProxyHeader(header).status, 'complete', `${label} is complete`);
    checkPrefixes(t, header, label);
  }
  t.same(parseProxyHeader(hex(SIG, '21 11 000c c0')), { status: 'incomplete', need: 28 }, 'v2 need known after 16 bytes');
  t.same(parseProxyHeader(hex(SIG, '21 11')), { status: 'incomplete', need: 16 }, 'v2 need before 16 bytes');
  t.same(parseProxyHeader(hex(SIG, '21 11 ffff')), { status: 'incomplete', need: 16 + 0xffff }, 'v2 largest header');
  t.same(parseProxyHeader(ascii('PROXY TCP4 192.0.2.1 198.51.100.7 1 2\r')), { status: 'incomplete', need: 39 }, 'v1 waiting for the LF');
});

// ---------------------------------------------------------------------------
// Properties

/** node's own text for an IPv6 address (libuv inet_ntop), the reference formatter. */
function nodeIPv6(text: string): string {
  return new SocketAddress({ address: text, family: 'ipv6' }).address;
}

function wordsOf(bytes: Uint8Array): number[] {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  return words;
}

// Words biased towards zero runs and the mapped prefix, so compression and the dotted tails get exercised.
const word = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.constantFrom(1, 0xffff) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
);
const ipv6Words = fc.oneof(
  fc.array(word, { minLength: 8, maxLength: 8 }),
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff })).map(([a, b]) => [0, 0, 0, 0, 0, 0xffff, a, b]),
);
const ipv4Text = fc.tuple(...Array.from({ length: 4 }, () => fc.integer({ min: 0, max: 255 }))).map((o) => o.join('.'));

/** Several spellings of the same IPv6 address. */
const ipv6Text = fc.tuple(ipv6Words, fc.integer({ min: 0, max: 3 })).map(([words, form]) => {
  const full = words.map((w) => w.toString(16)).join(':');
  switch (form) {
    case 0:
      return full;
    case 1:
      return words.map((w) => w.toString(16).padStart(4, '0').toUpperCase()).join(':');
    case 2:
      return `${words
        .slice(0, 6)
        .map((w) => w.toString(16))
        .join(':')}:${words[6] >> 8}.${words[6] & 0xff}.${words[7] >> 8}.${words[7] & 0xff}`;
    default:
      return nodeIPv6(full);
  }
});

const anyAddress = fc.oneof(ipv4Text, ipv6Text);
const port = fc.integer({ min: 0, max: 65535 });
const addressPair = fc.record({
  source: fc.record({ address: anyAddress, port }),
  destination: fc.record({ address: anyAddress, port }),
});

/** What decoding an encoded header must give: node's text, IPv4 when both sides are IPv4 or mapped, else all IPv6. */
function expectedAddresses(input: ProxiedAddresses): ProxiedAddresses {
  const asV6 = (a: string) => nodeIPv6(isIPv4(a) ? `::ffff:${a}` : a);
  const v4Of = (a: string): string | null => {
    if (isIPv4(a)) return a;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(asV6(a));
    return m === null ? null : m[1];
  };
  const s4 = v4Of(input.source.address);
  const d4 = v4Of(input.destination.address);
  const both4 = s4 !== null && d4 !== null;
  return addrs(both4 ? s4 : asV6(input.source.address), input.source.port, both4 ? d4 : asV6(input.destination.address), input.destination.port);
}

t.test('property: encode then decode gives the addresses back, normalised', async (t) => {
  fc.assert(
    fc.property(addressPair, fc.option(fc.domain(), { nil: null }), (input, authority) => {
      const expected = expectedAddresses(input);
      const v1 = encodeProxyV1(input);
      const v2 = encodeProxyV2(input, authority);
      const decoded1 = parseProxyHeader(Buffer.concat([v1, hex('16 03 01')]));
      const decoded2 = parseProxyHeader(Buffer.concat([v2, hex('16 03 01')]));
      if (!isDeepStrictEqual(decoded1, complete(v1.length, expected))) throw new Error(`v1 ${JSON.stringify(decoded1)}`);
      if (!isDeepStrictEqual(decoded2, complete(v2.length, expected))) throw new Error(`v2 ${JSON.stringify(decoded2)}`);
      if (v1.length > 107) throw new Error('v1 too long');
      const family = isIPv4(expected.source.address) ? 0x11 : 0x21;
      const addressBytes = family === 0x11 ? 12 : 36;
      if (v2[13] !== family) throw new Error('v2 family byte');
      const tlv = v2.subarray(16 + addressBytes);
      const expectedTlv =
        authority === null ? Buffer.alloc(0) : Buffer.concat([hex('02'), hex(authority.length.toString(16).padStart(4, '0')), ascii(authority)]);
      if (!tlv.equals(expectedTlv)) throw new Error(`TLV ${tlv.toString('hex')}`);
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass('300 random address pairs round-trip through v1 and v2');
});

t.test('property: v1 TCP6 accepts every spelling node accepts and formats like node', async (t) => {
  fc.assert(
    fc.property(ipv6Text, ipv6Text, port, port, (source, destination, sp, dp) => {
      const line = ascii(`PROXY TCP6 ${source} ${destination} ${sp} ${dp}\r\n`);
      const result = parseProxyHeader(line);
      const expected = complete(line.length, addrs(nodeIPv6(source), sp, nodeIPv6(destination), dp));
      return isDeepStrictEqual(result, expected);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random TCP6 lines');
});

t.test('property: v2 IPv6 addresses are formatted like node', async (t) => {
  fc.assert(
    fc.property(ipv6Words, ipv6Words, (a, b) => {
      const block = (w: number[]) => w.map((x) => x.toString(16).padStart(4, '0')).join('');
      const result = parseProxyHeader(hex(SIG, '21 21 0024', block(a), block(b), '0001 0002'));
      const text = (w: number[]) => nodeIPv6(w.map((x) => x.toString(16)).join(':'));
      return isDeepStrictEqual(result, complete(52, addrs(text(a), 1, text(b), 2)));
    }),
    { numRuns: 300 },
  );
  t.pass('300 random v2 IPv6 blocks');
  t.same(wordsOf(hex('00000000000000000000ffffc0000201')), [0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201], 'helper sanity');
});

/** The result is one of the three shapes, consistent with the input length. */
function wellFormed(result: ProxyHeaderResult, length: number): boolean {
  switch (result.status) {
    case 'incomplete':
      return Number.isInteger(result.need) && result.need > length && result.need <= 16 + 0xffff;
    case 'complete':
      return Number.isInteger(result.length) && result.length >= 15 && result.length <= length;
    case 'invalid':
      return ['not_proxy_protocol', 'malformed', 'unsupported'].includes(result.reason);
  }
}

t.test('property: arbitrary bytes never throw', async (t) => {
  const tails = fc.uint8Array({ maxLength: 300 });
  const leads = fc.constantFrom(
    Buffer.alloc(0),
    ascii('PROXY '),
    ascii('PROXY TCP4 '),
    ascii('PROXY TCP6 '),
    ascii('PROXY UNKNOWN'),
    hex(SIG),
    hex(SIG, '21'),
    hex(SIG, '21 11'),
    hex(SIG, '21 21'),
    hex(SIG, '20'),
  );
  fc.assert(
    fc.property(leads, tails, (lead, tail) => {
      const data = Buffer.concat([lead, tail]);
      return wellFormed(parseProxyHeader(data), data.length);
    }),
    { numRuns: 2000 },
  );
  const v1Chars = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:. %+-\r\nTCP46UNKOW'.split('')), maxLength: 110 });
  fc.assert(
    fc.property(v1Chars, (text) => {
      const data = ascii(`PROXY ${text}`);
      return wellFormed(parseProxyHeader(data), data.length);
    }),
    { numRuns: 2000 },
  );
  t.pass('4000 random inputs');
});

t.test('property: a v2 header is accepted exactly when its TLVs end where it ends', async (t) => {
  const tlv = fc.record({ type: fc.integer({ min: 0, max: 255 }), value: fc.uint8Array({ maxLength: 40 }) });
  fc.assert(
    fc.property(fc.constantFrom('11', '21', '12', '31'), fc.array(tlv, { maxLength: 5 }), (fam, list) => {
      const block = fam === '11' || fam === '12' ? hex(V4_BYTES) : fam === '21' ? hex(V6_BYTES) : Buffer.alloc(216);
      const tlvBytes = Buffer.concat(
        list.map(({ type, value }) => Buffer.concat([Buffer.from([type]), hex(value.length.toString(16).padStart(4, '0')), value])),
      );
      const boundaries = new Set<number>([0]);
      let offset = 0;
      for (const { value } of list) boundaries.add((offset += 3 + value.length));
      // Declare every body length from the address block to the end of the TLVs: only TLV boundaries are whole.
      for (let cut = 0; cut <= tlvBytes.length; cut++) {
        const body = block.length + cut;
        const header = Buffer.concat([hex(SIG, '21', fam, body.toString(16).padStart(4, '0')), block, tlvBytes.subarray(0, cut)]);
        const result = parseProxyHeader(Buffer.concat([header, hex('16 03 01')]));
        const expected = boundaries.has(cut) ? 'complete' : 'invalid';
        if (result.status !== expected || (result.status === 'invalid' && result.reason !== 'malformed')) {
          throw new Error(`fam ${fam}, ${cut} of ${tlvBytes.length} TLV bytes: ${JSON.stringify(result)}`);
        }
        if (result.status === 'complete' && result.length !== header.length) throw new Error(`length ${result.length}, header ${header.length}`);
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass('300 TLV lists, every declared length');
});

t.test('property: every prefix of an encoded header is incomplete', async (t) => {
  fc.assert(
    fc.property(addressPair, fc.option(fc.domain(), { nil: null }), (input, authority) => {
      for (const header of [encodeProxyV1(input), encodeProxyV2(input, authority)]) {
        for (let n = 0; n < header.length; n++) {
          const result = parseProxyHeader(header.subarray(0, n));
          if (result.status !== 'incomplete' || result.need <= n || result.need > header.length) return false;
        }
      }
      return true;
    }),
    { numRuns: 100 },
  );
  t.pass('100 random headers, every prefix');
});
