// `npm run bench`: what sni-passthrough costs per connection, per byte, per
// request and per idle socket, side by side in one run with HAProxy, nginx
// (when installed) and a naive Node relay. Prints a markdown table on stdout
// (progress goes to stderr) and writes every sample as JSON. Linux only (/proc).
// See bench/README.md for what each row measures and how to read it.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { projectRoot } from '../test/helpers/proxy-process.js';
import { type Contender, findProgram, debianProgram, sourceRevision, startHaproxy, startNginx, startRelay, startSniPassthrough } from './contenders.js';
import { startFixture } from './fixture.js';
import { figure, figuresAsMarkdown, markdownTable, ratio } from './markdown.js';
import { parseOptions } from './options.js';
import { bulk, churn, type Load, openTls, SMALL_MESSAGE, sleep, tlsKeepAlive } from './load.js';
import { cpuSeconds, machineSeconds, openFileLimit, rssKiB } from './proc.js';
import { measureRouteMatch, type RouteMatchScale } from './route-match.js';

const usage = `usage: npm run bench [-- [--json FILE] [--skip-config-scale]]
  --json FILE          also write every figure and sample there (default: a new file under the OS temp dir, printed at the end)
  --skip-config-scale  leave out bench/config-scale.ts (big config files: it can take minutes)`;
const options = parseOptions({ json: { type: 'string' }, 'skip-config-scale': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, usage);

const ROUNDS = 3;
const CONCURRENCY = 50;
const WARM_UP_MS = 300;
/** Time a load runs before its measuring window opens (connections set up, flows at speed). */
const RAMP_MS = 150;
const CHURN_MS = 1000;
const BULK_MS = 600;
const KEEP_ALIVE_MS = 1000;
const KEEP_ALIVE_CONNECTIONS = 16;
const IDLE_TARGET = 5000;
/** Time allowed to open a contender's idle connections: on a busy machine the handshakes are the slowest part. */
const IDLE_OPEN_MS = 20_000;
/** Descriptors a process needs besides two per relayed connection. */
const SPARE_DESCRIPTORS = 300;
/** Share of the machine other processes may use before the report calls the figures disturbed. */
const BUSY_SHARE = 0.1;
const GiB = 1024 ** 3;

const median = (values: number[]): number => {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[(sorted.length - 1) >> 1]!;
};
const mean = (values: number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;

// ---- setup: certificates, a captured hello, the backend, the contenders
const benchStarted = performance.now();
const progress = (text: string): void => void process.stderr.write(`  [${Math.round((performance.now() - benchStarted) / 1000)} s] ${text}\n`);
const date = new Date();
const workDirectory = mkdtempSync(join(os.tmpdir(), 'sni-passthrough-bench-'));
process.on('exit', () => rmSync(workDirectory, { recursive: true, force: true }));
const jsonPath = options.json ?? join(os.tmpdir(), `sni-passthrough-bench-${date.toISOString().replace(/[:.]/g, '-')}.json`);
const notes: string[] = [];

const { backend, hello, tlsOptions } = await startFixture();

progress('starting the contenders');
const contenders: Contender[] = [];
const versions: Record<string, string> = { node: process.version, kernel: os.release() };
const haproxy = debianProgram('haproxy', 'haproxy');
if ('path' in haproxy) {
  if (haproxy.note) notes.push(haproxy.note);
  try {
    contenders.push(await startHaproxy(workDirectory, haproxy.path, backend.port));
  } catch (error) {
    notes.push(`HAProxy did not start, so its column is missing: ${(error as Error).message}`);
  }
} else notes.push(`${haproxy.reason}: its column and the ratios against it are missing.`);
const nginx = findProgram('nginx');
if (nginx) {
  try {
    contenders.push(await startNginx(workDirectory, nginx, backend.port));
  } catch (error) {
    notes.push(`nginx is installed but its column is missing: ${(error as Error).message}`);
  }
}
contenders.push(await startRelay(workDirectory, backend.port));
contenders.push(await startSniPassthrough(workDirectory, backend.port, 'info'));
contenders.push(await startSniPassthrough(workDirectory, backend.port, 'warn'));
// Worker processes share the listening socket: what they add per connection and per byte shows beside one process.
contenders.push(await startSniPassthrough(workDirectory, backend.port, 'warn', [], 2));
for (const contender of contenders) {
  const version = /^(HAProxy|nginx) (\S+)/.exec(contender.label);
  if (version) versions[version[1]!.toLowerCase()] = version[2]!.replace(/,$/, '');
}
versions['sni-passthrough'] = `${JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')).version} (${sourceRevision()})`;
const byKey = (key: string): Contender | undefined => contenders.find((contender) => contender.key === key);

// ---- measuring windows
/** One measuring window of one contender under one load. */
interface Sample {
  contender: string;
  round: number;
  /** Work done in the window: connections, bytes or requests. */
  units: number;
  seconds: number;
  /** CPU seconds of the contender's process tree. */
  cpu: number;
  /** CPU seconds of the bench process (clients and backend). */
  generator: number;
  /** CPU seconds of every other process on the machine (idle contenders included). */
  others: number;
  /** CPU seconds the machine had (wall time × cores). */
  capacity: number;
  errors: number;
}

function reading(load: Load) {
  return {
    at: performance.now(),
    count: load.count(),
    cpu: new Map(contenders.map((contender) => [contender.key, cpuSeconds(contender.pids)])),
    generator: process.cpuUsage(),
    machine: machineSeconds(),
  };
}

async function measureWindow(contender: Contender, round: number, load: Load, windowMs: number): Promise<Sample> {
  await sleep(RAMP_MS);
  const before = reading(load);
  await sleep(windowMs);
  const after = reading(load);
  const { errors } = await load.stop();
  const generatorUsage = process.cpuUsage(before.generator);
  const generator = (generatorUsage.user + generatorUsage.system) / 1e6;
  const cpu = after.cpu.get(contender.key)! - before.cpu.get(contender.key)!;
  return {
    contender: contender.key,
    round,
    units: after.count - before.count,
    seconds: (after.at - before.at) / 1000,
    cpu,
    generator,
    others: Math.max(0, after.machine.busy - before.machine.busy - generator - cpu),
    capacity: after.machine.total - before.machine.total,
    errors,
  };
}

/**
 * Runs `start`'s load on every contender: a short warm-up each, then ROUNDS
 * rounds, each visiting every contender in an order that rotates from round
 * to round, so all of them see the same conditions.
 */
async function compare(label: string, start: (contender: Contender) => Load | Promise<Load>, windowMs: number): Promise<Sample[]> {
  progress(label);
  for (const contender of contenders) {
    const load = await start(contender);
    await sleep(WARM_UP_MS);
    await load.stop();
  }
  const samples: Sample[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let step = 0; step < contenders.length; step++) {
      const contender = contenders[(round + step) % contenders.length]!;
      samples.push(await measureWindow(contender, round, await start(contender), windowMs));
    }
  }
  return samples;
}

/** Median over the rounds of the contender's CPU seconds per unit of work. */
const cpuPerUnit = (samples: Sample[], key: string): number =>
  median(samples.filter((sample) => sample.contender === key).map((sample) => (sample.units > 0 ? sample.cpu / sample.units : Number.NaN)));
const ratePerSecond = (samples: Sample[], key: string): number =>
  median(samples.filter((sample) => sample.contender === key).map((sample) => sample.units / sample.seconds));

// ---- RSS at start: every contender started, nothing sent yet. Meanwhile, how busy is the machine?
const quietBefore = machineSeconds();
await sleep(1000);
const quiet = machineSeconds();
const busyAtStart = (quiet.busy - quietBefore.busy) / (quiet.total - quietBefore.total);
if (busyAtStart > BUSY_SHARE) progress(`the machine is busy: ${Math.round(busyAtStart * 100)}% used by other processes; the figures will be disturbed`);
const startRss = new Map(contenders.map((contender) => [contender.key, rssKiB(contender.pids)]));

// ---- RSS per idle TLS connection: one contender at a time, lightly warmed up first
const idleCount = Math.min(IDLE_TARGET, Math.floor((openFileLimit() - SPARE_DESCRIPTORS) / 2));
if (idleCount < IDLE_TARGET) {
  notes.push(
    `Idle connections: ${idleCount} instead of ${IDLE_TARGET}: each needs two descriptors in the bench (client and backend) and two in the relay, and the open-file limit here is ${openFileLimit()} (raise it with ulimit -n).`,
  );
}
const idle = new Map<string, { opened: number; errors: number; beforeKiB: number; afterKiB: number }>();
progress(`RSS with ${idleCount} idle TLS connections`);
for (const contender of contenders) {
  const warm = churn(contender.port, hello, CONCURRENCY);
  await sleep(WARM_UP_MS);
  await warm.stop();
  const warmTls = await openTls(contender.port, tlsOptions, 100, 100);
  for (const socket of warmTls.sockets) socket.destroy();
  await sleep(500);
  const beforeKiB = rssKiB(contender.pids);
  const handshakes = backend.handshakes;
  const { sockets, errors } = await openTls(contender.port, tlsOptions, idleCount, 100, IDLE_OPEN_MS);
  for (const started = performance.now(); backend.handshakes - handshakes < sockets.length && performance.now() - started < 10_000; ) await sleep(20);
  await sleep(500);
  idle.set(contender.key, { opened: sockets.length, errors, beforeKiB, afterKiB: rssKiB(contender.pids) });
  for (const socket of sockets) socket.destroy();
  await sleep(300);
}

// ---- CPU rows
const churnSamples = await compare('CPU per connection (churn)', (contender) => churn(contender.port, hello, CONCURRENCY), CHURN_MS);
// How evenly the kernel spreads connections over two workers: each worker's CPU over churn windows (the primary takes none).
progress('2 workers: CPU of each under churn');
const workersContender = byKey('sni-warn-2w')!;
const workerPids = workersContender.pids.filter((pid) => pid !== workersContender.pid);
const workerCpu = workerPids.map(() => 0);
for (let round = 0; round < ROUNDS; round++) {
  const load = churn(workersContender.port, hello, CONCURRENCY);
  await sleep(RAMP_MS);
  const before = workerPids.map((pid) => cpuSeconds([pid]));
  await sleep(CHURN_MS);
  workerPids.forEach((pid, index) => (workerCpu[index]! += cpuSeconds([pid]) - before[index]!));
  await load.stop();
}
const workerSpread = Math.max(...workerCpu) / Math.min(...workerCpu);
const transfers = [
  { direction: 'upload', streams: 1 },
  { direction: 'upload', streams: 4 },
  { direction: 'download', streams: 1 },
  { direction: 'download', streams: 4 },
] as const;
const bulkSamples: Array<{ name: string; samples: Sample[] }> = [];
for (const { direction, streams } of transfers) {
  const name = `${direction}, ${streams} stream${streams > 1 ? 's' : ''}`;
  bulkSamples.push({ name, samples: await compare(`CPU per GiB (${name})`, (contender) => bulk(contender.port, hello, backend, direction, streams), BULK_MS) });
}
const keepAliveSamples = await compare(
  'TLS keep-alive CPU per request',
  (contender) => tlsKeepAlive(contender.port, tlsOptions, KEEP_ALIVE_CONNECTIONS),
  KEEP_ALIVE_MS,
);
for (const contender of contenders) await contender.stop();
await backend.close();

// ---- route lookup at scale, and the config's own scale figures where bench/config-scale.ts exists
progress('route lookup with 100,000 routes');
const routeMatch: RouteMatchScale = measureRouteMatch();
let configScale: unknown = null;
const configScalePath = fileURLToPath(new URL('./config-scale.ts', import.meta.url));
if (existsSync(configScalePath) && !options['skip-config-scale']) {
  progress('config at scale (bench/config-scale.ts)');
  try {
    const module = (await import(pathToFileURL(configScalePath).href)) as { measureConfigScale(): unknown };
    configScale = await module.measureConfigScale();
  } catch (error) {
    notes.push(`bench/config-scale.ts failed: ${(error as Error).message}`);
  }
}

// ---- the table
interface TableRow {
  key: string;
  label: string;
  unit: string;
  values: Map<string, number>;
  /** Issue 10's target for sni-passthrough, as text and as the largest value that meets it (NaN: unknown). */
  target: { text: string; limit: number };
}

const perContender = (value: (key: string) => number): Map<string, number> => new Map(contenders.map((contender) => [contender.key, value(contender.key)]));
const relayValue = (values: Map<string, number>): number => values.get('relay') ?? Number.NaN;

const churnValues = perContender((key) => cpuPerUnit(churnSamples, key) * 1e6);
const bulkValues = perContender((key) => mean(bulkSamples.map(({ samples }) => cpuPerUnit(samples, key) * GiB * 1e3)));
const keepAliveValues = perContender((key) => cpuPerUnit(keepAliveSamples, key) * 1e6);
const idleValues = perContender((key) => {
  const result = idle.get(key)!;
  return result.opened > 0 ? (result.afterKiB - result.beforeKiB) / result.opened : Number.NaN;
});
const startValues = perContender((key) => startRss.get(key)! / 1024);
const fewestIdle = Math.min(...[...idle.values()].map((result) => result.opened));
const idleOpened = fewestIdle < idleCount ? `${fewestIdle.toLocaleString('en-US')} to ${idleCount.toLocaleString('en-US')}` : idleCount.toLocaleString('en-US');
if (fewestIdle < idleCount) {
  notes.push(
    `Idle connections: not every contender had all ${idleCount} open within ${IDLE_OPEN_MS / 1000} s (see the details); the figure is per connection all the same, but noisier.`,
  );
}
const rows: TableRow[] = [
  {
    key: 'cpuPerConnection',
    label: `CPU µs per connection (hello → ${SMALL_MESSAGE} B reply → close, ${CONCURRENCY} at a time)`,
    unit: 'µs',
    values: churnValues,
    target: { text: '≤ relay', limit: relayValue(churnValues) },
  },
  {
    key: 'cpuPerGiB',
    label: 'CPU ms per GiB (upload and download, 1 and 4 streams)',
    unit: 'ms',
    values: bulkValues,
    target: { text: '≤ 1.1× relay', limit: 1.1 * relayValue(bulkValues) },
  },
  {
    key: 'tlsKeepAliveCpuPerRequest',
    label: `TLS keep-alive through the proxy: CPU µs per request (${KEEP_ALIVE_CONNECTIONS} connections, ${SMALL_MESSAGE} B each way)`,
    unit: 'µs',
    values: keepAliveValues,
    target: { text: '≤ relay', limit: relayValue(keepAliveValues) },
  },
  {
    key: 'rssPerIdleTlsConnection',
    label: `RSS KiB per idle TLS connection (${idleOpened} open after their handshakes)`,
    unit: 'KiB',
    values: idleValues,
    target: { text: '≤ 8 KiB', limit: 8 },
  },
  { key: 'rssAtStart', label: 'RSS MiB at start', unit: 'MiB', values: startValues, target: { text: '≤ 45 MiB', limit: 45 } },
];

const haproxyPresent = byKey('haproxy') !== undefined;
const sniKeys = ['sni-info', 'sni-warn'];
const ratioColumns: Array<{ header: string; key: string; base: string }> = [
  { header: 'info ÷ relay', key: 'sni-info', base: 'relay' },
  { header: 'warn ÷ relay', key: 'sni-warn', base: 'relay' },
  ...(haproxyPresent
    ? [
        { header: 'info ÷ HAProxy', key: 'sni-info', base: 'haproxy' },
        { header: 'warn ÷ HAProxy', key: 'sni-warn', base: 'haproxy' },
      ]
    : []),
  // Issue 12: ≤ 1.05 for CPU per connection and per GiB (no cost added per connection by the workers).
  { header: '2 workers ÷ warn', key: 'sni-warn-2w', base: 'sni-warn' },
];
const verdict = (row: TableRow): string => {
  const checks = sniKeys.map((key) => {
    const value = row.values.get(key);
    if (value === undefined || !Number.isFinite(value) || !Number.isFinite(row.target.limit)) return '?';
    return value <= row.target.limit ? 'met' : 'missed';
  });
  return `${row.target.text}: ${checks.join(', ')}`;
};
const mainTable = markdownTable(
  ['', ...contenders.map((contender) => contender.label), ...ratioColumns.map((column) => column.header), 'issue 10 target (info, warn)'],
  rows.map((row) => [
    row.label,
    ...contenders.map((contender) => figure(row.values.get(contender.key))),
    ...ratioColumns.map((column) => ratio(row.values.get(column.key), row.values.get(column.base))),
    verdict(row),
  ]),
);

// ---- details: rates behind the CPU figures, the transfer cases, the idle runs, errors
const rate = (samples: Sample[], key: string, scale = 1): string => Math.round(ratePerSecond(samples, key) / scale).toLocaleString('en-US');
const errorCount = (samples: Sample[], key: string): number =>
  samples.filter((sample) => sample.contender === key).reduce((sum, sample) => sum + sample.errors, 0);
const detailRows: string[][] = [
  ['connections/s in the churn windows', ...contenders.map((contender) => rate(churnSamples, contender.key))],
  ...bulkSamples.map(({ name, samples }) => [
    `CPU ms per GiB, ${name} (MB/s)`,
    ...contenders.map((contender) => `${figure(cpuPerUnit(samples, contender.key) * GiB * 1e3)} (${rate(samples, contender.key, 1e6)})`),
  ]),
  ['TLS keep-alive requests/s', ...contenders.map((contender) => rate(keepAliveSamples, contender.key))],
  [
    'CPU s of each worker under churn (largest ÷ smallest)',
    ...contenders.map((contender) =>
      contender === workersContender ? `${workerCpu.map((value) => figure(value)).join(' / ')} (${figure(workerSpread)})` : '–',
    ),
  ],
  [
    'idle TLS connections open; RSS before → with them, MiB',
    ...contenders.map((contender) => {
      const result = idle.get(contender.key)!;
      return `${result.opened}${result.errors > 0 ? ` (${result.errors} failed)` : ''}; ${figure(result.beforeKiB / 1024)} → ${figure(result.afterKiB / 1024)}`;
    }),
  ],
  [
    'failed connections or requests',
    ...contenders.map((contender) =>
      String(
        [churnSamples, keepAliveSamples, ...bulkSamples.map(({ samples }) => samples)].reduce((sum, samples) => sum + errorCount(samples, contender.key), 0),
      ),
    ),
  ],
];
const detailsTable = markdownTable(['', ...contenders.map((contender) => contender.label)], detailRows);

// ---- the load generator and everything else, per load
const cores = os.cpus().length;
const loads: Array<{ name: string; samples: Sample[] }> = [
  { name: 'churn', samples: churnSamples },
  ...bulkSamples.map(({ name, samples }) => ({ name, samples })),
  { name: 'TLS keep-alive', samples: keepAliveSamples },
];
const loadRows = loads.map(({ name, samples }) => {
  const generator = median(samples.map((sample) => sample.generator / sample.seconds));
  const others = mean(samples.map((sample) => sample.others / sample.capacity));
  return { name, generator, others };
});
const busiest = Math.max(...loadRows.map((row) => row.others));
const percent = (value: number): string => `${Math.round(value * 100)}%`;
const loadTable = markdownTable(
  ['load', 'load generator (clients + backend, one process): share of a core', `other processes: share of the machine (${cores} cores)`],
  loadRows.map((row) => [row.name, percent(row.generator), percent(row.others)]),
);
if (busiest > BUSY_SHARE) {
  notes.unshift(
    `**The machine was busy**: other processes used up to ${percent(busiest)} of it during the measuring windows, so the figures are disturbed (CPU per unit rises on a shared core). Compare columns within this run only, and rerun on an idle machine.`,
  );
}

// ---- route lookup at scale
const nanoseconds = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–');
const routeTable = markdownTable(
  ['labels in the name', ...routeMatch.timings.map((timing) => String(timing.labels))],
  [
    ['exact name, ns', ...routeMatch.timings.map((timing) => nanoseconds(timing.exactNs))],
    ['wildcard two labels from the end, ns', ...routeMatch.timings.map((timing) => nanoseconds(timing.wildcardNs))],
    ['no match (default route), ns', ...routeMatch.timings.map((timing) => nanoseconds(timing.missNs))],
  ],
);
// ---- print and save
const cpuModel = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
const versionLine = [
  `Node ${versions.node}`,
  versions.haproxy ? `HAProxy ${versions.haproxy}` : null,
  versions.nginx ? `nginx ${versions.nginx}` : null,
  `Linux ${versions.kernel}`,
  `sni-passthrough ${versions['sni-passthrough']}`,
]
  .filter(Boolean)
  .join(', ');
const seconds = Math.round((performance.now() - benchStarted) / 1000);
process.stdout.write(`
### sni-passthrough bench, ${date.toISOString().slice(0, 10)}

${cpuModel}, ${cores} cores, ${figure(os.totalmem() / GiB)} GiB; ${versionLine}.
Raw mode (a real ClientHello for a configured name, then plain bytes; no TLS at either end) unless the row says TLS.
CPU: each process tree's utime+stime from /proc over the measuring window, median of ${ROUNDS} rounds that interleave the contenders.
sni-passthrough runs as the CLI with JSON logs to a file and metrics on an admin endpoint, at \`--log-level info\` (one line per connection) and at \`warn\`; HAProxy and nginx log nothing. The third sni-passthrough column is \`warn\` with \`--workers 2\` (its CPU is the primary's and both workers'; issue 12 wants it ≤ 1.05× one process per connection and per GiB).

${mainTable}

Details (medians over the same windows):

${detailsTable}

${loadTable}

Route lookup with ${routeMatch.routes.toLocaleString('en-US')} routes (${routeMatch.exactRoutes.toLocaleString('en-US')} exact names, ${routeMatch.wildcardRoutes.toLocaleString('en-US')} wildcards; lib/routing/route-table.ts): index built in ${figure(routeMatch.buildMs)} ms${routeMatch.tableBytesPerRoute === null ? '' : `, ${figure(routeMatch.tableBytesPerRoute)} B of heap per route`}; one lookup:

${routeTable}
${configScale === null ? '' : `\nConfig at scale (bench/config-scale.ts):\n\n${figuresAsMarkdown(configScale)}\n`}${notes.length > 0 ? `\n${notes.map((note) => `- ${note}`).join('\n')}\n` : ''}
Measured in ${seconds} s by \`npm run bench\`.
`);

writeFileSync(
  jsonPath,
  `${JSON.stringify(
    {
      date: date.toISOString(),
      machine: { cpu: cpuModel, cores, memoryGiB: os.totalmem() / GiB },
      versions,
      settings: {
        rounds: ROUNDS,
        concurrency: CONCURRENCY,
        rampMs: RAMP_MS,
        windowsMs: { churn: CHURN_MS, bulk: BULK_MS, keepAlive: KEEP_ALIVE_MS },
        idleCount,
      },
      contenders: contenders.map((contender) => ({ key: contender.key, label: contender.label })),
      table: rows.map((row) => ({ key: row.key, label: row.label, unit: row.unit, values: Object.fromEntries(row.values), target: row.target })),
      idle: Object.fromEntries(idle),
      workers: { cpuSeconds: workerCpu, spread: workerSpread },
      samples: { churn: churnSamples, bulk: bulkSamples, tlsKeepAlive: keepAliveSamples },
      load: { busyAtStart, windows: loadRows },
      routeMatch,
      configScale,
      notes,
      seconds,
    },
    null,
    2,
  )}\n`,
);
process.stderr.write(`  JSON: ${jsonPath}\n`);
process.exit(0);
