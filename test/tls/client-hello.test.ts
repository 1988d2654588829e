import t from 'tap';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import {
  MAX_HELLO_BYTES,
  parseClientHello,
  parseClientHelloMessage,
  type ClientHello,
  type HelloParseResult,
  type HelloRejection,
} from '../../lib/tls/client-hello.js';
import {
  CONTENT_TYPE_HANDSHAKE,
  EXTENSION_ALPN,
  EXTENSION_SERVER_NAME,
  HANDSHAKE_TYPE_CLIENT_HELLO,
  alpnExtension,
  buildClientHello,
  captureClientHello,
  clientHelloBody,
  extension,
  handshakeMessage,
  paddingExtension,
  record,
  serverNameExtension,
  uint16,
  uint24,
  unwrapRecords,
  vector16,
  vector8,
  wrapInRecords,
} from '../helpers/client-hello-fixtures.js';

const CONTENT_TYPE_CHANGE_CIPHER_SPEC = 20;
const CONTENT_TYPE_APPLICATION_DATA = 23;

function hello(serverName: string | null, alpn: string[] = []): ClientHello {
  return { serverName, alpn, sslv2: false };
}

function complete(serverName: string | null, alpn: string[], length: number): HelloParseResult {
  return { status: 'complete', hello: hello(serverName, alpn), length };
}

function rejected(reason: HelloRejection): HelloParseResult {
  return { status: 'invalid', reason };
}

/** The single-record form of a hello built from `options`. */
function helloRecord(options: Parameters<typeof buildClientHello>[0]): Buffer {
  return wrapInRecords(buildClientHello(options));
}

/** A hello whose server_name extension carries exactly `extensionData`. */
function withServerNameData(extensionData: Uint8Array): Buffer {
  return helloRecord({ extraExtensionBytes: extension(EXTENSION_SERVER_NAME, extensionData) });
}

/** A hello whose body ends, after compression_methods, with exactly `tail` (the extensions block's place). */
function withBodyTail(tail: Uint8Array): Buffer {
  const body = Buffer.concat([clientHelloBody({ omitExtensions: true }), tail]);
  return wrapInRecords(handshakeMessage(HANDSHAKE_TYPE_CLIENT_HELLO, body));
}

function hostNameEntry(name: Uint8Array | string, nameType = 0): Buffer {
  return Buffer.concat([Buffer.from([nameType]), vector16(Buffer.from(name))]);
}

/** Parses the stream `data` the way a proxy would: re-parsing only once `need` bytes have arrived. */
function trickle(data: Uint8Array): { result: HelloParseResult; calls: number } {
  let need = 1;
  let calls = 0;
  for (let length = 1; length <= data.length; length++) {
    if (length < need) continue;
    calls++;
    const result = parseClientHello(data.subarray(0, length));
    if (result.status !== 'incomplete') return { result, calls };
    need = result.need;
  }
  throw new Error(`still incomplete after ${data.length} bytes`);
}

function recordCount(records: Uint8Array): number {
  let count = 0;
  for (let offset = 0; offset < records.length; count++) {
    offset += 5 + ((records[offset + 3]! << 8) | records[offset + 4]!);
  }
  return count;
}

t.test('hellos captured from Node TLS clients', async (t) => {
  const cases: { name: string; options: Parameters<typeof captureClientHello>[0]; expected: ClientHello }[] = [
    {
      name: 'TLS 1.3 with SNI and ALPN',
      options: { servername: 'example.com', ALPNProtocols: ['h2', 'http/1.1'] },
      expected: hello('example.com', ['h2', 'http/1.1']),
    },
    {
      name: 'TLS 1.2 max with SNI and ALPN',
      options: { servername: 'api.example.org', ALPNProtocols: ['http/1.1'], maxVersion: 'TLSv1.2' },
      expected: hello('api.example.org', ['http/1.1']),
    },
    {
      name: 'no SNI (IP address, no servername)',
      options: {},
      expected: hello(null),
    },
    {
      name: 'uppercase name with a trailing dot',
      options: { servername: 'WWW.Example.COM.' },
      expected: hello('www.example.com'),
    },
  ];
  for (const { name, options, expected } of cases) {
    const captured = await captureClientHello(options);
    t.same(parseClientHello(captured), { status: 'complete', hello: expected, length: captured.length }, name);
    t.same(trickle(captured).result, parseClientHello(captured), `${name}, trickled`);
  }
  const raw = await captureClientHello({ servername: 'WWW.Example.COM.' });
  t.ok(raw.includes('WWW.Example.COM.'), 'Node sends the name as given, so normalisation is ours');
});

t.test('hand-built hellos', async (t) => {
  const records = helloRecord({ serverName: 'Example.com', alpn: ['h2', 'acme-tls/1'] });
  t.same(parseClientHello(records), complete('example.com', ['h2', 'acme-tls/1'], records.length));

  const noExtensions = helloRecord({ omitExtensions: true });
  t.same(parseClientHello(noExtensions), complete(null, [], noExtensions.length), 'extensions block absent');

  const emptyExtensions = helloRecord({});
  t.same(parseClientHello(emptyExtensions), complete(null, [], emptyExtensions.length), 'empty extensions block');

  const maxLengthName = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`;
  t.equal(maxLengthName.length, 255);
  const longName = helloRecord({ serverName: maxLengthName });
  t.same(parseClientHello(longName), complete(maxLengthName, [], longName.length), '255-byte name');

  const latin1Alpn = helloRecord({ alpn: ['\xff\x00x'] });
  t.same(parseClientHello(latin1Alpn), complete(null, ['\xff\x00x'], latin1Alpn.length), 'ALPN decoded latin1');

  const otherExtensions = helloRecord({
    serverName: 'a.example',
    extraExtensionBytes: Buffer.concat([extension(0xfe0d, Buffer.alloc(100, 7)), extension(43, Buffer.alloc(0))]),
  });
  t.same(parseClientHello(otherExtensions), complete('a.example', [], otherExtensions.length), 'ECH and others skipped');

  // Chromium sends two GREASE extensions and makes sure their values differ.
  const twoGrease = helloRecord({
    serverName: 'g.example',
    extraExtensionBytes: Buffer.concat([extension(0x0a0a, Buffer.alloc(0)), extension(0x1a1a, Buffer.alloc(1))]),
  });
  t.same(parseClientHello(twoGrease), complete('g.example', [], twoGrease.length), 'two different GREASE types');

  const extensionTypeExtremes = helloRecord({
    serverName: 'x.example',
    extraExtensionBytes: Buffer.concat([extension(0xffff, Buffer.alloc(0)), extension(1, Buffer.alloc(0))]),
  });
  t.same(parseClientHello(extensionTypeExtremes), complete('x.example', [], extensionTypeExtremes.length), 'types 1 and 0xffff beside 0 (server_name)');

  const anyLegacyVersion = helloRecord({ serverName: 'x.test', legacyVersion: 0x0301 });
  t.same(parseClientHello(anyLegacyVersion), complete('x.test', [], anyLegacyVersion.length));

  for (const recordVersion of [0x0300, 0x0301, 0x0303, 0x0304]) {
    const data = wrapInRecords(buildClientHello({ serverName: 'v.test' }), 16384, recordVersion);
    t.same(parseClientHello(data), complete('v.test', [], data.length), `record version ${recordVersion.toString(16)}`);
  }
});

t.test('SSLv2-format hello', async (t) => {
  const cipherSpecs = Buffer.alloc(21, 1);
  const challenge = Buffer.alloc(16, 2);
  const body = Buffer.concat([Buffer.from([1]), uint16(0x0002), uint16(cipherSpecs.length), uint16(0), uint16(challenge.length), cipherSpecs, challenge]);
  const sslv2 = Buffer.concat([uint16(0x8000 | body.length), body]);
  t.equal(sslv2.subarray(0, 11).toString('hex'), '802e010002001500000010');
  const expected = { status: 'complete', hello: { serverName: null, alpn: [], sslv2: true }, length: sslv2.length };
  t.same(parseClientHello(sslv2), expected);
  t.same(parseClientHello(Buffer.concat([sslv2, Buffer.from('more')])), expected, 'bytes after it');
  t.same(parseClientHello(sslv2.subarray(0, 1)), { status: 'incomplete', need: 2 });
  t.same(parseClientHello(sslv2.subarray(0, 2)), { status: 'incomplete', need: sslv2.length });
  t.same(parseClientHello(sslv2.subarray(0, 20)), { status: 'incomplete', need: sslv2.length });

  const tlsVersion = Buffer.from(sslv2);
  tlsVersion.writeUInt16BE(0x0301, 3);
  t.same(parseClientHello(tlsVersion), { ...expected }, 'SSLv2-compatible hello offering TLS 1.0');

  t.same(parseClientHello(Buffer.from([0x80, 0x2e, 0x02])), rejected('not_tls'), 'msg type is not client hello');
  t.same(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x02])), rejected('not_tls'), 'version major 2');
  t.same(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x03])), rejected('not_tls'), 'version 0x0003');
  t.same(parseClientHello(Buffer.from([0x80, 0x08])), rejected('malformed'), 'shorter than its fixed fields');
  const lengthsDisagree = Buffer.from(sslv2);
  lengthsDisagree.writeUInt16BE(15, 9);
  t.same(parseClientHello(lengthsDisagree), rejected('malformed'), 'challenge length disagrees with record');
});

t.test('not_tls', async (t) => {
  const http = Buffer.from('GET / HTTP/1.1\r\n');
  t.same(parseClientHello(http.subarray(0, 1)), rejected('not_tls'), 'from the first byte of HTTP');
  t.same(parseClientHello(http), rejected('not_tls'));
  t.same(parseClientHello(Buffer.from([0x00])), rejected('not_tls'));
  t.same(parseClientHello(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])), rejected('not_tls'), 'an alert');
  t.same(parseClientHello(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), rejected('not_tls'));
});

t.test('not_client_hello', async (t) => {
  const serverHello = wrapInRecords(handshakeMessage(2, clientHelloBody({ serverName: 'x.test' })));
  t.same(parseClientHello(serverHello), rejected('not_client_hello'));
  t.same(parseClientHello(serverHello.subarray(0, 6)), rejected('not_client_hello'), 'as soon as the type byte arrives');
  const finished = wrapInRecords(handshakeMessage(20, Buffer.alloc(12)));
  t.same(parseClientHello(finished), rejected('not_client_hello'));
});

t.test('bad_record', async (t) => {
  const valid = buildClientHello({ serverName: 'x.test' });
  const withHeader = (version: number, length: number) => Buffer.concat([Buffer.from([CONTENT_TYPE_HANDSHAKE]), uint16(version), uint16(length), valid]);
  t.same(parseClientHello(Buffer.from([0x16, 0x02])), rejected('bad_record'), 'major version 2, from byte 2');
  t.same(parseClientHello(withHeader(0x0203, valid.length)), rejected('bad_record'), 'major version 2');
  t.same(parseClientHello(Buffer.from([0x16, 0x03, 0x05])), rejected('bad_record'), 'minor version 5');
  t.same(parseClientHello(withHeader(0x0301, 0)), rejected('bad_record'), 'zero-length fragment');
  t.same(parseClientHello(withHeader(0x0301, 16385).subarray(0, 5)), rejected('bad_record'), 'fragment > 2^14');

  const split = wrapInRecords(valid, [40]);
  const firstRecordEnd = 45;
  for (const contentType of [CONTENT_TYPE_CHANGE_CIPHER_SPEC, 21, CONTENT_TYPE_APPLICATION_DATA]) {
    const interrupted = Buffer.from(split);
    interrupted[firstRecordEnd] = contentType;
    t.same(parseClientHello(interrupted), rejected('bad_record'), `record type ${contentType} mid-hello`);
    t.same(parseClientHello(interrupted.subarray(0, firstRecordEnd + 1)), rejected('bad_record'), `record type ${contentType} mid-hello, from its first byte`);
  }
  const secondHeaderBadLength = Buffer.from(split);
  secondHeaderBadLength.writeUInt16BE(0, firstRecordEnd + 3);
  t.same(parseClientHello(secondHeaderBadLength), rejected('bad_record'), 'zero-length second fragment');
});

t.test('malformed', async (t) => {
  const cases: [string, Buffer][] = [
    ['odd cipher_suites length', helloRecord({ cipherSuites: Buffer.from([0x13, 0x01, 0x13]) })],
    ['empty cipher_suites', helloRecord({ cipherSuites: Buffer.alloc(0) })],
    ['session_id longer than 32', helloRecord({ sessionId: Buffer.alloc(33) })],
    ['no compression methods', helloRecord({ compressionMethods: Buffer.alloc(0) })],
    ['empty body', wrapInRecords(handshakeMessage(HANDSHAKE_TYPE_CLIENT_HELLO, Buffer.alloc(0)))],
    ['body cut inside random', wrapInRecords(handshakeMessage(1, clientHelloBody().subarray(0, 20)))],
    ['body cut inside cipher_suites', wrapInRecords(handshakeMessage(1, clientHelloBody().subarray(0, 70)))],
    ['one stray byte where extensions would start', withBodyTail(Buffer.from([0]))],
    ['extensions length shorter than the rest', withBodyTail(Buffer.concat([vector16(extension(43, Buffer.alloc(2))), Buffer.from([0])]))],
    ['extensions length longer than the rest', withBodyTail(Buffer.concat([uint16(10), extension(43, Buffer.alloc(2))]))],
    ['extension data overruns the block', withBodyTail(vector16(uint16(43), uint16(5), Buffer.alloc(2)))],
    ['truncated extension header', withBodyTail(vector16(Buffer.from([0, 43, 0])))],
    ['ALPN with an empty list', helloRecord({ alpn: [] })],
    ['ALPN with an empty protocol', helloRecord({ alpn: ['h2', ''] })],
    ['ALPN extension with no data', helloRecord({ extraExtensionBytes: extension(EXTENSION_ALPN, Buffer.alloc(0)) })],
    [
      'ALPN list length shorter than the extension',
      helloRecord({
        extraExtensionBytes: extension(EXTENSION_ALPN, Buffer.concat([vector16(vector8(Buffer.from('h2'))), Buffer.from([0])])),
      }),
    ],
    ['ALPN protocol overruns the list', helloRecord({ extraExtensionBytes: extension(EXTENSION_ALPN, vector16(Buffer.from([5]), Buffer.from('h2'))) })],
  ];
  for (const [name, data] of cases) t.same(parseClientHello(data), rejected('malformed'), name);
});

t.test('an extension type that appears twice makes the hello malformed, whatever the type (RFC 8446 4.2; as BoringSSL and Go)', async (t) => {
  const empty = Buffer.alloc(0);
  const cases: [string, Buffer][] = [
    ['server_name, the same name twice', helloRecord({ serverName: 'a.test', extraExtensionBytes: serverNameExtension('a.test') })],
    ['server_name, two different names', helloRecord({ serverName: 'a.test', extraExtensionBytes: serverNameExtension('b.test') })],
    ['ALPN', helloRecord({ alpn: ['h2'], extraExtensionBytes: alpnExtension(['http/1.1']) })],
    ['supported_versions (43)', helloRecord({ serverName: 'a.test', extraExtensionBytes: Buffer.concat([extension(43, empty), extension(43, empty)]) })],
    ['padding (21), not adjacent', helloRecord({ extraExtensionBytes: Buffer.concat([paddingExtension(3), extension(51, empty), paddingExtension(0)]) })],
    ['a GREASE value', helloRecord({ extraExtensionBytes: Buffer.concat([extension(0x2a2a, empty), extension(0x2a2a, empty)]) })],
    ['an unassigned type (0xffff)', helloRecord({ extraExtensionBytes: Buffer.concat([extension(0xffff, empty), extension(0xffff, Buffer.alloc(5))]) })],
    [
      'before server_name is read',
      helloRecord({ extraExtensionBytes: Buffer.concat([extension(7, empty), extension(7, empty), serverNameExtension('a.test')]) }),
    ],
  ];
  for (const [name, data] of cases) {
    t.same(parseClientHello(data), rejected('malformed'), name);
    t.same(parseClientHello(wrapInRecords(unwrapRecords(data), 9)), rejected('malformed'), `${name}, in 9-byte records`);
  }
  // The first problem in wire order decides: an invalid server_name before the duplicate is what the hello is refused for.
  const badNameThenDuplicate = helloRecord({ serverName: 'a..test', extraExtensionBytes: Buffer.concat([extension(7, empty), extension(7, empty)]) });
  t.same(parseClientHello(badNameThenDuplicate), rejected('bad_server_name'));

  // Types seen in one hello are forgotten by the next: the same hello parses again and again.
  const valid = helloRecord({ serverName: 'again.test', alpn: ['h2'], extraExtensionBytes: extension(43, empty) });
  for (let i = 0; i < 3; i++) t.same(parseClientHello(valid), complete('again.test', ['h2'], valid.length), `parse ${i + 1}`);
});

t.test('types seen by one parse stay forgotten across the 16-bit generation wrap', async (t) => {
  // Every type here appears once per hello; a stale mark surviving a wrap would show as a false duplicate.
  const empty = Buffer.alloc(0);
  const types = [0xfe0d, 43, 51, 0xffff];
  const valid = helloRecord({ serverName: 'wrap.test', extraExtensionBytes: Buffer.concat(types.map((type) => extension(type, empty))) });
  let failures = 0;
  for (let i = 0; i < 0x10000 + 3; i++) if (parseClientHello(valid).status !== 'complete') failures++;
  t.equal(failures, 0, '65,539 consecutive parses of one valid hello');
  const duplicate = helloRecord({ extraExtensionBytes: Buffer.concat([extension(43, empty), extension(43, empty)]) });
  t.same(parseClientHello(duplicate), rejected('malformed'), 'and a duplicate is still seen after the wrap');
});

t.test('bad_server_name', async (t) => {
  const cases: [string, Buffer][] = [
    ['empty extension', withServerNameData(Buffer.alloc(0))],
    ['empty server_name_list', withServerNameData(vector16())],
    ['empty host_name', helloRecord({ serverName: '' })],
    ['only a non-host_name entry', withServerNameData(vector16(hostNameEntry('x.test', 1)))],
    ['two host_name entries', withServerNameData(vector16(hostNameEntry('a.test'), hostNameEntry('b.test')))],
    ['the same host_name twice', withServerNameData(vector16(hostNameEntry('a.test'), hostNameEntry('a.test')))],
    ['a host_name, then another name type', withServerNameData(vector16(hostNameEntry('a.test'), hostNameEntry('a.test', 1)))],
    ['another name type, then a host_name', withServerNameData(vector16(hostNameEntry('ignored', 7), hostNameEntry('routed.example')))],
    ['a host_name, then an empty entry of another type', withServerNameData(vector16(hostNameEntry('a.test'), hostNameEntry('', 255)))],
    ['list length longer than the extension', withServerNameData(Buffer.concat([uint16(20), hostNameEntry('x.test')]))],
    ['list length shorter than the extension', withServerNameData(Buffer.concat([uint16(3), hostNameEntry('x.test')]))],
    ['host_name overruns the list', withServerNameData(vector16(Buffer.from([0]), uint16(50), Buffer.from('x.test')))],
    ['a space', helloRecord({ serverName: 'a b.test' })],
    ['a control byte', helloRecord({ serverName: 'a\x00.test' })],
    ['DEL', helloRecord({ serverName: 'a\x7f.test' })],
    ['non-ASCII bytes', helloRecord({ serverName: 'caf\xc3\xa9.test' })],
    ['256 bytes', helloRecord({ serverName: 'a'.repeat(256) })],
    ['only the root dot', helloRecord({ serverName: '.' })],
  ];
  for (const [name, data] of cases) t.same(parseClientHello(data), rejected('bad_server_name'), name);
});

t.test('server names with empty labels are bad_server_name; one trailing dot (the root) is not an empty label', async (t) => {
  // Caught here so ".example.com" never reaches the route table, where it would match "*.example.com".
  for (const serverName of ['.example.com', 'a..example.com', 'example.com..', '..', '.a', 'a.b..']) {
    t.same(parseClientHello(helloRecord({ serverName })), rejected('bad_server_name'), JSON.stringify(serverName));
  }
  const rooted = helloRecord({ serverName: 'example.com.' });
  t.same(parseClientHello(rooted), complete('example.com', [], rooted.length), '"example.com." is accepted as "example.com"');
  const rootedUpper = helloRecord({ serverName: 'A.Example.COM.', alpn: ['h2'] });
  t.same(parseClientHello(rootedUpper), complete('a.example.com', ['h2'], rootedUpper.length), 'lower-cased too, ALPN kept');
  const singleLabel = helloRecord({ serverName: 'localhost.' });
  t.same(parseClientHello(singleLabel), complete('localhost', [], singleLabel.length), 'a single label with the root dot');
  const emptyLabelRecords = wrapInRecords(buildClientHello({ serverName: 'a..example.com' }), 7);
  t.same(parseClientHello(emptyLabelRecords), rejected('bad_server_name'), 'also when the hello spans several records');
});

t.test('server names with a label over 63 bytes are bad_server_name (RFC 1035 2.3.4)', async (t) => {
  const label63 = 'a'.repeat(63);
  const label64 = 'b'.repeat(64);
  for (const serverName of [label64, `${label64}.example.com`, `www.${label64}.com`, `www.example.${label64}`, `${label64}.`, `x.${'c'.repeat(200)}`]) {
    t.same(
      parseClientHello(helloRecord({ serverName })),
      rejected('bad_server_name'),
      `${serverName.length} bytes, a label of ${serverName.split('.').map((label) => label.length)}`,
    );
  }
  for (const serverName of [label63, `${label63}.example.com`, `www.example.${label63}`, `${label63}.`]) {
    const data = helloRecord({ serverName });
    t.same(parseClientHello(data), complete(serverName.replace(/\.$/, ''), [], data.length), `63-byte label in ${serverName.length} bytes`);
  }
});

t.test('too_large', async (t) => {
  // A first record announcing a full 16 KiB fragment, of which only the handshake header has arrived.
  const recordHeader = Buffer.from([CONTENT_TYPE_HANDSHAKE, 0x03, 0x01, 0x40, 0x00]);
  const declared = (bodyLength: number) => Buffer.concat([recordHeader, Buffer.from([HANDSHAKE_TYPE_CLIENT_HELLO]), uint24(bodyLength)]);
  t.same(parseClientHello(declared(0xffffff)), rejected('too_large'), 'from the header of a 2^24 - 1 declaration');

  // In 16 KiB records a message of L bytes needs L + 5 * ceil(L / 16384) record-layer bytes.
  const largestMessage = MAX_HELLO_BYTES - 4 * 5;
  t.same(
    parseClientHello(declared(largestMessage - 4)),
    { status: 'incomplete', need: MAX_HELLO_BYTES },
    'largest that fits (need: the earliest its records could end)',
  );
  t.same(parseClientHello(declared(largestMessage - 3)), rejected('too_large'), 'one byte more');

  const fitsInFullRecords = buildClientHello({ extraExtensionBytes: paddingExtension(63000) });
  t.equal(parseClientHello(wrapInRecords(fitsInFullRecords)).status, 'complete', '63 KB in 16 KiB records fits');
  const smallRecords = wrapInRecords(fitsInFullRecords, 100);
  t.ok(smallRecords.length > MAX_HELLO_BYTES);
  t.same(parseClientHello(smallRecords), rejected('too_large'), 'the same message in 100-byte records does not');
  const { result, calls } = trickle(smallRecords);
  t.same(result, rejected('too_large'));
  t.ok(calls < 2 * recordCount(smallRecords), 'rejected before reading everything');
});

t.test('a hello cut into 1-byte records is re-parsed a few dozen times, not once per record', async (t) => {
  const hello = buildClientHello({ serverName: 'tiny.example', extraExtensionBytes: paddingExtension(9000) });
  const oneByteRecords = wrapInRecords(hello, 1);
  t.ok(oneByteRecords.length < MAX_HELLO_BYTES, `${recordCount(oneByteRecords)} records, within the cap`);
  const { result, calls } = trickle(oneByteRecords);
  t.same(result, complete('tiny.example', [], oneByteRecords.length));
  t.ok(calls < 100, `${calls} parses for ${recordCount(oneByteRecords)} records`);
});

t.test('hellos spanning records', async (t) => {
  const large = buildClientHello({
    serverName: 'big.example',
    alpn: ['h2'],
    extraExtensionBytes: paddingExtension(20 * 1024),
  });
  const twoRecords = wrapInRecords(large);
  t.equal(recordCount(twoRecords), 2);
  t.same(parseClientHello(twoRecords), complete('big.example', ['h2'], twoRecords.length), '20 KB hello in two records');
  // Once the message length is known, need is the earliest end of the record layer (exact for full-size records).
  t.same(parseClientHello(twoRecords.subarray(0, 3)), { status: 'incomplete', need: 5 }, 'need = the first record header');
  t.same(parseClientHello(twoRecords.subarray(0, 7)), { status: 'incomplete', need: 16389 }, 'need = end of record 1 until the length is read');
  for (const prefix of [9, 100, 16389, 16392, 16394]) {
    t.same(parseClientHello(twoRecords.subarray(0, prefix)), { status: 'incomplete', need: twoRecords.length }, `${prefix} bytes: need = the whole message`);
  }

  const small = buildClientHello({ serverName: 'split.example', alpn: ['http/1.1'] });
  for (const sizes of [[1], [2], [3], [1, 2, 1], [4], [5, 1000]]) {
    const records = wrapInRecords(small, sizes);
    t.same(parseClientHello(records), complete('split.example', ['http/1.1'], records.length), `handshake header split by fragments ${sizes.join(',')}`);
  }
});

t.test('bytes after the hello are left to the caller', async (t) => {
  const helloRecords = helloRecord({ serverName: 'x.test', alpn: ['h2'] });
  const ccs = record(CONTENT_TYPE_CHANGE_CIPHER_SPEC, Buffer.from([1]), 0x0303);
  const earlyData = record(CONTENT_TYPE_APPLICATION_DATA, Buffer.alloc(50, 9), 0x0303);
  const stream = Buffer.concat([helloRecords, ccs, earlyData, Buffer.from('garbage')]);
  t.same(parseClientHello(stream), complete('x.test', ['h2'], helloRecords.length));

  const message = buildClientHello({ serverName: 'x.test' });
  const sharedRecord = record(CONTENT_TYPE_HANDSHAKE, Buffer.concat([message, handshakeMessage(99, Buffer.alloc(3))]));
  t.same(parseClientHello(sharedRecord), complete('x.test', [], sharedRecord.length), 'another message in the same record');
});

t.test('incomplete input', async (t) => {
  const records = helloRecord({ serverName: 'x.test' });
  t.same(parseClientHello(new Uint8Array(0)), { status: 'incomplete', need: 1 });
  for (const length of [1, 2, 4]) {
    t.same(parseClientHello(records.subarray(0, length)), { status: 'incomplete', need: 5 }, `${length} bytes`);
  }
  for (const length of [5, 6, 9, records.length - 1]) {
    t.same(parseClientHello(records.subarray(0, length)), { status: 'incomplete', need: records.length }, `${length} bytes`);
  }
  const offset = Buffer.concat([Buffer.alloc(7), records]).subarray(7);
  t.same(parseClientHello(offset), complete('x.test', [], records.length), 'a view into a larger buffer');
  const withAlpn = helloRecord({ serverName: 'Plain.Test', alpn: ['h2'] });
  const plain = new Uint8Array(new ArrayBuffer(withAlpn.length + 9), 9);
  plain.set(withAlpn);
  t.notOk(Buffer.isBuffer(plain));
  t.same(parseClientHello(plain), complete('plain.test', ['h2'], withAlpn.length), 'a plain Uint8Array at an offset, not a Buffer');
});

// ---- properties ----

const hostLabel = fc.stringMatching(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?$/);
const serverNameArb = fc
  .tuple(fc.array(hostLabel, { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([labels, trailingDot]) => labels.join('.') + (trailingDot ? '.' : ''));
const alpnArb = fc.array(
  fc.uint8Array({ minLength: 1, maxLength: 20 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
  { minLength: 1, maxLength: 4 },
);
/** Extensions other than server_name and ALPN, each type at most once (a repeated type is malformed). */
const otherExtensionsArb = fc.uniqueArray(
  fc.record({
    type: fc.integer({ min: 1, max: 0xffff }).filter((type) => type !== EXTENSION_ALPN),
    data: fc.uint8Array({ maxLength: 120 }),
  }),
  { maxLength: 3, selector: (candidate) => candidate.type },
);
const helloOptionsArb = fc.record(
  {
    serverName: serverNameArb,
    alpn: alpnArb,
    extraExtensionBytes: otherExtensionsArb.map((list) => Buffer.concat(list.map(({ type, data }) => extension(type, data)))),
  },
  { requiredKeys: [] },
);
const fragmentSizesArb = fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 6 });

function expectedHello(options: { serverName?: string; alpn?: string[] }): ClientHello {
  const name = options.serverName?.toLowerCase().replace(/\.$/, '') ?? null;
  return hello(name, options.alpn ?? []);
}

function isWellFormedResult(result: HelloParseResult, dataLength: number): boolean {
  switch (result.status) {
    case 'incomplete':
      return Number.isInteger(result.need) && result.need > dataLength && result.need <= MAX_HELLO_BYTES;
    case 'complete':
      return result.length > 0 && result.length <= dataLength && result.length <= MAX_HELLO_BYTES;
    case 'invalid':
      return typeof result.reason === 'string';
  }
}

t.test('property: any bytes parse to one of the three shapes without throwing', async (t) => {
  const validLookingHeader = fc
    .tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 0x4001 }), fc.integer({ min: 0, max: 0x1ffff }))
    .map(([minor, fragmentLength, bodyLength]) =>
      Buffer.concat([Buffer.from([0x16, 0x03, minor]), uint16(fragmentLength), Buffer.from([1]), uint24(bodyLength)]),
    );
  const prefix = fc.oneof(fc.constant(Buffer.alloc(0)), fc.constant(Buffer.from([0x16, 0x03])), fc.constant(Buffer.from([0x80])), validLookingHeader);
  const mutatedHello = fc
    .tuple(helloOptionsArb, fragmentSizesArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }))
    .map(([options, sizes, mutations]) => {
      const data = wrapInRecords(buildClientHello(options), sizes);
      for (const [position, value] of mutations) data[position % data.length] = value;
      return data;
    });
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.tuple(prefix, fc.uint8Array({ maxLength: 300 })).map(([head, tail]) => Buffer.concat([head, tail])),
    mutatedHello,
  );
  fc.assert(
    fc.property(input, (data) => {
      for (const length of [data.length, Math.floor(data.length / 2)]) {
        const view = data.subarray(0, length);
        if (!isWellFormedResult(parseClientHello(view), view.length)) return false;
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('no input threw or returned an ill-formed result');
});

t.test('property: record splits and prefixes do not change the result', async (t) => {
  fc.assert(
    fc.property(helloOptionsArb, fragmentSizesArb, fc.uint8Array({ maxLength: 20 }), (options, sizes, trailing) => {
      const message = buildClientHello(options);
      const expected = expectedHello(options);
      const single = wrapInRecords(message);
      if (!isDeepStrictEqual(parseClientHello(single), { status: 'complete', hello: expected, length: single.length })) {
        return false;
      }
      const records = wrapInRecords(message, sizes);
      const stream = Buffer.concat([records, trailing]);
      if (!isDeepStrictEqual(parseClientHello(stream), { status: 'complete', hello: expected, length: records.length })) {
        return false;
      }
      for (let length = 0; length < records.length; length++) {
        if (parseClientHello(records.subarray(0, length)).status !== 'incomplete') return false;
      }
      return true;
    }),
    { numRuns: 200 },
  );
  t.pass('every split and prefix agreed');
});

t.test('property: a hello trickled byte by byte is parsed a bounded number of times', async (t) => {
  fc.assert(
    fc.property(helloOptionsArb, fragmentSizesArb, (options, sizes) => {
      const records = wrapInRecords(buildClientHello(options), sizes);
      const { result, calls } = trickle(records);
      const expected = { status: 'complete', hello: expectedHello(options), length: records.length };
      return isDeepStrictEqual(result, expected) && calls <= 2 * recordCount(records) + 3;
    }),
    { numRuns: 300 },
  );
  t.pass('complete, with the call count bounded');
});

t.test('property: repeating any extension of a valid hello, anywhere in the list, makes it malformed', async (t) => {
  const extensionsArb = fc
    .tuple(fc.option(serverNameArb, { nil: null }), fc.option(alpnArb, { nil: null }), otherExtensionsArb)
    .map(([serverName, alpn, others]) => [
      ...(serverName === null ? [] : [serverNameExtension(serverName)]),
      ...(alpn === null ? [] : [alpnExtension(alpn)]),
      ...others.map(({ type, data }) => extension(type, data)),
    ])
    .filter((list) => list.length > 0);
  fc.assert(
    fc.property(extensionsArb, fc.nat(), fc.nat(), fragmentSizesArb, (list, which, where, sizes) => {
      if (parseClientHello(withBodyTail(vector16(...list))).status !== 'complete') return false;
      const repeated = [...list];
      repeated.splice(where % (list.length + 1), 0, list[which % list.length]!);
      const message = handshakeMessage(HANDSHAKE_TYPE_CLIENT_HELLO, Buffer.concat([clientHelloBody({ omitExtensions: true }), vector16(...repeated)]));
      return isDeepStrictEqual(parseClientHello(wrapInRecords(message, sizes)), rejected('malformed'));
    }),
    { numRuns: 300 },
  );
  t.pass('every repetition refused');
});

t.test('property: a server name is accepted exactly when every label is 1-63 bytes and the whole at most 255', async (t) => {
  const labelLength = fc.oneof(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 62, max: 65 }));
  const label = labelLength.chain((length) =>
    fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: length, maxLength: length }),
  );
  const nameArb = fc.tuple(fc.array(label, { minLength: 1, maxLength: 6 }), fc.boolean()).map(([labels, rooted]) => labels.join('.') + (rooted ? '.' : ''));
  fc.assert(
    fc.property(nameArb, (serverName) => {
      const data = helloRecord({ serverName });
      const labelsFit = serverName
        .replace(/\.$/, '')
        .split('.')
        .every((part) => part.length <= 63);
      const expected = labelsFit && serverName.length <= 255 ? complete(serverName.replace(/\.$/, ''), [], data.length) : rejected('bad_server_name');
      return isDeepStrictEqual(parseClientHello(data), expected);
    }),
    { numRuns: 500 },
  );
  t.pass('500 names with labels up to 80 bytes');
});

// ---- the handshake-message entry point (QUIC's CRYPTO stream carries no records) ----

t.test('parseClientHelloMessage: a hello without the record layer', async (t) => {
  const message = buildClientHello({ serverName: 'Quic.Example', alpn: ['h3'] });
  t.same(parseClientHelloMessage(message), complete('quic.example', ['h3'], message.length));
  t.same(
    parseClientHelloMessage(Buffer.concat([message, Buffer.from('next message')])),
    complete('quic.example', ['h3'], message.length),
    'bytes after it left alone',
  );
  t.same(parseClientHelloMessage(Buffer.alloc(0)), { status: 'incomplete', need: 1 });
  t.same(parseClientHelloMessage(message.subarray(0, 2)), { status: 'incomplete', need: 4 });
  t.same(parseClientHelloMessage(message.subarray(0, 10)), { status: 'incomplete', need: message.length });
  t.same(parseClientHelloMessage(wrapInRecords(message)), rejected('not_client_hello'), 'a record header is not a handshake message');
  t.same(parseClientHelloMessage(handshakeMessage(2, Buffer.alloc(38))), rejected('not_client_hello'));
  t.same(parseClientHelloMessage(Buffer.concat([Buffer.from([1]), uint24(MAX_HELLO_BYTES - 3)])), rejected('too_large'));
  t.same(parseClientHelloMessage(Buffer.concat([Buffer.from([1]), uint24(MAX_HELLO_BYTES - 4)])), { status: 'incomplete', need: MAX_HELLO_BYTES });
});

t.test('property: parseClientHelloMessage and parseClientHello give the same verdict on any (mutated) hello body', async (t) => {
  const mutatedMessage = fc
    .tuple(helloOptionsArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }))
    .map(([options, mutations]) => {
      const message = buildClientHello(options);
      // Past the 4-byte handshake header: its length limit differs by the record headers the TCP form adds.
      for (const [position, value] of mutations) message[4 + (position % (message.length - 4))] = value;
      return message;
    });
  fc.assert(
    fc.property(mutatedMessage, (message) => {
      const direct = parseClientHelloMessage(message);
      const viaRecords = parseClientHello(wrapInRecords(message));
      if (direct.status !== viaRecords.status) return false;
      if (direct.status === 'complete' && viaRecords.status === 'complete')
        return isDeepStrictEqual(direct.hello, viaRecords.hello) && direct.length === message.length;
      if (direct.status === 'invalid' && viaRecords.status === 'invalid') return direct.reason === viaRecords.reason;
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('500 hellos agreed');
});
