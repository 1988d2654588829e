// QUIC's variable-length integers (RFC 9000 section 16): the two high bits of
// the first byte give the length (1, 2, 4 or 8 bytes), the rest is the value,
// big-endian.

/** How many bytes the varint that starts with `firstByte` takes. */
export function varintLength(firstByte: number): number {
  return 1 << (firstByte >> 6);
}

/**
 * The varint at `pos`, or -1 when it runs past `end` (a caller tells a cut
 * datagram from a value without reading past the buffer). Values above 2^53
 * lose precision: only lengths, offsets and packet numbers are read here, and
 * every length or offset is checked against a buffer far smaller than that.
 */
export function readVarint(buf: Uint8Array, pos: number, end: number): number {
  if (pos >= end) return -1;
  const length = varintLength(buf[pos]!);
  if (pos + length > end) return -1;
  let value = buf[pos]! & 0x3f;
  for (let i = 1; i < length; i++) value = value * 256 + buf[pos + i]!;
  return value;
}
