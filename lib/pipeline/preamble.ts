import type net from 'node:net';
import { parseProxyHeader } from '../net/proxy-protocol.js';
import type { ProxiedAddresses } from '../net/proxy-protocol.js';
import type { Outcome } from './record.js';
import type { Stage } from './target.js';

/** What the client's first bytes ask for: all that matching looks at. */
export interface ClientRequest {
  /** The name asked for (the TLS SNI, the HTTP Host), lower-case without a trailing dot; null when none was given. */
  serverName: string | null;
  /** ALPN protocols offered (TLS); empty otherwise. */
  alpn: string[];
  /** The request target ("/path?query", HTTP); null otherwise. */
  path: string | null;
}

/** What a client sent before anything was decided: kept whole, to be replayed to whoever takes the connection. */
export interface Preamble {
  /** Every byte read so far: the PROXY header (if any), the client's first message, and whatever followed in the same reads. */
  bytes: Buffer;
  /** Where the client's own bytes start in `bytes` (the length of an incoming PROXY header). */
  offset: number;
  request: ClientRequest;
}

/** The result of parsing the client's first bytes so far. */
export type PreambleParse =
  | { status: 'incomplete'; need: number }
  /** Not what this listener speaks: ends the connection, after `answer` when there is one (an HTTP 400). */
  | { status: 'invalid'; outcome: Outcome; reason: string; answer: Buffer | null }
  | { status: 'complete'; request: ClientRequest };

/**
 * What a listener kind reads first (a TLS ClientHello, an HTTP request head):
 * how to parse it, and what a client that does not finish in time gets.
 */
export interface PreambleProtocol {
  /** Parses the client's bytes from their start (after any PROXY header); called again with at least `need` bytes. */
  parse(bytes: Buffer): PreambleParse;
  timeout: { outcome: Outcome; answer: Buffer | null };
  /** The reason recorded when the client leaves before its message is complete. */
  incomplete: string;
}

/** What the reader reports to (the connection). */
export interface PreambleHost {
  readonly client: net.Socket;
  /** A PROXY header was read; false when the client it names is refused (the host has finished the connection). */
  identifyClient(addresses: ProxiedAddresses | null, headerBytes: number): boolean;
  preambleRead(preamble: Preamble): void;
  finish(outcome: Outcome, reason: string | null): void;
  respondAndClose(bytes: Buffer, outcome: Outcome, reason: string | null): void;
}

const kReader = Symbol('preamble reader');
type ReadSocket = net.Socket & { [kReader]: PreambleReader | null };

/**
 * Reads a connection's preamble: the PROXY header where the listener accepts
 * one (then the connection learns who the client is), then the client's first
 * message in the listener's protocol, each parsed again only once enough bytes
 * have arrived. It only peeks: every byte stays in the preamble for the target
 * to replay. It knows nothing of routes; a client that sends something else,
 * too slowly, or leaves, ends the connection with the reason.
 */
export class PreambleReader implements Stage {
  private readonly connection: PreambleHost;
  private readonly protocol: PreambleProtocol;
  private readonly timer: NodeJS.Timeout;
  private chunks: Buffer[] = [];
  private received = 0;
  /** Bytes needed before parsing again. */
  private need = 1;
  private readingProxyHeader: boolean;
  private offset = 0;

  constructor(connection: PreambleHost, protocol: PreambleProtocol, proxyHeader: boolean, timeout: number) {
    this.connection = connection;
    this.protocol = protocol;
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
    this.readRequest(buffer);
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
    this.offset = result.length;
    this.need = result.length + 1;
    return this.connection.identifyClient(result.addresses, result.length) && buffer.length > result.length;
  }

  private readRequest(buffer: Buffer): void {
    const { offset } = this;
    const result = this.protocol.parse(offset === 0 ? buffer : buffer.subarray(offset));
    if (result.status === 'incomplete') {
      this.need = offset + result.need;
    } else if (result.status === 'invalid') {
      this.end(result.outcome, result.reason, result.answer);
    } else {
      this.stop();
      this.chunks = [];
      this.connection.preambleRead({ bytes: buffer, offset, request: result.request });
    }
  }

  onEnd(): void {
    this.connection.finish('client_closed', this.received > 0 ? this.protocol.incomplete : null);
  }

  onTimeout(): void {
    const { outcome, answer } = this.protocol.timeout;
    this.end(outcome, null, answer);
  }

  private end(outcome: Outcome, reason: string | null, answer: Buffer | null): void {
    if (answer === null) this.connection.finish(outcome, reason);
    else this.connection.respondAndClose(answer, outcome, reason);
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
