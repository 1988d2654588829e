// The few ASN.1 DER types an X.509 certificate is built from (X.690), as
// functions returning the encoded bytes, and a reader that walks an encoded
// value's elements. Node parses certificates (crypto.X509Certificate) but does
// not make them; this is the part it lacks.

const TAG_BOOLEAN = 0x01;
const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
export const TAG_UTF8_STRING = 0x0c;
export const TAG_PRINTABLE_STRING = 0x13;
export const TAG_IA5_STRING = 0x16;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;
const TAG_SEQUENCE = 0x30;
const TAG_SET = 0x31;

/** The length octets: short form below 128, else 0x80 + the count of big-endian length bytes. */
function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.of(length);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.of(0x80 | bytes.length, ...bytes);
}

/** One element: tag, length, content. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(tag), encodeLength(content.length), content]);
}

export function sequence(...elements: Uint8Array[]): Buffer {
  return tlv(TAG_SEQUENCE, Buffer.concat(elements));
}

/** SET OF: DER orders the encoded elements as byte strings (X.690 11.6). */
export function set(...elements: Uint8Array[]): Buffer {
  return tlv(TAG_SET, Buffer.concat([...elements].sort(Buffer.compare)));
}

/** A non-negative INTEGER, from a bigint or big-endian bytes: minimal octets, a leading 0 when the top bit would read as a sign. */
export function integer(value: bigint | Uint8Array): Buffer {
  let bytes: Buffer;
  if (typeof value === 'bigint') {
    if (value < 0n) throw new RangeError('negative INTEGER values are not supported');
    const hex = value.toString(16);
    bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  } else {
    bytes = Buffer.from(value);
  }
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Buffer.of(0);
  return tlv(TAG_INTEGER, bytes[0]! & 0x80 ? Buffer.concat([Buffer.of(0), bytes]) : bytes);
}

export function boolean(value: boolean): Buffer {
  return tlv(TAG_BOOLEAN, Buffer.of(value ? 0xff : 0x00));
}

/** An OBJECT IDENTIFIER from dotted form: the first two arcs share one byte, each arc in base 128 with continuation bits. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((arc) => {
    if (!/^\d+$/.test(arc)) throw new RangeError(`invalid OID "${dotted}"`);
    return BigInt(arc);
  });
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n)) throw new RangeError(`invalid OID "${dotted}"`);
  const bytes: number[] = [];
  for (const arc of [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]) {
    const group = [Number(arc & 0x7fn)];
    for (let rest = arc >> 7n; rest > 0n; rest >>= 7n) group.unshift(Number(rest & 0x7fn) | 0x80);
    bytes.push(...group);
  }
  return tlv(TAG_OID, Buffer.from(bytes));
}

export function utf8String(text: string): Buffer {
  return tlv(TAG_UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** A BIT STRING of whole bytes (keys, signatures). */
export function bitString(bytes: Uint8Array): Buffer {
  return tlv(TAG_BIT_STRING, Buffer.concat([Buffer.of(0), bytes]));
}

/**
 * A named-bit BIT STRING (KeyUsage) with `bits` set, bit 0 being the most
 * significant of the first byte; DER drops trailing zero bits (X.690 11.2.2).
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return tlv(TAG_BIT_STRING, Buffer.of(0));
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  return tlv(TAG_BIT_STRING, Buffer.concat([Buffer.of(7 - (highest & 7)), bytes]));
}

export function octetString(bytes: Uint8Array): Buffer {
  return tlv(TAG_OCTET_STRING, bytes);
}

const twoDigits = (value: number): string => String(value).padStart(2, '0');

/**
 * A certificate time, to the second: UTCTime through 2049 and GeneralizedTime
 * from 2050, as RFC 5280 4.1.2.5 requires.
 */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError(`a certificate time must fall in 1950-9999, not ${date.toISOString()}`);
  const rest = [date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()].map(twoDigits).join('');
  return year < 2050 ? tlv(TAG_UTC_TIME, Buffer.from(`${twoDigits(year % 100)}${rest}Z`)) : tlv(TAG_GENERALIZED_TIME, Buffer.from(`${year}${rest}Z`));
}

/** [n] EXPLICIT: a constructed context-specific tag around a whole element. */
export function explicit(tagNumber: number, element: Uint8Array): Buffer {
  return tlv(0xa0 | tagNumber, element);
}

/** [n] IMPLICIT on a primitive type: the content with a context-specific tag in place of the type's own. */
export function implicit(tagNumber: number, content: Uint8Array): Buffer {
  return tlv(0x80 | tagNumber, content);
}

/** One element found by `readElement`: where its content lies in the buffer it was read from. */
export interface DerElement {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  contentStart: number;
  end: number;
}

/** Reads the element at `offset` (definite lengths only, as DER has). Throws a RangeError on truncated or malformed input. */
export function readElement(buffer: Uint8Array, offset = 0): DerElement {
  const tag = buffer[offset];
  let lengthByte = buffer[offset + 1];
  if (tag === undefined || lengthByte === undefined) throw new RangeError(`DER: truncated element at ${offset}`);
  if ((tag & 0x1f) === 0x1f) throw new RangeError(`DER: multi-byte tag at ${offset}`);
  let contentStart = offset + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f;
    if (count === 0 || count > 4) throw new RangeError(`DER: unsupported length form at ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) {
      lengthByte = buffer[contentStart + i];
      if (lengthByte === undefined) throw new RangeError(`DER: truncated length at ${offset}`);
      length = length * 256 + lengthByte;
    }
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > buffer.length) throw new RangeError(`DER: element at ${offset} runs past the end`);
  return { tag, start: offset, contentStart, end };
}

/** The elements inside a constructed element (a SEQUENCE's fields). */
export function readChildren(buffer: Uint8Array, parent: DerElement): DerElement[] {
  const children: DerElement[] = [];
  for (let offset = parent.contentStart; offset < parent.end; ) {
    const child = readElement(buffer, offset);
    if (child.end > parent.end) throw new RangeError(`DER: element at ${offset} runs past its parent`);
    children.push(child);
    offset = child.end;
  }
  return children;
}
