// `npx tsx bench/quic-initial.ts`: what reading a QUIC client's first flight
// costs, from datagrams to a routable ClientHello (decryptInitials,
// CryptoAssembler, readQuicClientHello), as the UDP listener runs it once per
// new flow. Also the cost of refusing a garbage long-header datagram, which is
// what a flood of them costs. Each shape cycles through more flights, each
// with its own connection ID, than the reader keeps keys for: every flight
// derives its keys, as a new flow does. Prints CPU µs per flight (the process's
// CPU time, median of rounds: steadier than wall time on a shared machine).
import { randomBytes } from 'node:crypto';
import { QuicError } from '../lib/errors.js';
import { decryptInitials } from '../lib/quic/initial.js';
import { QUIC_V1, QUIC_V2 } from '../lib/quic/packet.js';
import { buildClientHello } from '../test/helpers/client-hello-fixtures.js';
import { firstFlight, postQuantumClientHello, readFirstFlight } from '../test/helpers/quic-initial.js';

const WARMUP_FLIGHTS = 2_000;
const FLIGHTS_PER_ROUND = 10_000;
const ROUNDS = 7;

/** Distinct flights per shape: more than the reader's cache of recent keys (256). */
const VARIANTS = 1024;
const scid = Buffer.from('c0ffee00', 'hex');

function readFlight(datagrams: Buffer[]): number {
  const last = readFirstFlight(datagrams).results.at(-1);
  if (last?.kind !== 'complete') throw new Error('the flight did not complete');
  return last.hello.serverName?.length ?? 0;
}

function refuse(datagrams: Buffer[]): number {
  try {
    decryptInitials(datagrams[0]!);
  } catch (error) {
    if (error instanceof QuicError) return 1;
    throw error;
  }
  throw new Error('garbage was accepted');
}

function variants(build: (dcid: Buffer) => Buffer[]): Buffer[][] {
  return Array.from({ length: VARIANTS }, () => build(randomBytes(8)));
}

function garbage(dcid: Buffer): Buffer[] {
  return [Buffer.concat([Buffer.from([0xc3, 0, 0, 0, 1, 8]), dcid, Buffer.from([0, 0, 0x44, 0x9e]), randomBytes(1200 - 18)])];
}

const hello = buildClientHello({ serverName: 'app.example.com', alpn: ['h3'] });
const shapes: Array<{ name: string; flights: Buffer[][]; run: (datagrams: Buffer[]) => number }> = [
  { name: 'v1, 1 datagram (SNI + ALPN h3)', flights: variants((dcid) => firstFlight({ version: QUIC_V1, dcid, scid, hello })), run: readFlight },
  { name: 'v2, 1 datagram (SNI + ALPN h3)', flights: variants((dcid) => firstFlight({ version: QUIC_V2, dcid, scid, hello })), run: readFlight },
  {
    name: 'v1, 2 datagrams (post-quantum hello)',
    flights: variants((dcid) => firstFlight({ version: QUIC_V1, dcid, scid, hello: postQuantumClientHello('app.example.com') })),
    run: readFlight,
  },
  { name: 'garbage long header, refused', flights: variants(garbage), run: refuse },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

let checksum = 0;
const rows: string[][] = [['first flight', 'datagrams', 'CPU µs/flight']];
for (const { name, flights, run } of shapes) {
  for (let i = 0; i < WARMUP_FLIGHTS; i++) checksum += run(flights[i % VARIANTS]!);
  const perFlight: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.cpuUsage();
    for (let i = 0; i < FLIGHTS_PER_ROUND; i++) checksum += run(flights[i % VARIANTS]!);
    const cpu = process.cpuUsage(start);
    perFlight.push((cpu.user + cpu.system) / FLIGHTS_PER_ROUND);
  }
  rows.push([name, String(flights[0]!.length), median(perFlight).toFixed(1)]);
}

const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
for (const row of rows) console.log(row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '));
console.log(`node ${process.version}, ${ROUNDS} rounds of ${FLIGHTS_PER_ROUND} flights (checksum ${checksum})`);
