import type net from 'node:net';
import { parseProxyHeader } from '../net/proxy-protocol.js';
import type { ProxiedAddresses } from '../net/proxy-protocol.js';
import { type ClientHello, parseClientHello } from '../tls/client-hello.js';
import type { Outcome } from './record.js';
import type { Stage } from './target.js';

/** What a client sent before anything was decided: kept whole, to be replayed to whoever takes the connection. */
export interface Preamble {
  /** Every byte read so far: the PROXY header (if any), the ClientHello, and whatever followed in the same reads. */
  bytes: Buffer;
  /** Where the ClientHello starts in `bytes` (the length of an incoming PROXY header). */
  helloOffset: number;
  hello: ClientHello;
}

/** What the reader reports to (the connection). */
export interface PreambleHost {
  readonly client: net.Socket;
  /** A PROXY header was read; false when the client it names is refused (the host has finished the connection). */
  identifyClient(addresses: ProxiedAddresses | null, headerBytes: number): boolean;
  preambleRead(preamble: Preamble): void;
  finish(outcome: Outcome, reason: string | null): void;
}

const kReader = Symbol('preamble reader');
type ReadSocket = net.Socket & { [kReader]: PreambleReader | null };

/**
 * Reads a connection's preamble: the PROXY header where the listener accepts
 * one (then the connection learns who the client is), then the TLS
 * ClientHello, each parsed again only once enough bytes have arrived. It only
 * peeks: every byte stays in the preamble for the target to replay. It knows
 * nothing of routes; a client that sends something else, too slowly, or
 * leaves, ends the connection with the reason.
 */
export class PreambleReader implements Stage {
  private readonly connection: PreambleHost;
  private readonly timer: NodeJS.Timeout;
  private chunks: Buffer[] = [];
  private received = 0;
  /** Bytes needed before parsing again. */
  private need = 1;
  private readingProxyHeader: boolean;
  private helloOffset = 0;

  constructor(connection: PreambleHost, proxyHeader: boolean, timeout: number) {
    this.connection = connection;
    this.readingProxyHeader = proxyHeader;
    this.timer = setTimeout(readerOnTimeout, timeout, this);
    const { client } = connection;
    (client as ReadSocket)[kReader] = this;
    client.on('data', readerOnData);
    client.on('end', readerOnEnd);
    client.resume();
  }

  stop(): void {
    clearTimeout(this.timer);
    const { client } = this.connection;
    client.off('data', readerOnData);
    client.off('end', readerOnEnd);
    (client as ReadSocket)[kReader] = null;
  }

  onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.received < this.need) return;
    const buffer = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.received);
    this.chunks = [buffer];
    if (this.readingProxyHeader && !this.readProxyHeader(buffer)) return;
    this.readHello(buffer);
  }

  /** True once the header is read, the client admitted, and bytes of the hello are there. */
  private readProxyHeader(buffer: Buffer): boolean {
    const result = parseProxyHeader(buffer);
    if (result.status === 'incomplete') {
      this.need = result.need;
      return false;
    }
    if (result.status === 'invalid') {
      this.connection.finish('bad_proxy_header', result.reason);
      return false;
    }
    this.readingProxyHeader = false;
    this.helloOffset = result.length;
    this.need = result.length + 1;
    return this.connection.identifyClient(result.addresses, result.length) && buffer.length > result.length;
  }

  private readHello(buffer: Buffer): void {
    const { helloOffset } = this;
    const result = parseClientHello(helloOffset === 0 ? buffer : buffer.subarray(helloOffset));
    if (result.status === 'incomplete') {
      this.need = helloOffset + result.need;
    } else if (result.status === 'invalid') {
      this.connection.finish('bad_hello', result.reason);
    } else {
      this.stop();
      this.chunks = [];
      this.connection.preambleRead({ bytes: buffer, helloOffset, hello: result.hello });
    }
  }

  onEnd(): void {
    this.connection.finish('client_closed', this.received > 0 ? 'incomplete_hello' : null);
  }

  onTimeout(): void {
    this.connection.finish('hello_timeout', null);
  }
}

function readerOnData(this: ReadSocket, chunk: Buffer): void {
  this[kReader]?.onData(chunk);
}

function readerOnEnd(this: ReadSocket): void {
  this[kReader]?.onEnd();
}

function readerOnTimeout(reader: PreambleReader): void {
  reader.onTimeout();
}
