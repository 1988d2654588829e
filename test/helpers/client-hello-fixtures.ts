// Builders for TLS ClientHello bytes, hand-crafted or captured from Node's own
// TLS client, for the parser's unit tests and for end-to-end tests.
import net from 'node:net';
import tls from 'node:tls';

export const HANDSHAKE_TYPE_CLIENT_HELLO = 1;
export const CONTENT_TYPE_HANDSHAKE = 22;
export const EXTENSION_SERVER_NAME = 0;
export const EXTENSION_ALPN = 16;
export const EXTENSION_PADDING = 21;
export const MAX_FRAGMENT = 16384;

export function uint16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

export function uint24(value: number): Buffer {
  return Buffer.from([(value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff]);
}

/** A vector with a 1-byte length prefix. */
export function vector8(...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([body.length]), body]);
}

/** A vector with a 2-byte length prefix. */
export function vector16(...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([uint16(body.length), body]);
}

export function extension(type: number, data: Uint8Array): Buffer {
  return Buffer.concat([uint16(type), vector16(data)]);
}

/** A server_name extension with one host_name entry; a string is encoded latin1. */
export function serverNameExtension(hostName: string | Uint8Array): Buffer {
  const name = typeof hostName === 'string' ? Buffer.from(hostName, 'latin1') : hostName;
  return extension(EXTENSION_SERVER_NAME, vector16(Buffer.from([0]), vector16(name)));
}

export function alpnExtension(protocols: string[]): Buffer {
  const list = protocols.map((protocol) => vector8(Buffer.from(protocol, 'latin1')));
  return extension(EXTENSION_ALPN, vector16(...list));
}

export function paddingExtension(length: number): Buffer {
  return extension(EXTENSION_PADDING, Buffer.alloc(length));
}

/** A handshake message: type(1), length(3), body. */
export function handshakeMessage(type: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([type]), uint24(body.length), body]);
}

export interface ClientHelloOptions {
  serverName?: string;
  alpn?: string[];
  /** Raw extension bytes (see `extension`) appended after SNI and ALPN. */
  extraExtensionBytes?: Uint8Array;
  legacyVersion?: number;
  sessionId?: Uint8Array;
  /** Raw cipher_suites contents (without the length prefix). */
  cipherSuites?: Uint8Array;
  /** Raw compression_methods contents (without the length prefix). */
  compressionMethods?: Uint8Array;
  /** Leave out the extensions block altogether, as pre-TLS 1.2 clients may. */
  omitExtensions?: boolean;
}

export function clientHelloBody(options: ClientHelloOptions = {}): Buffer {
  const parts: Uint8Array[] = [
    uint16(options.legacyVersion ?? 0x0303),
    Buffer.alloc(32, 0xab), // random
    vector8(options.sessionId ?? Buffer.alloc(32, 0xcd)),
    vector16(options.cipherSuites ?? Buffer.from([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f])),
    vector8(options.compressionMethods ?? Buffer.from([0])),
  ];
  if (!options.omitExtensions) {
    const extensions: Uint8Array[] = [];
    if (options.serverName !== undefined) extensions.push(serverNameExtension(options.serverName));
    if (options.alpn !== undefined) extensions.push(alpnExtension(options.alpn));
    if (options.extraExtensionBytes !== undefined) extensions.push(options.extraExtensionBytes);
    parts.push(vector16(...extensions));
  }
  return Buffer.concat(parts);
}

/** A complete ClientHello handshake message (4-byte header included, no record layer). */
export function buildClientHello(options: ClientHelloOptions = {}): Buffer {
  return handshakeMessage(HANDSHAKE_TYPE_CLIENT_HELLO, clientHelloBody(options));
}

export function record(contentType: number, fragment: Uint8Array, recordVersion = 0x0301): Buffer {
  return Buffer.concat([Buffer.from([contentType]), uint16(recordVersion), uint16(fragment.length), fragment]);
}

/**
 * Splits a handshake message into handshake records. With a list of sizes the
 * fragments take them in order, the last size repeating as needed; with a
 * number every fragment has at most that size.
 */
export function wrapInRecords(handshake: Uint8Array, fragmentSizes: number[] | number = MAX_FRAGMENT, recordVersion = 0x0301): Buffer {
  const sizes = typeof fragmentSizes === 'number' ? [fragmentSizes] : fragmentSizes;
  if (sizes.length === 0 || sizes.some((size) => size < 1)) throw new Error('fragment sizes must be >= 1');
  const records: Buffer[] = [];
  for (let offset = 0, i = 0; offset < handshake.length; i++) {
    const size = sizes[Math.min(i, sizes.length - 1)]!;
    const fragment = handshake.subarray(offset, offset + size);
    records.push(record(CONTENT_TYPE_HANDSHAKE, fragment, recordVersion));
    offset += fragment.length;
  }
  return Buffer.concat(records);
}

/** The handshake message carried by `records` (their fragments joined; record headers not checked). */
export function unwrapRecords(records: Uint8Array): Buffer {
  const data = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
  const fragments: Buffer[] = [];
  for (let offset = 0; offset + 5 <= data.length; ) {
    const end = offset + 5 + data.readUInt16BE(offset + 3);
    fragments.push(data.subarray(offset + 5, end));
    offset = end;
  }
  return Buffer.concat(fragments);
}

export interface RawExtension {
  type: number;
  data: Buffer;
}

/** Where a ClientHello message's extensions block starts (its 2-byte length), or the message length when it has none. */
function extensionsOffset(message: Buffer): number {
  let offset = 4 + 2 + 32; // handshake header, legacy_version, random
  offset += 1 + message[offset]!; // session_id
  offset += 2 + message.readUInt16BE(offset); // cipher_suites
  offset += 1 + message[offset]!; // compression_methods
  return offset;
}

/** The extensions of a well-formed ClientHello handshake message, in order. */
export function helloExtensions(message: Uint8Array): RawExtension[] {
  const buffer = Buffer.from(message);
  const start = extensionsOffset(buffer);
  const extensions: RawExtension[] = [];
  if (start === buffer.length) return extensions;
  const end = start + 2 + buffer.readUInt16BE(start);
  for (let offset = start + 2; offset < end; ) {
    const length = buffer.readUInt16BE(offset + 2);
    extensions.push({ type: buffer.readUInt16BE(offset), data: buffer.subarray(offset + 4, offset + 4 + length) });
    offset += 4 + length;
  }
  return extensions;
}

/** The ClientHello handshake message `message` with its extensions replaced by `extensions` (everything before them kept). */
export function withHelloExtensions(message: Uint8Array, extensions: RawExtension[]): Buffer {
  const buffer = Buffer.from(message);
  const body = Buffer.concat([buffer.subarray(4, extensionsOffset(buffer)), vector16(...extensions.map(({ type, data }) => extension(type, data)))]);
  return handshakeMessage(HANDSHAKE_TYPE_CLIENT_HELLO, body);
}

/**
 * Length of the record-layer bytes carrying the first handshake message in
 * `data`, or 0 while incomplete. Deliberately independent of the parser under test.
 */
function handshakeRecordsLength(data: Buffer): number {
  const fragments: Buffer[] = [];
  for (let offset = 0; offset + 5 <= data.length; ) {
    const end = offset + 5 + data.readUInt16BE(offset + 3);
    if (end > data.length) return 0;
    fragments.push(data.subarray(offset + 5, end));
    const message = Buffer.concat(fragments);
    if (message.length >= 4 && message.length >= 4 + message.readUIntBE(1, 3)) return end;
    offset = end;
  }
  return 0;
}

/**
 * Record-layer bytes of the ClientHello that Node's TLS client sends when
 * connecting with `options` (give `servername` for SNI, `ALPNProtocols` for ALPN).
 */
export async function captureClientHello(options: tls.ConnectionOptions = {}): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    const captured = new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (socket) => {
        let received = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          received = Buffer.concat([received, chunk]);
          const length = handshakeRecordsLength(received);
          if (length > 0) {
            resolve(received.subarray(0, length));
            socket.destroy();
          }
        });
        socket.on('error', reject);
        socket.on('close', () => reject(new Error('connection closed before a full ClientHello')));
      });
    });
    const client = tls.connect({ ...options, host: '127.0.0.1', port });
    client.on('error', () => {}); // the capturing server hangs up mid-handshake
    try {
      return await captured;
    } finally {
      client.destroy();
    }
  } finally {
    server.close();
  }
}
