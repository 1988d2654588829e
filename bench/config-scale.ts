// What big and hostile config files cost the proxy (`npx tsx bench/config-scale.ts`,
// after `npm run build`; Linux only: reads /proc). Three parts:
// - the real CLI on 100,000 routes (two shapes): time from spawn to its
//   `ready` line, and its resident memory then (and on a small config, with
//   bare node for reference);
// - in a child process with --expose-gc, the heap each route keeps in the
//   main thread after load (heapUsed after gc), by layer: the loaded config,
//   the route table, and the rest of what a listener builds per route
//   (BackendPool, access checks, backend state);
// - the longest event-loop stall while loading each file (monitorEventLoopDelay),
//   and how long building a listener's settings from it blocks.
// `measureConfigScale()` returns the figures; run directly, it prints them.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cliPath, projectRoot } from '../test/helpers/proxy-process.js';

type LoaderModule = typeof import('../lib/config/loader.js');
type RouteTableModule = typeof import('../lib/routing/route-table.js');
type SettingsModule = typeof import('../lib/listeners/settings.js');
type CertificatesModule = typeof import('../lib/tls/certificates.js');
type HealthModule = typeof import('../lib/backends/health.js');
type ResolverModule = typeof import('../lib/backends/host-resolver.js');

const ROUTES = 100_000;
const MiB = 1024 * 1024;

export interface StartupFigures {
  config: string;
  routes: number;
  fileMiB: number;
  /** From spawning the CLI to its `ready` log line. */
  readyMs: number;
  /** VmRSS of the proxy process once ready. */
  rssMiB: number;
}

export interface HeapFigures {
  config: string;
  routes: number;
  /** Retained heap per route (bytes, heapUsed after gc): the loaded config (with its text). */
  configBytesPerRoute: number;
  /** The route table alone. */
  routeTableBytesPerRoute: number;
  /** What listenerSettings builds per route besides its route table: BackendPool, access checks, backend state. */
  listenerBytesPerRoute: number;
  /** Config + listener settings (which include a route table): what the proxy keeps per route. */
  totalBytesPerRoute: number;
  /** Building the listener's settings (route table, pools): one synchronous task on the event loop. */
  settingsBuildMs: number;
}

export interface StallFigures {
  file: string;
  fileMiB: number;
  /** How the load ended: "ok" or the ConfigError code. */
  result: string;
  loadMs: number;
  /** The longest the event loop was held up while the file loaded (NaN when the process died). */
  maxStallMs: number;
  /** The longest garbage-collection pause in that time: part of the stall, not work of the loader's own. */
  maxGcPauseMs: number;
}

export interface ConfigScaleFigures {
  bareNodeRssMiB: number;
  startup: StartupFigures[];
  heap: HeapFigures[];
  stalls: StallFigures[];
}

/** Each route: one exact hostname and one backend of its own. */
function exactRoutesYaml(count: number): string {
  const lines = ['listeners:', '  - name: public', '    listen: 127.0.0.1:0', '    routes:'];
  for (let index = 0; index < count; index++) {
    lines.push(`      - hostnames: [h${index}.example.com]`, `        backends: [10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:8443]`);
  }
  return `${lines.join('\n')}\n`;
}

/** Half the routes wildcards, each with two of ten shared backends. */
function sharedRoutesYaml(count: number): string {
  const lines = ['listeners:', '  - name: public', '    listen: 127.0.0.1:0', '    routes:'];
  for (let index = 0; index < count; index++) {
    const hostname = index % 2 === 0 ? `h${index}.example.com` : `"*.w${index}.example.org"`;
    lines.push(`      - hostnames: [${hostname}]`, `        backends: [127.0.0.1:${9000 + (index % 10)}, 127.0.0.1:${9000 + ((index + 1) % 10)}]`);
  }
  return `${lines.join('\n')}\n`;
}

const smallYaml =
  'listeners:\n  - name: public\n    listen: 127.0.0.1:0\n    routes:\n      - hostnames: [app.example.com]\n        backends: [127.0.0.1:9443]\n';

/** The files the loader is measured on: ordinary, huge and hostile. */
function stallFiles(routes: number): Array<{ name: string; text: string }> {
  const exact = exactRoutesYaml(routes);
  const bombLevels = 'abcdefghi'.split('');
  return [
    { name: `${routes} routes`, text: exact },
    { name: '52 MB invalid YAML', text: `${exact.repeat(Math.ceil((52 * 1e6) / exact.length)).slice(0, 52 * 1e6)}\n  bad: [\n` },
    { name: '50 MB of comments', text: `${'# a comment line of some length, repeated\n'.repeat(Math.ceil((50 * 1e6) / 42))}listeners: []\n` },
    { name: '15 MiB of comments (under the cap)', text: `${'# a comment line of some length, repeated\n'.repeat(Math.floor((15 * MiB) / 42))}listeners: []\n` },
    { name: '200,000 nested [', text: `listeners: ${'['.repeat(200_000)}\n` },
    {
      name: 'alias bomb',
      text: `${bombLevels
        .map(
          (name, index) =>
            `${name}: &${name} [${Array(9)
              .fill(index === 0 ? '"lol"' : `*${bombLevels[index - 1]}`)
              .join(', ')}]`,
        )
        .join('\n')}\nlisteners: *i\n`,
    },
  ];
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** Starts `node <args>`, resolves with the time to the first stdout line matching `ready` and the RSS then; kills it. */
function timeToLine(args: string[], ready: (line: string) => boolean, timeoutMs = 120_000): Promise<{ ms: number; rssMiB: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`not ready within ${timeoutMs} ms`)), timeoutMs);
    const finish = (error: Error | null, figures?: { ms: number; rssMiB: number }): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      if (error) reject(error);
      else resolve(figures!);
    };
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (ready(line)) finish(null, { ms: performance.now() - started, rssMiB: rssMiB(child.pid!) });
    });
    child.on('exit', (code) => finish(new Error(`exited with ${code} before it was ready: ${stderr}`)));
  });
}

type ChildTask = { kind: 'stall'; modules: string; name: string; file: string } | { kind: 'heap'; modules: string; config: string; file: string };

/**
 * Runs this file again with --expose-gc, in a process of its own for each
 * measurement: a crash (the old loader on 52 MB) or a heap left behind by one
 * does not skew the next.
 */
function measureInChild<T>(task: ChildTask, timeoutMs = 300_000): Promise<T | { died: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), 'in-process', JSON.stringify(task)], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let output = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (chunk) => (output += chunk));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(output) as T);
      else resolve({ died: signal === 'SIGKILL' ? `killed after ${timeoutMs / 1000} s` : `died (${signal ?? `exit ${code}`})` });
    });
  });
}

async function importFrom<T>(modules: string, module: string): Promise<T> {
  return (await import(pathToFileURL(join(modules, module)).href)) as T;
}

function heapUsedAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc!;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** The heap that what `build` returns keeps (heapUsed after gc, before and with it). */
function retainedBy<T>(build: () => T): { bytes: number; value: T } {
  const before = heapUsedAfterGc();
  const value = build();
  return { bytes: heapUsedAfterGc() - before, value };
}

/** The longest event-loop stall and GC pause while `file` loads. */
async function measureStall(modules: string, name: string, file: string): Promise<StallFigures> {
  const { loadConfigFile } = await importFrom<LoaderModule>(modules, 'config/loader.js');
  let maxGcPauseMs = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) maxGcPauseMs = Math.max(maxGcPauseMs, entry.duration);
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const started = performance.now();
  const result = await loadConfigFile(file).then(
    () => 'ok',
    (error: { code?: string; message: string }) => error.code ?? error.message,
  );
  const loadMs = performance.now() - started;
  // One more turn of the loop: a load that blocked it (the old loader) shows as the delay of the timer that fires next.
  await new Promise((resolve) => setTimeout(resolve, 10));
  histogram.disable();
  gcObserver.disconnect();
  return { file: name, fileMiB: statSync(file).size / MiB, result, loadMs, maxStallMs: histogram.max / 1e6, maxGcPauseMs };
}

/** What one route costs the main thread, by layer, once `file` is loaded and a listener built from it. */
async function measureHeap(modules: string, config: string, file: string): Promise<HeapFigures> {
  const { loadConfigFile } = await importFrom<LoaderModule>(modules, 'config/loader.js');
  const { buildRouteTable } = await importFrom<RouteTableModule>(modules, 'routing/route-table.js');
  const { listenerSettings } = await importFrom<SettingsModule>(modules, 'listeners/settings.js');
  const { NO_TLS_MATERIAL } = await importFrom<CertificatesModule>(modules, 'tls/certificates.js');
  const { BackendRegistry } = await importFrom<HealthModule>(modules, 'backends/health.js');
  const { HostResolver } = await importFrom<ResolverModule>(modules, 'backends/host-resolver.js');
  const before = heapUsedAfterGc();
  const loaded = await loadConfigFile(file);
  const configBytes = heapUsedAfterGc() - before;
  const listener = loaded.config.listeners[0]!;
  const routes = listener.routes.length;
  const tableBytes = retainedBy(() => buildRouteTable(listener.routes, null)).bytes;
  const registry = new BackendRegistry({ backendHealthChanged: () => {} });
  let settingsBuildMs = 0;
  const settings = retainedBy(() => {
    registry.sync(loaded.config);
    const started = performance.now();
    const built = listenerSettings(listener, { registry, tls: NO_TLS_MATERIAL, resolver: new HostResolver() });
    settingsBuildMs = performance.now() - started;
    return built;
  });
  registry.stop();
  return {
    config,
    routes,
    configBytesPerRoute: configBytes / routes,
    routeTableBytesPerRoute: tableBytes / routes,
    listenerBytesPerRoute: (settings.bytes - tableBytes) / routes,
    totalBytesPerRoute: (configBytes + settings.bytes) / routes,
    settingsBuildMs,
  };
}

/**
 * `modules` and `cli`: the code to measure. By default this checkout's: its lib/ (run through tsx; the build
 * bundles dist/, whose modules cannot be imported one by one) and its command. An older build's dist/ with a module
 * per file, and its command, give before/after figures.
 */
export async function measureConfigScale(options: { routes?: number; modules?: string; cli?: string } = {}): Promise<ConfigScaleFigures> {
  const routes = options.routes ?? ROUTES;
  const modules = options.modules ?? join(projectRoot, 'lib');
  const cli = options.cli ?? cliPath;
  const directory = mkdtempSync(join(tmpdir(), 'sni-config-scale-'));
  try {
    const write = (name: string, text: string): string => {
      const file = join(directory, name);
      writeFileSync(file, text);
      return file;
    };
    const configs = {
      small: write('small.yaml', smallYaml),
      exact: write('routes-exact.yaml', exactRoutesYaml(routes)),
      shared: write('routes-shared.yaml', sharedRoutesYaml(routes)),
    };

    const bare = await timeToLine(['-e', 'console.log("ready"); setInterval(() => {}, 1000)'], (line) => line === 'ready');
    const startup: StartupFigures[] = [];
    for (const [config, file] of Object.entries(configs)) {
      const figures = await timeToLine([cli, '--config', file, '--log-format', 'json'], (line) => line.includes('"msg":"ready"'));
      startup.push({ config, routes: config === 'small' ? 1 : routes, fileMiB: statSync(file).size / MiB, readyMs: figures.ms, rssMiB: figures.rssMiB });
    }

    const heap: HeapFigures[] = [];
    for (const config of ['exact', 'shared'] as const) {
      const figures = await measureInChild<HeapFigures>({ kind: 'heap', modules, config, file: configs[config] });
      if (!('died' in figures)) heap.push(figures);
    }
    const stalls: StallFigures[] = [];
    for (const [index, { name, text }] of stallFiles(routes).entries()) {
      const file = write(`stall-${index}.yaml`, text);
      const figures = await measureInChild<StallFigures>({ kind: 'stall', modules, name, file });
      stalls.push(
        'died' in figures ? { file: name, fileMiB: text.length / MiB, result: figures.died, loadMs: NaN, maxStallMs: NaN, maxGcPauseMs: NaN } : figures,
      );
      rmSync(file);
    }
    return { bareNodeRssMiB: bare.rssMiB, startup, heap, stalls };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function printFigures(figures: ConfigScaleFigures): void {
  const f = (value: number, digits = 0): string => value.toFixed(digits);
  console.log(`bare node: ${f(figures.bareNodeRssMiB, 1)} MiB RSS`);
  console.log('\nstartup (the real CLI)      routes   file MiB   to ready ms   RSS MiB');
  for (const row of figures.startup) {
    console.log(
      `  ${row.config.padEnd(26)}${String(row.routes).padStart(7)}${f(row.fileMiB, 1).padStart(11)}${f(row.readyMs).padStart(14)}${f(row.rssMiB, 1).padStart(10)}`,
    );
  }
  console.log('\nretained heap per route, bytes   config   route table   listener rest   total   settings build ms');
  for (const row of figures.heap) {
    console.log(
      `  ${row.config.padEnd(31)}${f(row.configBytesPerRoute).padStart(7)}${f(row.routeTableBytesPerRoute).padStart(14)}${f(row.listenerBytesPerRoute).padStart(16)}${f(row.totalBytesPerRoute).padStart(8)}${f(row.settingsBuildMs).padStart(20)}`,
    );
  }
  console.log('\nloading a file                        MiB   result                    load ms   longest stall ms   of which GC ms');
  for (const row of figures.stalls) {
    console.log(
      `  ${row.file.padEnd(34)}${f(row.fileMiB, 1).padStart(6)}   ${row.result.padEnd(24)}${f(row.loadMs).padStart(9)}${f(row.maxStallMs, 1).padStart(19)}${f(row.maxGcPauseMs, 1).padStart(17)}`,
    );
  }
}

if (process.argv[2] === 'in-process') {
  const task = JSON.parse(process.argv[3]!) as ChildTask;
  const figures = task.kind === 'heap' ? await measureHeap(task.modules, task.config, task.file) : await measureStall(task.modules, task.name, task.file);
  process.stdout.write(JSON.stringify(figures));
} else if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  if (process.platform !== 'linux') throw new Error('bench/config-scale.ts reads memory from /proc: Linux only');
  printFigures(await measureConfigScale({ modules: process.env.BENCH_MODULES, cli: process.env.BENCH_CLI }));
}
