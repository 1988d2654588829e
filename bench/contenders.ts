// The relays the bench compares, each in a process group of its own, listening
// on one port on 127.0.0.1 and sending every connection to the bench's backend:
// sni-passthrough (the real CLI), HAProxy, nginx and the naive Node relay.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { cliPath, commandLaunch } from '../test/helpers/proxy-process.js';
import { freePort, HOST, sleep } from './load.js';
import { isListening, processTree } from './proc.js';

/** The server names the bench's clients send; every contender routes both to the one backend. */
export const RAW_NAME = 'raw.bench.test';
export const TLS_NAME = 'tls.bench.test';
/** Connections each contender must hold at once: the idle connections and some room. */
const MAX_CONNECTIONS = 9000;

export interface Contender {
  key: string;
  /** Column header, with the version where there is one. */
  label: string;
  port: number;
  pid: number;
  /** The process group's pids (found once it listens: nginx's master and worker). */
  pids: number[];
  logFile: string;
  /** Signals the process group (SIGKILL by default) and resolves once the leader exited, or after 10 s. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const groups = new Set<number>();
process.on('exit', () => {
  // Also on a failure: leave nothing running.
  for (const group of groups) killGroup(group);
});

function killGroup(group: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-group, signal);
  } catch {} // already gone
}

/**
 * Runs `command` in a process group of its own, output to `logFile`, and
 * resolves once `port` listens (rejects if it exits first or takes 10 s).
 */
async function startGroup(
  key: string,
  label: string,
  command: string,
  args: string[],
  port: number,
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Contender> {
  const output = openSync(logFile, 'w');
  const child = spawn(command, args, { stdio: ['ignore', output, output], detached: true, env });
  closeSync(output);
  const pid = child.pid!;
  groups.add(pid);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = Date.now();
  while (!isListening(port)) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() - started > 10_000) {
      killGroup(pid);
      throw new Error(`${label} did not listen on ${port}: ${readFileSync(logFile, 'utf8').trim().slice(-2000)}`);
    }
    await sleep(20);
  }
  return {
    key,
    label,
    port,
    pid,
    pids: processTree(pid),
    logFile,
    stop: async (signal = 'SIGKILL') => {
      killGroup(pid, signal);
      await Promise.race([exited, sleep(10_000)]);
      killGroup(pid);
      groups.delete(pid);
    },
  };
}

/** The path of `program` on PATH or in the sbin directories, or null. */
export function findProgram(program: string): string | null {
  const directories = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'].filter((directory) => directory.startsWith('/'));
  return directories.map((directory) => join(directory, program)).find(existsSync) ?? null;
}

/** sni-passthrough as a user runs it: the CLI, JSON log lines to a file, metrics on an admin endpoint on loopback. */
export async function startSniPassthrough(
  workDirectory: string,
  backendPort: number,
  logLevel: 'info' | 'warn',
  nodeOptions: string[] = [],
  /** Worker processes (1: the single process). */
  workers = 1,
): Promise<Contender> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const name = workers === 1 ? `sni-passthrough-${logLevel}` : `sni-passthrough-${logLevel}-${workers}-workers`;
  const configFile = join(workDirectory, `${name}.yaml`);
  writeFileSync(
    configFile,
    stringify({
      admin: { listen: `${HOST}:${adminPort}` },
      listeners: [{ name: 'bench', listen: `${HOST}:${port}`, routes: [{ hostnames: [RAW_NAME, TLS_NAME], backends: [`${HOST}:${backendPort}`] }] }],
    }),
  );
  const args = ['--config', configFile, '--log-format', 'json', '--log-level', logLevel, '--workers', String(workers)];
  const [key, label] =
    workers === 1 ? [`sni-${logLevel}`, `sni-passthrough, ${logLevel}`] : [`sni-${logLevel}-${workers}w`, `sni-passthrough, ${logLevel}, ${workers} workers`];
  // Run as a program, as the installed command runs: it sets the allocator's and V8's options itself.
  // With options for node (--cpu-prof, which NODE_OPTIONS refuses), node runs it with the command's settings and those.
  if (nodeOptions.length === 0) return startGroup(key, label, cliPath, args, port, join(workDirectory, `${name}.log`));
  const launch = commandLaunch();
  const env = { ...process.env, ...launch.env };
  return startGroup(key, label, process.execPath, [...launch.nodeOptions, ...nodeOptions, cliPath, ...args], port, join(workDirectory, `${name}.log`), env);
}

export const relayPath = fileURLToPath(new URL('./naive-relay.mjs', import.meta.url));
export const RELAY_LINES = readFileSync(relayPath, 'utf8').trimEnd().split('\n').length;

export async function startRelay(workDirectory: string, backendPort: number): Promise<Contender> {
  const port = await freePort();
  return startGroup(
    'relay',
    `naive relay (${RELAY_LINES} lines)`,
    process.execPath,
    [relayPath, String(port), String(backendPort)],
    port,
    join(workDirectory, 'relay.log'),
  );
}

/**
 * The path of `program`, installing Debian's `debianPackage` when it is
 * missing and we are root; or why there is none.
 */
export function debianProgram(program: string, debianPackage: string): { path: string; note?: string } | { reason: string } {
  const found = findProgram(program);
  if (found) return { path: found };
  const command = `apt-get install -y ${debianPackage}`;
  if (process.getuid?.() !== 0) return { reason: `${program} is not installed (as root the bench installs it: ${command})` };
  process.stderr.write(`  installing ${program}: ${command}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): ReturnType<typeof spawnSync> => spawnSync('apt-get', ['install', '-y', debianPackage], { encoding: 'utf8', env, timeout: 180_000 });
  let result = install();
  if (result.status !== 0) {
    spawnSync('apt-get', ['update'], { encoding: 'utf8', env, timeout: 120_000 });
    result = install();
  }
  const installed = findProgram(program);
  if (installed) return { path: installed, note: `${program} was installed for this run from Debian's packages (${command})` };
  const why = `${result.error?.message ?? ''} ${result.stderr ?? ''}`.trim().split('\n').pop();
  return { reason: `${program} could not be installed (${command}: ${why || `exit ${result.status}`})` };
}

export function programVersion(path: string, pattern: RegExp): string {
  const result = spawnSync(path, ['-v'], { encoding: 'utf8' });
  return pattern.exec(`${result.stdout}${result.stderr}`)?.[1] ?? 'unknown';
}

/** HAProxy in one thread, `mode tcp`, routing by `req.ssl_sni` once it has the hello; no logging. */
export async function startHaproxy(workDirectory: string, program: string, backendPort: number): Promise<Contender> {
  const port = await freePort();
  const configFile = join(workDirectory, 'haproxy.cfg');
  writeFileSync(
    configFile,
    `global
  nbthread 1
  maxconn ${MAX_CONNECTIONS}
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend bench
  bind ${HOST}:${port}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend backend if { req.ssl_sni -i ${RAW_NAME} ${TLS_NAME} }
backend backend
  server one ${HOST}:${backendPort}
`,
  );
  const version = programVersion(program, /version (\d+\.\d+(?:\.\d+)?)/);
  return startGroup('haproxy', `HAProxy ${version}, 1 thread`, program, ['-db', '-f', configFile], port, join(workDirectory, 'haproxy.log'));
}

/** nginx's stream module in one worker, `ssl_preread` choosing the backend by server name; no access log. */
export async function startNginx(workDirectory: string, program: string, backendPort: number): Promise<Contender> {
  const port = await freePort();
  const configFile = join(workDirectory, 'nginx.conf');
  const module = ['/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/lib64/nginx/modules/ngx_stream_module.so'].find(existsSync);
  writeFileSync(
    configFile,
    `${module ? `load_module ${module};\n` : ''}daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile ${2 * MAX_CONNECTIONS + 100};
pid ${join(workDirectory, 'nginx.pid')};
error_log ${join(workDirectory, 'nginx-error.log')} warn;
events { worker_connections ${2 * MAX_CONNECTIONS}; }
stream {
  map $ssl_preread_server_name $backend {
    ${RAW_NAME} ${HOST}:${backendPort};
    ${TLS_NAME} ${HOST}:${backendPort};
  }
  server {
    listen ${HOST}:${port};
    ssl_preread on;
    proxy_pass $backend;
    proxy_connect_timeout 5s;
    proxy_timeout 1h;
  }
}
`,
  );
  const version = programVersion(program, /nginx\/(\d+\.\d+(?:\.\d+)?)/);
  const args = ['-p', workDirectory, '-e', join(workDirectory, 'nginx-error.log'), '-c', configFile];
  // Without the stream module (Debian: libnginx-mod-stream) or ssl_preread the test says which directive is unknown.
  const test = spawnSync(program, ['-t', ...args], { encoding: 'utf8' });
  if (test.status !== 0) throw new Error(`nginx ${version} cannot run the stream config: ${test.stderr.trim().split('\n')[0]}`);
  return startGroup('nginx', `nginx ${version} stream, 1 worker`, program, args, port, join(workDirectory, 'nginx.log'));
}

/** `git describe` of the tree the bench runs, for the report's header. */
export function sourceRevision(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}
