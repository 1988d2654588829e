// An independent reader (and, for clients that play an upstream load
// balancer, a writer) of HAProxy PROXY protocol headers, written for the tests
// straight from the specification (haproxy doc/proxy-protocol.txt, sections
// 2.1 and 2.2). It deliberately shares nothing with lib/net/proxy-protocol.ts
// so that the tests do not check the proxy's encoder against itself.
//
// Also: a recording backend that reads the PROXY header a connection starts
// with and then serves TLS on the rest of the bytes, so a whole session
// completes through the proxy with PROXY out enabled.
import net from 'node:net';
import tls from 'node:tls';
import type { BackendIdentity, TestBackend } from './backends.js';
import type { CertificateAuthority } from './certificates.js';

/** The 12-byte v2 signature (spec 2.2). */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** v1 lines are at most 107 bytes, CRLF included (spec 2.1). */
export const V1_MAX_LENGTH = 107;

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_NOOP = 0x04;

export interface ProxyEndpoint {
  /** IPv4 dotted quad, IPv6 in RFC 5952 form (lowercase, longest zero run as `::`). */
  address: string;
  port: number;
}

export interface ProxyHeaderInfo {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  /** v1: the protocol token (`TCP4`, `TCP6`, `UNKNOWN`); v2: `TCP4`, `UDP4`, `TCP6`, `UDP6`, `UNIX_STREAM`, `UNIX_DGRAM` or `UNSPEC`. */
  family: string;
  /** v2 only: the 13th byte (version << 4 | command) and the 14th (family << 4 | transport). */
  versionCommandByte: number | null;
  familyByte: number | null;
  /** null for v1 UNKNOWN, v2 UNSPEC and UNIX families. */
  source: ProxyEndpoint | null;
  destination: ProxyEndpoint | null;
  tlvs: Array<{ type: number; value: Buffer }>;
  /** Bytes the header takes at the start of the buffer. */
  length: number;
}

export class ProxyHeaderError extends Error {}

function fail(message: string): never {
  throw new ProxyHeaderError(message);
}

/** RFC 5952 text for 16 address bytes (IPv4-mapped ones as `::ffff:a.b.c.d`). */
export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let index = 0; index < 16; index += 2) groups.push((bytes[index]! << 8) | bytes[index + 1]!);
  // Longest run of at least two zero groups (the first one on a tie) becomes "::".
  let bestStart = -1;
  let bestLength = 0;
  for (let index = 0; index < 8; ) {
    if (groups[index] !== 0) {
      index++;
      continue;
    }
    let end = index;
    while (end < 8 && groups[end] === 0) end++;
    if (end - index > bestLength) {
      bestStart = index;
      bestLength = end - index;
    }
    index = end;
  }
  const hex = (list: number[]): string => list.map((group) => group.toString(16)).join(':');
  // RFC 5952 section 5: IPv4-mapped addresses end in dotted decimal.
  if (bestStart === 0 && bestLength === 5 && groups[5] === 0xffff) return `::ffff:${Array.from(bytes.subarray(12, 16)).join('.')}`;
  if (bestLength < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** 16 bytes for an IPv6 address in any textual form (`::1`, `2001:db8::7`, `::ffff:1.2.3.4`). */
export function parseIPv6(text: string): Buffer {
  if (!net.isIPv6(text)) fail(`not an IPv6 address: ${JSON.stringify(text)}`);
  let hex = text;
  // A trailing dotted quad stands for the last two groups.
  const lastColon = hex.lastIndexOf(':');
  if (hex.slice(lastColon + 1).includes('.')) {
    const quad = hex
      .slice(lastColon + 1)
      .split('.')
      .map(Number) as [number, number, number, number];
    hex = `${hex.slice(0, lastColon + 1)}${((quad[0] << 8) | quad[1]).toString(16)}:${((quad[2] << 8) | quad[3]).toString(16)}`;
  }
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').map((word) => parseInt(word, 16)));
  const double = hex.indexOf('::');
  const left = words(double < 0 ? hex : hex.slice(0, double));
  const right = double < 0 ? [] : words(hex.slice(double + 2));
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  if (all.length !== 8) fail(`cannot expand ${text}`);
  const out = Buffer.alloc(16);
  all.forEach((word, index) => {
    out.writeUInt16BE(word, index * 2);
  });
  return out;
}

function parseIPv4Text(text: string): string {
  // Spec 2.1: dotted decimal, four numbers 0-255.
  if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(text)) fail(`bad IPv4 address ${JSON.stringify(text)}`);
  if (text.split('.').some((part) => Number(part) > 255)) fail(`bad IPv4 address ${JSON.stringify(text)}`);
  return text;
}

function parsePortText(text: string): number {
  // Spec 2.1: a decimal number 0-65535 (leading zeros are not expected).
  if (!/^(0|[1-9]\d{0,4})$/.test(text) || Number(text) > 65535) fail(`bad port ${JSON.stringify(text)}`);
  return Number(text);
}

function readV1(buffer: Buffer): ProxyHeaderInfo | null {
  const searchable = buffer.subarray(0, V1_MAX_LENGTH);
  const crlf = searchable.indexOf('\r\n', 0, 'latin1');
  if (crlf < 0) {
    if (buffer.length >= V1_MAX_LENGTH) fail('v1: no CRLF within 107 bytes');
    return null;
  }
  const line = searchable.subarray(0, crlf).toString('latin1');
  const parts = line.split(' ');
  if (parts[0] !== 'PROXY') fail('v1: no "PROXY" token');
  const length = crlf + 2;
  const family = parts[1];
  if (family === 'UNKNOWN') {
    // Spec: the receiver ignores everything up to the CRLF.
    return { version: 1, command: 'PROXY', family, versionCommandByte: null, familyByte: null, source: null, destination: null, tlvs: [], length };
  }
  if (family !== 'TCP4' && family !== 'TCP6') fail(`v1: unknown protocol ${JSON.stringify(family)}`);
  if (parts.length !== 6) fail(`v1: expected 6 fields, got ${parts.length}: ${JSON.stringify(line)}`);
  const [, , sourceText, destinationText, sourcePort, destinationPort] = parts as [string, string, string, string, string, string];
  const address = (text: string): string => (family === 'TCP4' ? parseIPv4Text(text) : formatIPv6(parseIPv6(text)));
  return {
    version: 1,
    command: 'PROXY',
    family,
    versionCommandByte: null,
    familyByte: null,
    source: { address: address(sourceText), port: parsePortText(sourcePort) },
    destination: { address: address(destinationText), port: parsePortText(destinationPort) },
    tlvs: [],
    length,
  };
}

const V2_FAMILIES: Record<number, string> = {
  0: 'UNSPEC',
  17: 'TCP4',
  18: 'UDP4',
  33: 'TCP6',
  34: 'UDP6',
  49: 'UNIX_STREAM',
  50: 'UNIX_DGRAM',
};

function readV2(buffer: Buffer): ProxyHeaderInfo | null {
  if (buffer.length < 16) return null;
  const versionCommandByte = buffer[12]!;
  if (versionCommandByte >> 4 !== 2) fail(`v2: version nibble ${versionCommandByte >> 4}, must be 2`);
  const commandNibble = versionCommandByte & 0x0f;
  if (commandNibble > 1) fail(`v2: unassigned command ${commandNibble}`);
  const familyByte = buffer[13]!;
  const familyName = V2_FAMILIES[familyByte];
  if (familyName === undefined) fail(`v2: unknown family/transport byte 0x${familyByte.toString(16)}`);
  const bodyLength = buffer.readUInt16BE(14);
  const length = 16 + bodyLength;
  if (buffer.length < length) return null;
  const body = buffer.subarray(16, length);
  const addressBytes = familyByte >> 4 === 1 ? 12 : familyByte >> 4 === 2 ? 36 : familyByte >> 4 === 3 ? 216 : 0;
  if (body.length < addressBytes) fail(`v2: ${body.length} body bytes, family needs ${addressBytes}`);
  let source: ProxyEndpoint | null = null;
  let destination: ProxyEndpoint | null = null;
  if (familyByte >> 4 === 1) {
    const ipv4 = (offset: number): string => Array.from(body.subarray(offset, offset + 4)).join('.');
    source = { address: ipv4(0), port: body.readUInt16BE(8) };
    destination = { address: ipv4(4), port: body.readUInt16BE(10) };
  } else if (familyByte >> 4 === 2) {
    source = { address: formatIPv6(body.subarray(0, 16)), port: body.readUInt16BE(32) };
    destination = { address: formatIPv6(body.subarray(16, 32)), port: body.readUInt16BE(34) };
  }
  const tlvs: ProxyHeaderInfo['tlvs'] = [];
  let offset = addressBytes;
  while (offset < body.length) {
    if (body.length - offset < 3) fail(`v2: ${body.length - offset} trailing bytes, too short for a TLV`);
    const type = body[offset]!;
    const valueLength = body.readUInt16BE(offset + 1);
    if (offset + 3 + valueLength > body.length) fail(`v2: TLV 0x${type.toString(16)} overruns the header`);
    tlvs.push({ type, value: Buffer.from(body.subarray(offset + 3, offset + 3 + valueLength)) });
    offset += 3 + valueLength;
  }
  return {
    version: 2,
    command: commandNibble === 0 ? 'LOCAL' : 'PROXY',
    family: familyName,
    versionCommandByte,
    familyByte,
    source,
    destination,
    tlvs,
    length,
  };
}

/**
 * Reads the PROXY header at the start of `buffer`: the header, or null when
 * more bytes are needed. Throws `ProxyHeaderError` when the bytes are not a
 * valid header (including when they are not a PROXY header at all).
 */
export function readProxyHeader(buffer: Buffer): ProxyHeaderInfo | null {
  // Spec 2.2, "identifying the protocol version".
  const signatureBytes = Math.min(buffer.length, V2_SIGNATURE.length);
  if (buffer.subarray(0, signatureBytes).equals(V2_SIGNATURE.subarray(0, signatureBytes))) {
    return buffer.length < V2_SIGNATURE.length ? null : readV2(buffer);
  }
  const prefix = Buffer.from('PROXY ', 'latin1');
  const prefixBytes = Math.min(buffer.length, prefix.length);
  if (buffer.subarray(0, prefixBytes).equals(prefix.subarray(0, prefixBytes))) {
    return buffer.length < prefix.length ? null : readV1(buffer);
  }
  return fail(`not a PROXY header (starts ${buffer.subarray(0, 8).toString('hex')})`);
}

/** The value of the first TLV of `type`, or null. */
export function tlvValue(header: ProxyHeaderInfo, type: number): Buffer | null {
  return header.tlvs.find((tlv) => tlv.type === type)?.value ?? null;
}

// ---------------------------------------------------------------------------
// Writers, for clients that play an upstream load balancer

/** A v1 line for `source` → `destination` (TCP4 or TCP6 by the address form). */
export function buildProxyV1(source: ProxyEndpoint, destination: ProxyEndpoint): Buffer {
  const family = net.isIPv6(source.address) ? 'TCP6' : 'TCP4';
  return Buffer.from(`PROXY ${family} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`, 'latin1');
}

/**
 * A v2 header. `command` LOCAL with no endpoints gives the health-check form
 * (family UNSPEC, no address block); TLVs are appended as given.
 */
export function buildProxyV2(options: {
  command?: 'PROXY' | 'LOCAL';
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  tlvs?: Array<{ type: number; value: Buffer }>;
}): Buffer {
  const command = options.command ?? 'PROXY';
  let familyByte = 0x00;
  let addresses = Buffer.alloc(0);
  if (options.source && options.destination) {
    const { source, destination } = options;
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(source.port, 0);
    ports.writeUInt16BE(destination.port, 2);
    if (net.isIPv6(source.address)) {
      familyByte = 0x21;
      addresses = Buffer.concat([parseIPv6(source.address), parseIPv6(destination.address), ports]);
    } else {
      familyByte = 0x11;
      const ipv4 = (text: string): Buffer => Buffer.from(parseIPv4Text(text).split('.').map(Number));
      addresses = Buffer.concat([ipv4(source.address), ipv4(destination.address), ports]);
    }
  }
  const tlvBytes = (options.tlvs ?? []).map(({ type, value }) => {
    const head = Buffer.alloc(3);
    head[0] = type;
    head.writeUInt16BE(value.length, 1);
    return Buffer.concat([head, value]);
  });
  const body = Buffer.concat([addresses, ...tlvBytes]);
  const fixed = Buffer.alloc(4);
  fixed[0] = 0x20 | (command === 'LOCAL' ? 0 : 1);
  fixed[1] = familyByte;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

// ---------------------------------------------------------------------------
// A backend that expects a PROXY header, then serves TLS

export interface ProxyProtocolRecord {
  /** Exactly the bytes of the header (empty when the connection did not start with one). */
  raw: Buffer;
  header: ProxyHeaderInfo | null;
  /** Why the header could not be read, when it could not. */
  error: string | null;
}

export interface ProxyProtocolBackend extends TestBackend {
  /** One per accepted TCP connection, in order of arrival of their headers. */
  records: ProxyProtocolRecord[];
}

/**
 * A TCP server that reads the PROXY header each connection starts with,
 * records it, and then runs a TLS server on the bytes after it (writing the
 * `BackendIdentity` line, then echoing), like `startTlsBackend`. A connection
 * that does not start with a valid header is recorded and closed.
 */
export async function startProxyProtocolBackend(
  ca: CertificateAuthority,
  name: string,
  options: { dnsNames?: string[]; alpn?: string[]; host?: string } = {},
): Promise<ProxyProtocolBackend> {
  const { key, cert } = await ca.issue(name, options.dnsNames ?? ['*.example.com', 'example.com', '*.test', 'localhost']);
  const secureContext = tls.createSecureContext({ key, cert });
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true });
  const backend: ProxyProtocolBackend = {
    name,
    port: 0,
    address: '',
    accepted: 0,
    records: [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };

  const serveTls = (socket: net.Socket): void => {
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext,
      ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
    });
    sockets.add(secure);
    secure.on('close', () => sockets.delete(secure));
    secure.on('error', () => {});
    secure.on('secure', () => {
      backend.accepted++;
      const identity: BackendIdentity = {
        backend: name,
        sni: (secure as tls.TLSSocket & { servername?: string | false }).servername || null,
        alpn: secure.alpnProtocol || null,
      };
      secure.write(`${JSON.stringify(identity)}\n`);
      secure.pipe(secure);
    });
  };

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      let header: ProxyHeaderInfo | null;
      try {
        header = readProxyHeader(received);
      } catch (error) {
        socket.off('data', onData);
        backend.records.push({ raw: Buffer.alloc(0), header: null, error: (error as Error).message });
        socket.destroy();
        return;
      }
      if (header === null) return;
      socket.off('data', onData);
      socket.pause();
      backend.records.push({ raw: Buffer.from(received.subarray(0, header.length)), header, error: null });
      const rest = received.subarray(header.length);
      if (rest.length > 0) socket.unshift(rest);
      serveTls(socket);
    };
    socket.on('data', onData);
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  backend.port = (server.address() as net.AddressInfo).port;
  backend.address = host.includes(':') ? `[${host}]:${backend.port}` : `${host}:${backend.port}`;
  return backend;
}
