// A small authoritative DNS server over UDP on loopback, for tests that need a
// resolver they control: A and AAAA records with chosen TTLs, NXDOMAIN for
// every other name (SERVFAIL for names told to fail), and a count of the
// queries each name got.
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';
import { guard } from './wait.js';

const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

export interface DnsRecords {
  /** IPv4 and IPv6 addresses, answered to A and AAAA queries respectively. */
  addresses: string[];
  /** Seconds. */
  ttl: number;
  /** Seconds, for the AAAA records (default `ttl`). */
  ttl6: number;
}

export interface DnsQueryRecord {
  name: string;
  type: 'A' | 'AAAA' | number;
}

/** The question of a query: its name (lower-case, no trailing dot), type, and where the question section ends. */
function readQuestion(packet: Buffer): { name: string; type: number; end: number } | null {
  const labels: string[] = [];
  let offset = 12;
  for (;;) {
    const length = packet[offset];
    if (length === undefined || length > 63) return null;
    offset++;
    if (length === 0) break;
    labels.push(packet.toString('latin1', offset, offset + length));
    offset += length;
  }
  if (offset + 4 > packet.length) return null;
  return { name: labels.join('.').toLowerCase(), type: packet.readUInt16BE(offset), end: offset + 4 };
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const groups = (text: string): string[] => (text === '' ? [] : text.split(':'));
  const left = groups(head);
  const right = address.includes('::') ? groups(tail) : [];
  const all = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const bytes = Buffer.alloc(16);
  all.forEach((group, index) => bytes.writeUInt16BE(Number.parseInt(group, 16), index * 2));
  return bytes;
}

/** The answer to a query: the records of its type (none: NODATA), or NXDOMAIN for a name it does not know. */
function answer(query: Buffer, question: { name: string; type: number; end: number }, records: DnsRecords | 'fail' | undefined): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  // QR, opcode 0, AA, RD copied, RA; rcode.
  const recursionDesired = query[2]! & 0x01;
  header[2] = 0x84 | recursionDesired;
  header[3] = 0x80 | (records === undefined ? RCODE_NXDOMAIN : records === 'fail' ? RCODE_SERVFAIL : 0);
  header.writeUInt16BE(1, 4);
  const rdatas =
    records === undefined || records === 'fail'
      ? []
      : records.addresses
          .filter((address) => (question.type === TYPE_AAAA ? isIPv6(address) : question.type === TYPE_A && !isIPv6(address)))
          .map((address) => (isIPv6(address) ? ipv6Bytes(address) : ipv4Bytes(address)));
  header.writeUInt16BE(rdatas.length, 6);
  const answers = rdatas.map((rdata) => {
    const record = Buffer.alloc(12);
    // A pointer to the name in the question (offset 12).
    record.writeUInt16BE(0xc00c, 0);
    record.writeUInt16BE(question.type, 2);
    record.writeUInt16BE(CLASS_IN, 4);
    const { ttl, ttl6 } = records as DnsRecords;
    record.writeUInt32BE(question.type === TYPE_AAAA ? ttl6 : ttl, 6);
    record.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([record, rdata]);
  });
  return Buffer.concat([header, query.subarray(12, question.end), ...answers]);
}

export class DnsServer extends EventEmitter {
  readonly queries: DnsQueryRecord[] = [];
  private readonly records = new Map<string, DnsRecords | 'fail'>();
  private readonly socket: dgram.Socket;

  private constructor(socket: dgram.Socket) {
    super();
    this.socket = socket;
    socket.on('message', (packet, peer) => this.received(packet, peer));
  }

  /** Starts a server on 127.0.0.1, port chosen by the system. */
  static async start(): Promise<DnsServer> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve());
    });
    return new DnsServer(socket);
  }

  /** "127.0.0.1:port", as `resolvers` and node:dns `setServers` take it. */
  get address(): string {
    const { address, port } = this.socket.address();
    return `${address}:${port}`;
  }

  /** Answers `name` with `addresses` from now on (replacing what it answered before); TTLs in seconds. */
  set(name: string, addresses: string[], ttl: number, ttl6 = ttl): void {
    this.records.set(name.toLowerCase(), { addresses, ttl, ttl6 });
  }

  /** Answers `name` with SERVFAIL from now on: a server that cannot answer for it. */
  fail(name: string): void {
    this.records.set(name.toLowerCase(), 'fail');
  }

  /** Queries of `name` (of `type`, default A) so far. */
  count(name: string, type: 'A' | 'AAAA' = 'A'): number {
    return this.queries.filter((query) => query.name === name && query.type === type).length;
  }

  /** Resolves once `name` has had `count` queries of `type` (A by default). */
  async waitForQueries(name: string, count: number, type: 'A' | 'AAAA' = 'A', timeoutMs = 30_000): Promise<void> {
    if (this.count(name, type) >= count) return;
    await guard(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (this.count(name, type) < count) return;
          this.off('query', check);
          resolve();
        };
        this.on('query', check);
      }),
      timeoutMs,
      `${count} ${type} queries of ${name} (got ${this.count(name, type)})`,
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private received(packet: Buffer, peer: dgram.RemoteInfo): void {
    const question = packet.length >= 12 ? readQuestion(packet) : null;
    if (question === null) return;
    const type = question.type === TYPE_A ? 'A' : question.type === TYPE_AAAA ? 'AAAA' : question.type;
    this.queries.push({ name: question.name, type });
    this.socket.send(answer(packet, question, this.records.get(question.name)), peer.port, peer.address);
    this.emit('query');
  }
}
