// `npx tsx bench/hello-parse.ts`: what parseClientHello costs per hello, on
// hellos captured from Node's TLS client (the parser runs once per connection,
// on the hot path). Prints nanoseconds per parse, as the process's CPU time
// (median of rounds: steadier than wall time on a shared machine) and as wall
// time (fastest round), and the young-generation collections per million
// parses, a proxy for what a parse allocates.
import { type PerformanceEntry, PerformanceObserver, performance } from 'node:perf_hooks';
import { parseClientHello } from '../lib/tls/client-hello.js';
import { captureClientHello } from '../test/helpers/client-hello-fixtures.js';

const WARMUP_PARSES = 50_000;
const PARSES_PER_ROUND = 200_000;
const ROUNDS = 9;

const shapes: Array<{ name: string; options: Parameters<typeof captureClientHello>[0] }> = [
  { name: 'TLS 1.3, SNI, ALPN h2+http/1.1', options: { servername: 'app.example.com', ALPNProtocols: ['h2', 'http/1.1'] } },
  { name: 'TLS 1.2 max, SNI, ALPN http/1.1', options: { servername: 'api.example.org', ALPNProtocols: ['http/1.1'], maxVersion: 'TLSv1.2' } },
  { name: 'TLS 1.3, no SNI, no ALPN', options: {} },
  { name: 'TLS 1.3, 200-byte SNI', options: { servername: `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.example.com` } },
];

let scavenges = 0;
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
    // kind 1 is NODE_PERFORMANCE_GC_MINOR: a scavenge of the young generation.
    if (entry.detail?.kind === 1) scavenges++;
  }
});
gcObserver.observe({ entryTypes: ['gc'] });

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

/** Lets the observer's queued gc entries arrive. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 20));
}

const rows: string[][] = [['hello', 'bytes', 'CPU ns/parse', 'wall ns/parse (min)', 'scavenges/1M parses']];
let checksum = 0;
for (const { name, options } of shapes) {
  const hello = await captureClientHello(options);
  checksum += parseMany(hello, WARMUP_PARSES);
  const cpuPerParse: number[] = [];
  const wallPerParse: number[] = [];
  await settle();
  const scavengesBefore = scavenges;
  for (let round = 0; round < ROUNDS; round++) {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    checksum += parseMany(hello, PARSES_PER_ROUND);
    wallPerParse.push(((performance.now() - start) * 1e6) / PARSES_PER_ROUND);
    const cpu = process.cpuUsage(cpuStart);
    cpuPerParse.push(((cpu.user + cpu.system) * 1e3) / PARSES_PER_ROUND);
  }
  await settle();
  const perMillion = ((scavenges - scavengesBefore) * 1e6) / (ROUNDS * PARSES_PER_ROUND);
  rows.push([name, String(hello.length), median(cpuPerParse).toFixed(0), Math.min(...wallPerParse).toFixed(0), perMillion.toFixed(1)]);
}
gcObserver.disconnect();

const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
for (const row of rows) console.log(row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '));
console.log(`node ${process.version}, ${ROUNDS} rounds of ${PARSES_PER_ROUND} parses per hello (checksum ${checksum})`);
