// Parses just enough of a TLS ClientHello to route on it: the server name and
// the offered ALPN protocols. Pure and restartable: the caller re-parses the
// growing buffer from the start each time it has at least `need` bytes. Once
// the message length is known, `need` is the earliest the record layer could
// end, not the next record: a hello cut into tiny records is then re-parsed a
// few dozen times instead of once per record (which would be quadratic).

export const MAX_HELLO_BYTES = 64 * 1024; // cap on bytes read before routing

export type HelloRejection = 'not_tls' | 'not_client_hello' | 'bad_record' | 'malformed' | 'too_large' | 'bad_server_name';

export interface ClientHello {
  serverName: string | null;
  alpn: string[];
  sslv2: boolean;
}

export type HelloParseResult =
  | { status: 'incomplete'; need: number }
  | { status: 'complete'; hello: ClientHello; length: number }
  | { status: 'invalid'; reason: HelloRejection };

const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_TYPE_CLIENT_HELLO = 1;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
const MAX_FRAGMENT_BYTES = 16384;
const MAX_RECORD_VERSION_MINOR = 4;
const RANDOM_BYTES = 32;
const MAX_SESSION_ID_BYTES = 32;

const EXTENSION_SERVER_NAME = 0;
const EXTENSION_ALPN = 16;
const NAME_TYPE_HOST_NAME = 0;
const MAX_HOST_NAME_BYTES = 255;

const SSLV2_HEADER_BYTES = 2;
// msg_type(1) version(2) cipher_spec_length(2) session_id_length(2) challenge_length(2)
const SSLV2_FIXED_BODY_BYTES = 9;
const SSLV2_MSG_CLIENT_HELLO = 1;

const NOT_FOUND = -1;

export function parseClientHello(data: Uint8Array): HelloParseResult {
  if (data.length === 0) return incomplete(1);
  if (data[0] === CONTENT_TYPE_HANDSHAKE) return parseTlsRecords(data);
  if (data[0] & 0x80) return parseSslv2Hello(data);
  return invalid('not_tls');
}

function incomplete(need: number): HelloParseResult {
  return { status: 'incomplete', need };
}

function invalid(reason: HelloRejection): HelloParseResult {
  return { status: 'invalid', reason };
}

function readUint16(buf: Uint8Array, pos: number): number {
  return (buf[pos] << 8) | buf[pos + 1];
}

function parseTlsRecords(data: Uint8Array): HelloParseResult {
  let recordStart = 0;
  let messageBytesBefore = 0; // handshake-message bytes carried by the records before recordStart
  let headerBytesRead = 0;
  let bodyLength = 0;
  for (;;) {
    const headerProblem = checkRecordHeader(data, recordStart);
    if (headerProblem !== null) return invalid(headerProblem);
    const fragmentStart = recordStart + RECORD_HEADER_BYTES;
    if (data.length < fragmentStart) {
      if (headerBytesRead < HANDSHAKE_HEADER_BYTES) return incomplete(fragmentStart);
      return incomplete(minimumRecordLayerEnd(recordStart, HANDSHAKE_HEADER_BYTES + bodyLength - messageBytesBefore));
    }
    const fragmentLength = readUint16(data, recordStart + 3);
    const fragmentEnd = fragmentStart + fragmentLength;

    // Read the handshake header from whatever part of the fragment has arrived,
    // so that a wrong type or an oversized length is rejected at once.
    const availableEnd = Math.min(fragmentEnd, data.length);
    for (let i = fragmentStart; i < availableEnd && headerBytesRead < HANDSHAKE_HEADER_BYTES; i++) {
      if (headerBytesRead === 0) {
        if (data[i] !== HANDSHAKE_TYPE_CLIENT_HELLO) return invalid('not_client_hello');
      } else {
        bodyLength = (bodyLength << 8) | data[i];
      }
      headerBytesRead++;
    }
    const messageLength = HANDSHAKE_HEADER_BYTES + bodyLength;
    const messageBytesAfter = messageLength - (messageBytesBefore + fragmentLength);
    if (headerBytesRead === HANDSHAKE_HEADER_BYTES && minimumRecordLayerEnd(fragmentEnd, messageBytesAfter) > MAX_HELLO_BYTES) {
      return invalid('too_large');
    }
    if (data.length < fragmentEnd) {
      if (headerBytesRead < HANDSHAKE_HEADER_BYTES) return incomplete(fragmentEnd);
      return incomplete(minimumRecordLayerEnd(fragmentEnd, messageBytesAfter));
    }

    if (headerBytesRead === HANDSHAKE_HEADER_BYTES && messageBytesAfter <= 0) {
      const message = recordStart === 0 ? data.subarray(fragmentStart, fragmentStart + messageLength) : reassembleMessage(data, messageLength);
      const hello = parseClientHelloBody(message.subarray(HANDSHAKE_HEADER_BYTES));
      if (typeof hello === 'string') return invalid(hello);
      return { status: 'complete', hello, length: fragmentEnd };
    }
    messageBytesBefore += fragmentLength;
    recordStart = fragmentEnd;
  }
}

/** Checks the bytes of the record header at `recordStart` that have arrived. */
function checkRecordHeader(data: Uint8Array, recordStart: number): HelloRejection | null {
  const available = data.length - recordStart;
  if (available > 0 && data[recordStart] !== CONTENT_TYPE_HANDSHAKE) return 'bad_record';
  if (available > 1 && data[recordStart + 1] !== 3) return 'bad_record';
  if (available > 2 && data[recordStart + 2] > MAX_RECORD_VERSION_MINOR) return 'bad_record';
  if (available > 4) {
    const fragmentLength = readUint16(data, recordStart + 3);
    if (fragmentLength === 0 || fragmentLength > MAX_FRAGMENT_BYTES) return 'bad_record';
  }
  return null;
}

/**
 * Where the record layer would end at the earliest, given the current record
 * ends at `recordEnd` and `messageBytesAfter` message bytes must follow it in
 * further records (each at most MAX_FRAGMENT_BYTES long, with its own header).
 */
function minimumRecordLayerEnd(recordEnd: number, messageBytesAfter: number): number {
  if (messageBytesAfter <= 0) return recordEnd;
  const records = Math.ceil(messageBytesAfter / MAX_FRAGMENT_BYTES);
  return recordEnd + messageBytesAfter + records * RECORD_HEADER_BYTES;
}

/** Copies the fragments of a handshake message that spans records (headers already validated). */
function reassembleMessage(data: Uint8Array, messageLength: number): Uint8Array {
  const message = new Uint8Array(messageLength);
  let copied = 0;
  let recordStart = 0;
  while (copied < messageLength) {
    const fragmentStart = recordStart + RECORD_HEADER_BYTES;
    const fragmentLength = readUint16(data, recordStart + 3);
    const take = Math.min(fragmentLength, messageLength - copied);
    message.set(data.subarray(fragmentStart, fragmentStart + take), copied);
    copied += take;
    recordStart = fragmentStart + fragmentLength;
  }
  return message;
}

/**
 * Position just past a vector whose `prefixBytes`-byte length prefix is at
 * `pos`, or NOT_FOUND if the length is outside [min, max] or overruns `end`.
 */
function skipVector(buf: Uint8Array, pos: number, end: number, prefixBytes: 1 | 2, min: number, max: number): number {
  if (pos === NOT_FOUND || pos + prefixBytes > end) return NOT_FOUND;
  const length = prefixBytes === 1 ? buf[pos] : readUint16(buf, pos);
  const vectorEnd = pos + prefixBytes + length;
  if (length < min || length > max || vectorEnd > end) return NOT_FOUND;
  return vectorEnd;
}

function parseClientHelloBody(body: Uint8Array): ClientHello | HelloRejection {
  const end = body.length;
  const sessionIdStart = 2 + RANDOM_BYTES; // after legacy_version and random
  if (sessionIdStart > end) return 'malformed';
  const cipherSuitesStart = skipVector(body, sessionIdStart, end, 1, 0, MAX_SESSION_ID_BYTES);
  const compressionStart = skipVector(body, cipherSuitesStart, end, 2, 2, 0xfffe);
  if (compressionStart === NOT_FOUND || readUint16(body, cipherSuitesStart) % 2 !== 0) return 'malformed';
  const extensionsStart = skipVector(body, compressionStart, end, 1, 1, 0xff);
  if (extensionsStart === NOT_FOUND) return 'malformed';
  // Clients predating extensions end the hello here.
  if (extensionsStart === end) return { serverName: null, alpn: [], sslv2: false };
  if (skipVector(body, extensionsStart, end, 2, 0, 0xffff) !== end) return 'malformed';
  return parseExtensions(body, extensionsStart + 2, end);
}

function parseExtensions(buf: Uint8Array, start: number, end: number): ClientHello | HelloRejection {
  let hostNameEntry = NOT_FOUND;
  let alpnList = NOT_FOUND;
  let sawServerName = false;
  let pos = start;
  while (pos < end) {
    if (pos + 4 > end) return 'malformed';
    const type = readUint16(buf, pos);
    const dataStart = pos + 4;
    const dataEnd = dataStart + readUint16(buf, pos + 2);
    if (dataEnd > end) return 'malformed';
    if (type === EXTENSION_SERVER_NAME) {
      if (sawServerName) return 'bad_server_name';
      sawServerName = true;
      hostNameEntry = findHostNameEntry(buf, dataStart, dataEnd);
      if (hostNameEntry === NOT_FOUND) return 'bad_server_name';
    } else if (type === EXTENSION_ALPN) {
      if (alpnList !== NOT_FOUND || !isValidAlpnExtension(buf, dataStart, dataEnd)) return 'malformed';
      alpnList = dataStart;
    }
    pos = dataEnd;
  }
  return {
    serverName: hostNameEntry === NOT_FOUND ? null : decodeHostName(buf, hostNameEntry),
    alpn: alpnList === NOT_FOUND ? [] : decodeAlpnList(buf, alpnList),
    sslv2: false,
  };
}

/**
 * Position of the single valid host_name entry in a server_name extension, or
 * NOT_FOUND if the extension is invalid. Like OpenSSL (which the backends run),
 * a second host_name entry makes it invalid rather than ambiguous.
 */
function findHostNameEntry(buf: Uint8Array, start: number, end: number): number {
  if (skipVector(buf, start, end, 2, 1, 0xffff) !== end) return NOT_FOUND;
  let found = NOT_FOUND;
  let pos = start + 2;
  while (pos < end) {
    const nameEnd = skipVector(buf, pos + 1, end, 2, 0, 0xffff);
    if (nameEnd === NOT_FOUND) return NOT_FOUND;
    if (buf[pos] === NAME_TYPE_HOST_NAME) {
      if (found !== NOT_FOUND || !isValidHostName(buf, pos + 3, nameEnd)) return NOT_FOUND;
      found = pos;
    }
    pos = nameEnd;
  }
  return found;
}

/** Printable ASCII without empty labels (".a", "a..b"); one trailing dot (the root) is allowed. */
function isValidHostName(buf: Uint8Array, start: number, end: number): boolean {
  const length = end - start;
  if (length === 0 || length > MAX_HOST_NAME_BYTES) return false;
  let previous = 0x2e; // as if after a dot, so a leading dot is an empty label
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    if (byte < 0x21 || byte > 0x7e) return false;
    if (byte === 0x2e && previous === 0x2e) return false;
    previous = byte;
  }
  return true;
}

function isValidAlpnExtension(buf: Uint8Array, start: number, end: number): boolean {
  if (skipVector(buf, start, end, 2, 2, 0xffff) !== end) return false;
  for (let pos = start + 2; pos < end; ) {
    pos = skipVector(buf, pos, end, 1, 1, 0xff);
    if (pos === NOT_FOUND) return false;
  }
  return true;
}

function decodeLatin1(buf: Uint8Array, start: number, end: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
}

function decodeHostName(buf: Uint8Array, entry: number): string {
  const start = entry + 3;
  let end = start + readUint16(buf, entry + 1);
  if (buf[end - 1] === 0x2e) end--;
  return decodeLatin1(buf, start, end).toLowerCase();
}

function decodeAlpnList(buf: Uint8Array, extensionStart: number): string[] {
  const end = extensionStart + 2 + readUint16(buf, extensionStart);
  const protocols: string[] = [];
  for (let pos = extensionStart + 2; pos < end; pos += 1 + buf[pos]) {
    protocols.push(decodeLatin1(buf, pos + 1, pos + 1 + buf[pos]));
  }
  return protocols;
}

/**
 * The SSLv2-compatible hello of old clients: a 2-byte header with the high bit
 * set and a 15-bit length, then msg_type, version and three lengths. It cannot
 * carry extensions, so there is nothing to route on beyond recognising it.
 */
function parseSslv2Hello(data: Uint8Array): HelloParseResult {
  if (data.length > 2 && data[2] !== SSLV2_MSG_CLIENT_HELLO) return invalid('not_tls');
  if (data.length > 3 && data[3] !== 0 && data[3] !== 3) return invalid('not_tls');
  if (data.length > 4 && data[3] === 0 && data[4] !== 2) return invalid('not_tls');
  if (data.length < SSLV2_HEADER_BYTES) return incomplete(SSLV2_HEADER_BYTES);
  const bodyLength = readUint16(data, 0) & 0x7fff;
  if (bodyLength < SSLV2_FIXED_BODY_BYTES) return invalid('malformed');
  const end = SSLV2_HEADER_BYTES + bodyLength;
  if (data.length < end) return incomplete(end);
  const variableBytes = readUint16(data, 5) + readUint16(data, 7) + readUint16(data, 9);
  if (SSLV2_FIXED_BODY_BYTES + variableBytes !== bodyLength) return invalid('malformed');
  return { status: 'complete', hello: { serverName: null, alpn: [], sslv2: true }, length: end };
}
