// The DER encoder against X.690's rules and published encodings, and the
// reader against the encoder.
import t from 'tap';
import fc from 'fast-check';
import {
  bitString,
  boolean,
  explicit,
  implicit,
  integer,
  namedBits,
  octetString,
  oid,
  readChildren,
  readElement,
  sequence,
  set,
  time,
  tlv,
  utf8String,
} from '../../lib/tls/der.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

t.test('INTEGER: minimal octets, a leading zero before a set top bit', async (t) => {
  t.equal(hex(integer(0n)), '020100');
  t.equal(hex(integer(127n)), '02017f');
  t.equal(hex(integer(128n)), '02020080');
  t.equal(hex(integer(256n)), '02020100');
  t.equal(hex(integer(Buffer.from('000001', 'hex'))), '020101', 'leading zero bytes are dropped');
  t.equal(hex(integer(Buffer.from('ff', 'hex'))), '020200ff');
  t.equal(hex(integer(Buffer.alloc(0))), '020100');
  t.throws(() => integer(-1n), RangeError);
});

t.test('INTEGER round-trips through the reader for any non-negative value', async (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 200n) - 1n }), (value) => {
      const encoded = integer(value);
      const element = readElement(encoded);
      const content = encoded.subarray(element.contentStart, element.end);
      const minimal = content.length === 1 || !(content[0] === 0 && content[1]! < 0x80);
      return element.tag === 0x02 && element.end === encoded.length && content[0]! < 0x80 && minimal && BigInt(`0x${hex(content)}`) === value;
    }),
    { numRuns: 500 },
  );
  t.pass('500 values: positive, minimal, and read back equal');
});

t.test('lengths: short form below 128, long form with the fewest bytes above', async (t) => {
  const header = (length: number): string => hex(octetString(Buffer.alloc(length)).subarray(0, -length || undefined));
  t.equal(header(0), '0400');
  t.equal(header(127), '047f');
  t.equal(header(128), '048180');
  t.equal(header(255), '0481ff');
  t.equal(header(256), '04820100');
  t.equal(header(65536), '0483010000');
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 70_000 }), (length) => {
      const element = readElement(tlv(0x04, Buffer.alloc(length)));
      return element.end - element.contentStart === length;
    }),
    { numRuns: 50 },
  );
});

t.test('OBJECT IDENTIFIER: X.690 and RFC 5280 encodings', async (t) => {
  t.equal(hex(oid('1.2.840.113549')), '06062a864886f70d');
  t.equal(hex(oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302', 'ecdsa-with-SHA256');
  t.equal(hex(oid('2.5.29.19')), '0603551d13', 'basicConstraints');
  t.equal(hex(oid('1.3.6.1.5.5.7.3.1')), '06082b06010505070301', 'serverAuth');
  t.equal(hex(oid('2.999.3')), '0603883703', 'X.690 8.19.5 example: the first subidentifier takes two bytes');
  for (const bad of ['1', '3.1', '1.40', '1.a', '1..2', '']) t.throws(() => oid(bad), RangeError, bad);
});

t.test('BOOLEAN, strings, BIT STRING, OCTET STRING', async (t) => {
  t.equal(hex(boolean(true)), '0101ff');
  t.equal(hex(boolean(false)), '010100');
  t.equal(hex(utf8String('é')), '0c02c3a9');
  t.equal(hex(bitString(Buffer.from('abcd', 'hex'))), '030300abcd', 'whole bytes: no unused bits');
  t.equal(hex(octetString(Buffer.from('01', 'hex'))), '040101');
});

t.test('named bits drop trailing zero bits and count the unused ones', async (t) => {
  t.equal(hex(namedBits([0])), '03020780', 'digitalSignature');
  t.equal(hex(namedBits([5, 6])), '03020106', 'keyCertSign + cRLSign');
  t.equal(hex(namedBits([8])), '0303070080', 'decipherOnly spills into a second byte');
  t.equal(hex(namedBits([])), '030100');
});

t.test('times: UTCTime through 2049, GeneralizedTime from 2050, whole seconds', async (t) => {
  t.equal(time(new Date('2049-12-31T23:59:59.999Z')).toString('latin1'), '\x17\x0d491231235959Z');
  t.equal(time(new Date('2050-01-01T00:00:00Z')).toString('latin1'), '\x18\x0f20500101000000Z');
  t.equal(time(new Date('1950-01-01T00:00:00Z')).toString('latin1'), '\x17\x0d500101000000Z');
  t.throws(() => time(new Date('1949-12-31T23:59:59Z')), RangeError);
});

t.test('SEQUENCE, SET in DER order, context tags', async (t) => {
  t.equal(hex(sequence()), '3000');
  t.equal(hex(sequence(boolean(true), integer(1n))), '30060101ff020101');
  t.equal(hex(set(integer(2n), integer(1n))), '3106020101020102', 'SET OF elements are sorted by their encoding');
  t.equal(hex(explicit(0, integer(2n))), 'a003020102');
  t.equal(hex(implicit(2, Buffer.from('a'))), '820161');
});

t.test('the reader walks what the encoder built and refuses truncated input', async (t) => {
  const encoded = sequence(integer(5n), sequence(oid('2.5.4.3'), utf8String('x'.repeat(200))), explicit(3, boolean(true)));
  const root = readElement(encoded);
  t.same([root.tag, root.start, root.end], [0x30, 0, encoded.length]);
  const children = readChildren(encoded, root);
  t.same(
    children.map((child) => child.tag),
    [0x02, 0x30, 0xa3],
  );
  const [type, value] = readChildren(encoded, children[1]!);
  t.equal(hex(encoded.subarray(type!.start, type!.end)), '0603550403');
  t.equal(encoded.subarray(value!.contentStart, value!.end).toString(), 'x'.repeat(200));
  t.throws(() => readElement(encoded.subarray(0, encoded.length - 1)), RangeError, 'content cut short');
  t.throws(() => readElement(Buffer.from('30', 'hex')), RangeError, 'no length');
  t.throws(() => readElement(Buffer.from('3082ff', 'hex')), RangeError, 'length bytes cut short');
  t.throws(() => readElement(Buffer.from('3080', 'hex')), RangeError, 'indefinite length is not DER');
  t.throws(() => readChildren(Buffer.from('3003020501', 'hex'), readElement(Buffer.from('3003020501', 'hex'))), RangeError, 'a child runs past its parent');
});
