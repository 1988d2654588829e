// `npm run bench`: what the proxy costs, measured against a direct connection in
// the same run. The load generator and the backends run in this process; the
// proxy is the real CLI in a process of its own, whose CPU time and memory are
// read from /proc (Linux only). See bench/README.md for how to read the table.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { createCertificateAuthority } from '../test/helpers/certificates.js';
import { captureClientHello } from '../test/helpers/client-hello-fixtures.js';
import { cliPath, writeConfig } from '../test/helpers/proxy-process.js';

const HOST = '127.0.0.1';
const CONCURRENCY = 32;
const ROUNDS = 7; // each load runs in rounds alternating direct and proxied; the table shows the median round
const ROUND_MS = 650;
const SMALL_REPLY = 64;
const IDLE_CONNECTIONS = 3000;
const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

if (process.platform !== 'linux') throw new Error("bench/run.ts reads the proxy's CPU time and memory from /proc: Linux only");

// ---- backends: after the hello (raw) or the TLS handshake, one command line:
// "send N" writes N bytes and ends, "echo" echoes the rest, nothing: stays idle.
function sendBytes(socket: net.Socket, total: number): void {
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const size = Math.min(left, CHUNK.length);
      left -= size;
      if (!socket.write(size === CHUNK.length ? CHUNK : CHUNK.subarray(0, size))) return void socket.once('drain', pump);
    }
    socket.end();
  };
  pump();
}

function serve(socket: net.Socket, skip: number, onHello: () => void): void {
  let pending = skip;
  let line = '';
  socket.on('error', () => {});
  const onData = (data: Buffer): void => {
    let chunk = data;
    if (pending > 0) {
      const taken = Math.min(pending, chunk.length);
      pending -= taken;
      chunk = chunk.subarray(taken);
      if (pending === 0) onHello();
    }
    const newline = chunk.indexOf(10);
    if (newline < 0) return void (line += chunk.toString('latin1'));
    line += chunk.subarray(0, newline).toString('latin1');
    socket.off('data', onData);
    const [command, argument] = line.split(' ');
    if (command === 'send') sendBytes(socket, Number(argument));
    else if (command === 'echo') {
      socket.write(chunk.subarray(newline + 1));
      socket.pipe(socket);
    }
  };
  socket.on('data', onData);
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return (server.address() as net.AddressInfo).port;
}

// ---- the proxy process: the real CLI, logs to a file, bound port read from /proc.
const workDirectory = mkdtempSync(join(os.tmpdir(), 'sni-passthrough-bench-'));
const children = new Set<ChildProcess>();
process.on('exit', () => {
  // Also on a failure: leave no proxy running and no temp files behind.
  for (const child of children) child.kill('SIGKILL');
  rmSync(workDirectory, { recursive: true, force: true });
});

function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {} // the fd closed meanwhile
  }
  const ports: number[] = [];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[3] === '0A' && inodes.has(fields[9]!)) ports.push(parseInt(fields[1]!.split(':')[1]!, 16));
  }
  return ports;
}

interface Proxy {
  pid: number;
  port: number;
  stop(): Promise<void>;
}
let stoppedProxiesCpu = 0; // CPU seconds of the proxy processes already stopped

/** Starts `node ...args` listening on one port, and finds that port in /proc once it is bound. */
async function startProcess(args: string[], logName: string): Promise<Proxy> {
  const logFile = openSync(join(workDirectory, `${logName}.log`), 'w');
  const child = spawn(process.execPath, args, { stdio: ['ignore', logFile, 'pipe'] });
  children.add(child);
  closeSync(logFile);
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((resolve) =>
    child.on('exit', () => {
      children.delete(child);
      resolve();
    }),
  );
  const stop = (): Promise<void> => {
    stoppedProxiesCpu += cpuSeconds(child.pid!);
    child.kill('SIGKILL');
    return exited;
  };
  const started = performance.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${logName} exited with ${child.exitCode}: ${stderr}`);
    const [port] = listeningPorts(child.pid!);
    if (port) return { pid: child.pid!, port, stop };
    if (performance.now() - started > 10_000) throw new Error(`${logName} did not listen within 10 s: ${stderr}`);
    await sleep(20);
  }
}

// `--log-level warn` hides the `listening` line that the tests' startProxy() reads, so the port comes from /proc instead.
const startProxy = (configFile: string, logLevel: string): Promise<Proxy> =>
  startProcess([cliPath, '--config', configFile, '--log-format', 'json', '--log-level', logLevel], `proxy-${logLevel}`);

/**
 * The reference: the least a Node.js relay can do (connect on the first bytes, pipe both ways; no
 * parsing, routing, timers, logs or metrics), in its own process like the proxy. The difference
 * between the two is the cost of the proxy's pipeline; what they share is Node's and the kernel's.
 */
const RELAY = `
const net = require('node:net');
const backendPort = Number(process.argv[1]);
net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  client.on('error', () => {});
  client.once('data', (first) => {
    client.pause();
    const backend = net.connect({ host: '127.0.0.1', port: backendPort, allowHalfOpen: true, noDelay: true }, () => {
      backend.write(first);
      client.pipe(backend);
      backend.pipe(client);
      client.resume();
    });
    backend.on('error', () => client.destroy());
    backend.on('close', () => client.destroy());
    client.on('close', () => backend.destroy());
  });
}).listen(0, '127.0.0.1');`;
const RELAY_LINES = RELAY.trim().split('\n').length;
const startRelay = (backendPort: number): Promise<Proxy> => startProcess(['-e', RELAY, String(backendPort)], 'relay');

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / TICKS; // utime + stime
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** Busy and total jiffies of the whole machine, to tell how much else was running. */
function machineTicks(): { busy: number; total: number } {
  const values = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  return { busy: total - values[3]! - values[4]!, total };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- clients. Each resolves once its connection has closed, or rejects.
type Target = { port: number };

function tlsExchange(target: Target, secureContext: tls.SecureContext): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const socket = tls.connect({ host: HOST, port: target.port, servername: 'tls.bench.test', secureContext }, () => socket.write(`send ${SMALL_REPLY}\n`));
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('error', reject);
    socket.on('close', () => (received === SMALL_REPLY ? resolve() : reject(new Error(`got ${received} bytes`))));
  });
}

function rawExchange(target: Target, request: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const socket = net.connect({ host: HOST, port: target.port, noDelay: true });
    socket.write(request);
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('error', reject);
    socket.on('close', () => (received === SMALL_REPLY ? resolve() : reject(new Error(`got ${received} bytes`))));
  });
}

/** Downloads up to `bytes`; resolves with the bytes received by `deadline` (then it hangs up). */
function download(open: () => net.Socket, bytes: number, deadline: number): Promise<number> {
  return new Promise((resolve) => {
    let received = 0;
    const socket = open();
    const timer = setTimeout(() => socket.destroy(), Math.max(0, deadline - performance.now()));
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Math.min(received, bytes));
    });
  });
}

/** Runs `once` with `concurrency` in flight until `maxCount` have started or `maxMs` passed. */
async function closedLoop(once: () => Promise<void>, concurrency: number, maxCount: number, maxMs: number) {
  const started = performance.now();
  const latencies: number[] = [];
  let launched = 0;
  let errors = 0;
  const worker = async (): Promise<void> => {
    while (launched < maxCount && performance.now() - started < maxMs) {
      launched++;
      const begin = performance.now();
      try {
        await once();
        latencies.push(performance.now() - begin);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { count: latencies.length, errors, seconds: (performance.now() - started) / 1000, latencies };
}

/** One open raw connection in echo mode: round trips of a 64-byte message. */
async function pingPong(target: Target, hello: Buffer, maxCount: number, maxMs: number): Promise<number[]> {
  const socket = net.connect({ host: HOST, port: target.port, noDelay: true });
  let closed = false;
  let wake = (): void => {};
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
    wake();
  });
  socket.write(Buffer.concat([hello, Buffer.from('echo\n')]));
  const message = CHUNK.subarray(0, SMALL_REPLY);
  const latencies: number[] = [];
  const started = performance.now();
  while (!closed && latencies.length < maxCount && performance.now() - started < maxMs) {
    const begin = performance.now();
    await new Promise<void>((resolve) => {
      let received = 0;
      const onData = (chunk: Buffer): void => {
        received += chunk.length;
        if (received >= SMALL_REPLY) {
          socket.off('data', onData);
          resolve();
        }
      };
      wake = resolve;
      socket.on('data', onData);
      socket.write(message);
    });
    if (!closed) latencies.push(performance.now() - begin);
  }
  socket.destroy();
  return latencies;
}

const median = (values: number[]): number => quantile(values, 0.5);
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

// ---- setup
const machineAtStart = machineTicks();
const benchStart = process.cpuUsage();
const ca = await createCertificateAuthority('sni-passthrough bench CA');
const { key, cert } = await ca.issue('tls.bench.test', ['tls.bench.test']);
const hello = await captureClientHello({ servername: 'raw.bench.test' });
let backendHellos = 0;
const tlsServer = tls.createServer({ key, cert }, (socket) => serve(socket, 0, () => {}));
tlsServer.on('tlsClientError', () => {});
const rawServer = net.createServer({ noDelay: true }, (socket) => serve(socket, hello.length, () => backendHellos++));
const tlsBackend = { port: await listen(tlsServer) };
const rawBackend = { port: await listen(rawServer) };
const configFile = await writeConfig(
  {
    defaults: { clientHelloTimeout: '10s', connectTimeout: '5s', idleTimeout: 0, drainTimeout: '1s' },
    listeners: [
      {
        name: 'bench',
        listen: `${HOST}:0`,
        routes: [
          { hostnames: ['tls.bench.test'], backends: [`${HOST}:${tlsBackend.port}`] },
          { hostnames: ['raw.bench.test'], backends: [`${HOST}:${rawBackend.port}`] },
        ],
      },
    ],
  },
  workDirectory,
);
const rawSmall = Buffer.concat([hello, Buffer.from(`send ${SMALL_REPLY}\n`)]);

// ---- measurements
type Load = (target: Target, ms: number) => Promise<{ work: number; seconds: number; errors: number }>;

/** One way of reaching the backend, with the medians of its rounds. */
interface Path {
  rate: number;
  cpuPerUnit: number;
  cpuShare: number;
  errors: number;
}

/**
 * Runs `load` in ROUNDS rounds; each round goes direct to `backend` and then
 * through each of `processes`, in an order that rotates from round to round,
 * so that all of them see the same conditions. One short warm-up of each
 * first. For each: the median rate, and the median over rounds of the
 * process's CPU time per unit of work (connection or byte) and per second.
 */
async function compare(load: Load, roundMs: number, backend: Target, processes: Proxy[]): Promise<{ direct: Path; via: Path[] }> {
  const paths: Array<Proxy | null> = [null, ...processes];
  const samples = paths.map(() => ({ rates: [] as number[], perUnit: [] as number[], shares: [] as number[], errors: 0 }));
  for (const path of paths) await load(path ?? backend, roundMs / 3);
  for (let round = 0; round < ROUNDS; round++) {
    for (let step = 0; step < paths.length; step++) {
      const index = (round + step) % paths.length;
      const path = paths[index]!;
      const cpuBefore = path ? cpuSeconds(path.pid) : 0;
      const result = await load(path ?? backend, roundMs);
      const cpu = path ? cpuSeconds(path.pid) - cpuBefore : 0;
      const sample = samples[index]!;
      sample.rates.push(result.work / result.seconds);
      sample.perUnit.push(cpu / Math.max(1, result.work));
      sample.shares.push(cpu / result.seconds);
      sample.errors += result.errors;
    }
  }
  const [direct, ...via] = samples.map((sample) => ({
    rate: median(sample.rates),
    cpuPerUnit: median(sample.perUnit),
    cpuShare: median(sample.shares),
    errors: sample.errors,
  }));
  return { direct: direct!, via };
}

const connectionLoad =
  (exchange: (target: Target) => Promise<void>): Load =>
  async (target, ms) => {
    const result = await closedLoop(() => exchange(target), CONCURRENCY, 100_000, ms);
    return { work: result.count, seconds: result.seconds, errors: result.errors };
  };
const downloadLoad =
  (open: (target: Target) => net.Socket, streams: number, bytesPerStream: number): Load =>
  async (target, ms) => {
    const started = performance.now();
    const received = await Promise.all(Array.from({ length: streams }, () => download(() => open(target), bytesPerStream, started + ms)));
    return { work: received.reduce((sum, value) => sum + value, 0), seconds: (performance.now() - started) / 1000, errors: 0 };
  };
// One TLS client context for the whole run, as a real client keeps one (not a new one per connection).
const clientContext = tls.createSecureContext({ ca: ca.cert });
const openTls = (target: Target): net.Socket => {
  const socket = tls.connect({ host: HOST, port: target.port, servername: 'tls.bench.test', secureContext: clientContext });
  socket.once('secureConnect', () => socket.write(`send ${512 * MiB}\n`));
  return socket;
};
const openRawDownload = (target: Target): net.Socket => {
  const socket = net.connect({ host: HOST, port: target.port });
  socket.write(Buffer.concat([hello, Buffer.from(`send ${2 * GiB}\n`)]));
  return socket;
};

type Row = [string, string, string, string, string, string];
const number = (value: number, digits = 0): string => value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const rateRow = (label: string, direct: Path, via: Path, unit: 'conn' | 'MB'): Row => {
  const rate = (path: Path): string => (unit === 'conn' ? `${number(path.rate)}/s` : `${number(path.rate / 1e6)} MB/s`);
  const errors = direct.errors + via.errors;
  return [
    label,
    rate(direct),
    rate(via) + (errors > 0 ? ` (${errors} failed)` : ''),
    (via.rate / direct.rate).toFixed(2),
    `${Math.round(100 * via.cpuShare)}%`,
    unit === 'conn' ? `${number(via.cpuPerUnit * 1e6)} µs/conn` : `${(via.cpuPerUnit * GiB).toFixed(2)} s/GiB`,
  ];
};
const micro = (ms: number): string => `${number(ms * 1000)} µs`;
const latencyRow = (label: string, direct: number[], via: number[], tail: boolean): Row => [
  label,
  tail ? `${micro(median(direct))} / ${micro(quantile(direct, 0.99))}` : micro(median(direct)),
  tail ? `${micro(median(via))} / ${micro(quantile(via, 0.99))}` : micro(median(via)),
  `+${number((median(via) - median(direct)) * 1000)} µs`,
  '',
  '',
];

process.stdout.write(
  `sni-passthrough bench: ${ROUNDS} rounds per row (median shown), concurrency ${CONCURRENCY}, ${os.cpus().length} CPUs, Node ${process.version}\n`,
);
const progress = (label: string): void => void process.stdout.write(`  measuring ${label}...\n`);
const tlsLoad = connectionLoad((target) => tlsExchange(target, clientContext));
const rawLoad = connectionLoad((target) => rawExchange(target, rawSmall));
const sequential = async (target: Target): Promise<number[]> => (await closedLoop(() => rawExchange(target, rawSmall), 1, 3000, 1000)).latencies;

// The proxy as it should run in production, the same proxy writing its access log, and the reference relay.
const proxy = await startProxy(configFile, 'warn');
const logging = await startProxy(configFile, 'info');
const relay = await startRelay(rawBackend.port);

progress('TLS connections/s');
const tlsRate = await compare(tlsLoad, ROUND_MS, tlsBackend, [proxy, logging]);
progress('TLS throughput');
const tlsBulk = await compare(downloadLoad(openTls, 2, 512 * MiB), ROUND_MS, tlsBackend, [proxy]);
progress('raw connections/s');
const rawRate = await compare(rawLoad, ROUND_MS, rawBackend, [proxy, logging, relay]);
progress('raw throughput');
const rawBulk = await compare(downloadLoad(openRawDownload, 2, 2 * GiB), ROUND_MS, rawBackend, [proxy, relay]);
progress('latency');
const setup = { direct: [] as number[], proxy: [] as number[], relay: [] as number[] };
const ping = { direct: [] as number[], proxy: [] as number[], relay: [] as number[] };
for (const [name, target] of [
  ['direct', rawBackend],
  ['proxy', { port: proxy.port }],
  ['relay', { port: relay.port }],
] as const) {
  await sequential(target); // warm-up
  setup[name] = await sequential(target);
  ping[name] = await pingPong(target, hello, 10_000, 1000);
}
await Promise.all([proxy.stop(), logging.stop(), relay.stop()]);

// Memory: a fresh proxy, warmed up, then IDLE_CONNECTIONS that sent their hello and reached the backend.
progress(`memory with ${IDLE_CONNECTIONS} idle connections`);
const fdLimit = Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
const idleCount = Math.min(IDLE_CONNECTIONS, Math.floor((fdLimit - 200) / 2));
const fresh = await startProxy(configFile, 'warn');
await closedLoop(() => rawExchange({ port: fresh.port }, rawSmall), CONCURRENCY, 2000, 1000);
await sleep(500);
const rssBefore = rssKiB(fresh.pid);
const idle: net.Socket[] = [];
backendHellos = 0;
for (let opened = 0; opened < idleCount; ) {
  const batch = Math.min(100, idleCount - opened);
  await Promise.all(
    Array.from(
      { length: batch },
      () =>
        new Promise<void>((resolve, reject) => {
          const socket = net.connect({ host: HOST, port: fresh.port }, () => resolve());
          socket.on('error', reject);
          socket.write(hello);
          idle.push(socket);
        }),
    ),
  );
  opened += batch;
}
for (const started = performance.now(); backendHellos < idleCount && performance.now() - started < 10_000; ) await sleep(20);
await sleep(500);
const rssAfter = rssKiB(fresh.pid);
for (const socket of idle) socket.destroy();
await fresh.stop();

const LOGGING = '  same, --log-level info (1 log line/conn)';
const REFERENCE = '  same, minimal Node relay (reference)';
const [tlsProxy, tlsLogging] = tlsRate.via as [Path, Path];
const [rawProxy, rawLogging, rawRelay] = rawRate.via as [Path, Path, Path];
const [bulkProxy, bulkRelay] = rawBulk.via as [Path, Path];
const rows: Row[] = [
  rateRow(`TLS connections/s (full handshake, ${SMALL_REPLY} B reply)`, tlsRate.direct, tlsProxy, 'conn'),
  rateRow(LOGGING, tlsRate.direct, tlsLogging, 'conn'),
  rateRow('TLS download MB/s (2 long connections)', tlsBulk.direct, tlsBulk.via[0]!, 'MB'),
  rateRow(`Raw connections/s (real hello, ${SMALL_REPLY} B reply)`, rawRate.direct, rawProxy, 'conn'),
  rateRow(LOGGING, rawRate.direct, rawLogging, 'conn'),
  rateRow(REFERENCE, rawRate.direct, rawRelay, 'conn'),
  rateRow('Raw download MB/s (2 long connections)', rawBulk.direct, bulkProxy, 'MB'),
  rateRow(REFERENCE, rawBulk.direct, bulkRelay, 'MB'),
  latencyRow('Raw connect + hello + reply, one at a time (p50 / p99)', setup.direct, setup.proxy, true),
  latencyRow(REFERENCE, setup.direct, setup.relay, true),
  latencyRow(`Raw ${SMALL_REPLY} B round trip on an open connection (p50)`, ping.direct, ping.proxy, false),
  latencyRow(REFERENCE, ping.direct, ping.relay, false),
  [
    `Idle connections (hello sent, backend connected)`,
    '',
    `${number(backendHellos)} open`,
    '',
    `RSS ${number(rssBefore / 1024, 1)} → ${number(rssAfter / 1024, 1)} MiB`,
    `${number((rssAfter - rssBefore) / backendHellos, 1)} KiB/conn`,
  ],
];

// ---- report
const machineAtEnd = machineTicks();
const benchCpu = process.cpuUsage(benchStart);
const header: Row = ['', 'direct', 'via proxy', 'ratio', 'proxy CPU', 'proxy cost'];
const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => row[column]!.length)));
const line = (row: Row): string => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
const cpus = os.cpus();
const machineSeconds = (machineAtEnd.total - machineAtStart.total) / TICKS;
const ourSeconds = benchCpu.user / 1e6 + benchCpu.system / 1e6 + stoppedProxiesCpu;
const otherShare = Math.max(0, (machineAtEnd.busy - machineAtStart.busy) / TICKS - ourSeconds) / machineSeconds;
process.stdout.write(`
${line(header)}
${'-'.repeat(line(header).length)}
${rows.map(line).join('\n')}

machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${number(os.totalmem() / GiB, 1)} GiB, Linux ${os.release()}, Node ${process.version}
CPU over the run: clients + backends ${number(benchCpu.user / 1e6 + benchCpu.system / 1e6, 1)} s, proxies ${number(stoppedProxiesCpu, 1)} s; other processes used ${Math.round(otherShare * 100)}% of the machine meanwhile${otherShare > 0.1 ? ' (the figures are disturbed: rerun on an idle machine)' : ''}
caveats: loopback only (no network latency or bandwidth limit). Clients, backends and proxy share these ${cpus.length} cores: a direct
run gives the load generator the whole machine, a proxied run makes it share with the proxy, and with TLS at both ends the
handshakes and encryption in this process dominate and hide the proxy; hence the raw rows and the proxy's own CPU figures.
"proxy CPU": the proxy process's utime+stime as a share of one core; "proxy cost": that CPU time per connection or per GiB
relayed; both are medians over the rounds. "minimal Node relay": ${RELAY_LINES} lines of net + pipe, no parsing, routing, logs or
metrics, in its own process: the floor for any Node.js relay on this machine. MB = 10^6 bytes.
`);
await Promise.all([new Promise((resolve) => tlsServer.close(resolve)), new Promise((resolve) => rawServer.close(resolve))]);
process.exit(0);
