// Where sni-passthrough's time goes, in the bench's raw loads:
//   npm run build && npx tsx bench/profile.ts [--connections 1000] [--seconds 5] [--out DIR]
// 1. `strace -c -f` on sni-passthrough (info logging, as `npm run bench` runs it) and on the
//    naive relay during the same churn: system calls per connection, by call.
// 2. `node --cpu-prof` of sni-passthrough under churn, then under bulk transfer: the top 15
//    functions by self time. The .cpuprofile files stay in DIR for Chrome DevTools.
// Prints markdown on stdout, progress on stderr. Needs strace (installed from Debian's packages when missing, as root).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { basename, join } from 'node:path';
import { type Contender, debianProgram, startRelay, startSniPassthrough } from './contenders.js';
import { startFixture } from './fixture.js';
import { bulk, churn, type Load, sleep } from './load.js';
import { parseOptions } from './options.js';

const usage = 'usage: npm run build && npx tsx bench/profile.ts [--connections 1000] [--seconds 5] [--out DIR]';
const options = parseOptions(
  {
    connections: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '5' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  usage,
);
const connections = Number(options.connections);
const seconds = Number(options.seconds);
if (!(connections > 0 && connections <= 100_000 && seconds > 0 && seconds <= 120)) {
  process.stderr.write(`${usage}\n--connections is 1..100000, --seconds 1..120\n`);
  process.exit(2);
}
const CONCURRENCY = 50;
const TOP = 15;
const WARM_UP_MS = 1000;
const outDirectory = options.out ?? mkdtempSync(join(os.tmpdir(), 'sni-passthrough-profile-'));
mkdirSync(outDirectory, { recursive: true });
const workDirectory = mkdtempSync(join(os.tmpdir(), 'sni-passthrough-profile-work-'));
process.on('exit', () => rmSync(workDirectory, { recursive: true, force: true }));
const progress = (text: string): void => void process.stderr.write(`  ${text}\n`);

const { backend, hello } = await startFixture();

/** Runs the churn until `count` connections have closed (or `maxMs` passed); resolves with how many did. */
async function churnFor(contender: Contender, count: number, maxMs: number): Promise<number> {
  const load = churn(contender.port, hello, CONCURRENCY);
  for (const started = Date.now(); load.count() < count && Date.now() - started < maxMs; ) await sleep(10);
  await load.stop();
  return load.count();
}

// ---- 1. system calls per connection
interface SyscallCounts {
  connections: number;
  calls: Map<string, number>;
}

/** `strace -c` summary lines: "% time  seconds  usecs/call  calls  [errors]  syscall". */
function parseStraceSummary(text: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    const name = fields.at(-1)!;
    if (fields.length < 5 || !/^\d/.test(fields[0]!) || name === 'total') continue;
    calls.set(name, Number(fields[3]));
  }
  return calls;
}

/** Whether a tracer is attached to `pid` (TracerPid in /proc/PID/status). */
const traced = (pid: number): boolean => !/TracerPid:\s+0\b/.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

async function countSyscalls(strace: string, contender: Contender): Promise<SyscallCounts> {
  await churnFor(contender, 500, 5000); // warm-up: code compiled, pools grown
  const summary = join(workDirectory, `strace-${contender.key}.txt`);
  const tracer = spawn(strace, ['-c', '-f', '-q', '-o', summary, ...contender.pids.flatMap((pid) => ['-p', String(pid)])], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => tracer.once('exit', () => resolve()));
  for (const started = Date.now(); !contender.pids.every(traced); ) {
    if (Date.now() - started > 10_000 || tracer.exitCode !== null) throw new Error(`strace did not attach to ${contender.label}`);
    await sleep(20);
  }
  const done = await churnFor(contender, connections, 120_000);
  tracer.kill('SIGINT'); // detaches and writes the summary
  await Promise.race([exited, sleep(10_000)]);
  return { connections: done, calls: parseStraceSummary(readFileSync(summary, 'utf8')) };
}

// ---- 2. CPU profiles: self time per function
interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The monotonic clock in µs, the clock of a .cpuprofile's timestamps. */
const monotonicMicroseconds = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * Self time (ms) per function, from the samples of a .cpuprofile taken between
 * `from` and `to` (µs, monotonic clock); `(idle)` is left out.
 */
function selfTimes(profile: CpuProfile, from: number, to: number): { total: number; functions: Array<{ name: string; ms: number }> } {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byFunction = new Map<string, number>();
  let total = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, index) => {
    at += profile.timeDeltas[index] ?? 0;
    const frame = frames.get(id)!;
    if (at < from || at > to || frame.functionName === '(idle)') return;
    const where = frame.url ? ` ${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '')}:${frame.lineNumber + 1}` : '';
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    const ms = (profile.timeDeltas[index] ?? 0) / 1000;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    total += ms;
  });
  const functions = [...byFunction].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms);
  return { total, functions };
}

/**
 * Runs a fresh sni-passthrough under `node --cpu-prof` with `start`'s load
 * for a warm-up and then `seconds`, and sums the profile over those seconds
 * (start-up and warm-up left out).
 */
async function profileUnder(
  name: string,
  start: (contender: Contender) => Load,
): Promise<{ file: string; total: number; functions: Array<{ name: string; ms: number }> }> {
  const directory = join(outDirectory, name);
  mkdirSync(directory, { recursive: true });
  const proxy = await startSniPassthrough(workDirectory, backend.port, 'info', ['--cpu-prof', `--cpu-prof-dir=${directory}`]);
  const load = start(proxy);
  await sleep(WARM_UP_MS);
  const from = monotonicMicroseconds();
  await sleep(seconds * 1000);
  const to = monotonicMicroseconds();
  await load.stop();
  await proxy.stop('SIGTERM'); // a clean exit writes the profile
  // The main thread's profile: Node names it with thread id 0 (the config loader's worker thread writes one too).
  const file = readdirSync(directory)
    .filter((entry) => /\.0\.\d+\.cpuprofile$/.test(entry))
    .map((entry) => join(directory, entry))
    .at(-1);
  if (!file) throw new Error(`no profile in ${directory}: did sni-passthrough exit cleanly on SIGTERM?`);
  return { file, ...selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, from, to) };
}

// ---- run and report
const sections: string[] = [];
const strace = debianProgram('strace', 'strace');
if ('reason' in strace) sections.push(`${strace.reason}: no system call counts.`);
else {
  const proxy = await startSniPassthrough(workDirectory, backend.port, 'info');
  const relay = await startRelay(workDirectory, backend.port);
  progress(`strace -c -f on sni-passthrough during ${connections} connections`);
  const proxyCounts = await countSyscalls(strace.path, proxy);
  progress(`strace -c -f on the naive relay during ${connections} connections`);
  const relayCounts = await countSyscalls(strace.path, relay);
  await Promise.all([proxy.stop(), relay.stop()]);
  const names = [...new Set([...proxyCounts.calls.keys(), ...relayCounts.calls.keys()])];
  const perConnection = (counts: SyscallCounts, name: string): number => (counts.calls.get(name) ?? 0) / counts.connections;
  names.sort((a, b) => perConnection(proxyCounts, b) - perConnection(proxyCounts, a) || a.localeCompare(b));
  const cell = (value: number): string => (value === 0 ? '' : value.toFixed(2));
  const total = (counts: SyscallCounts): number => [...counts.calls.values()].reduce((sum, value) => sum + value, 0) / counts.connections;
  sections.push(
    [
      `System calls per connection under churn (hello → 64 B reply → close, ${CONCURRENCY} at a time; \`strace -c -f\` over ${proxyCounts.connections} and ${relayCounts.connections} connections, after a warm-up):`,
      '',
      '| system call | sni-passthrough, info | naive relay |',
      '| --- | ---: | ---: |',
      ...names.map((name) => `| ${name} | ${cell(perConnection(proxyCounts, name))} | ${cell(perConnection(relayCounts, name))} |`),
      `| **total** | **${total(proxyCounts).toFixed(1)}** | **${total(relayCounts).toFixed(1)}** |`,
    ].join('\n'),
  );
}

const loads: Array<{ name: string; title: string; start: (contender: Contender) => Load }> = [
  { name: 'churn', title: `churn (${CONCURRENCY} connections at a time)`, start: (proxy) => churn(proxy.port, hello, CONCURRENCY) },
  {
    name: 'bulk',
    title: 'bulk transfer (one upload and one download stream at once)',
    start: (proxy) => {
      const upload = bulk(proxy.port, hello, backend, 'upload', 1);
      const download = bulk(proxy.port, hello, backend, 'download', 1);
      return {
        count: () => upload.count() + download.count(),
        stop: async () => ({ errors: (await upload.stop()).errors + (await download.stop()).errors }),
      };
    },
  },
];
for (const { name, title, start } of loads) {
  progress(`node --cpu-prof of sni-passthrough under ${title}, ${seconds} s`);
  const profile = await profileUnder(name, start);
  sections.push(
    [
      `Top ${TOP} functions by self time, sni-passthrough (info) under ${title} for ${seconds} s after a ${WARM_UP_MS / 1000} s warm-up; ${Math.round(profile.total)} ms busy in all (\`${basename(profile.file)}\` in ${join(outDirectory, name)}):`,
      '',
      '| self ms | share of busy | function |',
      '| ---: | ---: | --- |',
      ...profile.functions.slice(0, TOP).map((entry) => `| ${entry.ms.toFixed(0)} | ${((100 * entry.ms) / profile.total).toFixed(1)}% | \`${entry.name}\` |`),
    ].join('\n'),
  );
}
await backend.close();
process.stdout.write(`\n${sections.join('\n\n')}\n`);
process.exit(0);
