// `npx tsx bench/hello-parse.ts`: what parseClientHello costs per hello, on
// hellos captured from Node's TLS client (the parser runs once per connection,
// on the hot path). Prints, per hello:
// - CPU ns/parse: the process's CPU time per parse, median of rounds (steadier
//   than wall time on a shared machine), and wall time, fastest round;
// - heap bytes/parse: growth of the V8 heap over a small batch of parses,
//   median over batches that no collection interrupted.
import { performance } from 'node:perf_hooks';
import { parseClientHello } from '../lib/tls/client-hello.js';
import { captureClientHello } from '../test/helpers/client-hello-fixtures.js';

const WARMUP_PARSES = 50_000;
const PARSES_PER_ROUND = 200_000;
const ROUNDS = 9;
const PARSES_PER_BATCH = 200;
const BATCHES = 400;

const shapes: Array<{ name: string; options: Parameters<typeof captureClientHello>[0] }> = [
  { name: 'TLS 1.3, SNI, ALPN h2+http/1.1', options: { servername: 'app.example.com', ALPNProtocols: ['h2', 'http/1.1'] } },
  { name: 'TLS 1.2 max, SNI, ALPN http/1.1', options: { servername: 'api.example.org', ALPNProtocols: ['http/1.1'], maxVersion: 'TLSv1.2' } },
  { name: 'TLS 1.3, no SNI, no ALPN', options: {} },
  { name: 'TLS 1.3, 200-byte SNI', options: { servername: `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.example.com` } },
];

/** Parses `hello` `count` times; returns the summed lengths so the work cannot be optimised away. */
function parseMany(hello: Buffer, count: number): number {
  let total = 0;
  for (let i = 0; i < count; i++) {
    const result = parseClientHello(hello);
    if (result.status !== 'complete') throw new Error(`expected a complete hello, got ${JSON.stringify(result)}`);
    total += result.length;
  }
  return total;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

let checksum = 0;

/** Heap growth per parse; a batch during which a collection ran shows less growth (or a drop) and is left out. */
function heapBytesPerParse(hello: Buffer): number {
  const growth: number[] = [];
  for (let batch = 0; batch < BATCHES; batch++) {
    const before = process.memoryUsage().heapUsed;
    checksum += parseMany(hello, PARSES_PER_BATCH);
    const after = process.memoryUsage().heapUsed;
    if (after >= before) growth.push((after - before) / PARSES_PER_BATCH);
  }
  // The largest growths are the batches that ran uninterrupted; a collection mid-batch only shrinks a figure.
  growth.sort((a, b) => b - a);
  return median(growth.slice(0, Math.max(1, Math.floor(growth.length / 2))));
}

const rows: string[][] = [['hello', 'bytes', 'CPU ns/parse', 'wall ns/parse (min)', 'heap bytes/parse']];
for (const { name, options } of shapes) {
  const hello = await captureClientHello(options);
  checksum += parseMany(hello, WARMUP_PARSES);
  const cpuPerParse: number[] = [];
  const wallPerParse: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    checksum += parseMany(hello, PARSES_PER_ROUND);
    wallPerParse.push(((performance.now() - start) * 1e6) / PARSES_PER_ROUND);
    const cpu = process.cpuUsage(cpuStart);
    cpuPerParse.push(((cpu.user + cpu.system) * 1e3) / PARSES_PER_ROUND);
  }
  const bytes = heapBytesPerParse(hello);
  rows.push([name, String(hello.length), median(cpuPerParse).toFixed(0), Math.min(...wallPerParse).toFixed(0), bytes.toFixed(0)]);
}

const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
for (const row of rows) console.log(row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '));
console.log(`node ${process.version}, ${ROUNDS} rounds of ${PARSES_PER_ROUND} parses per hello (checksum ${checksum})`);
