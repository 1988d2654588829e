import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const cliPath = join(projectRoot, 'bin', 'sni-passthrough.js');

/**
 * What the command sets when it is run as a program (its second line, for
 * sh: `export NAME=value; exec node FLAGS "$0" "$@"`): the variables, and
 * node's options. For whatever must run it the same way without sh (the
 * container image, the bench's profiler).
 */
export function commandLaunch(): { env: Record<string, string>; nodeOptions: string[] } {
  const line = readFileSync(cliPath, 'utf8').split('\n', 2)[1] ?? '';
  const env = Object.fromEntries([...line.matchAll(/export (\w+)=(\S+?);/g)].map(([, name, value]) => [name!, value!]));
  const flags = /exec node (.*?) "\$0"/.exec(line)?.[1] ?? '';
  return { env, nodeOptions: flags.split(/\s+/).filter(Boolean) };
}

export type LogLine = Record<string, unknown> & { msg: string; level: number };

export interface ProxyProcess {
  child: ChildProcess;
  configFile: string;
  logs: LogLine[];
  stderr(): string;
  /** The bound "host:port" of a listener, from its `listening` log line or the reload that bound it. */
  address(listener: string): string;
  port(listener: string): number;
  /** Resolves with the first log line (past or future) matching `predicate`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Connection log lines so far. */
  connectionLogs(): LogLine[];
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Writes `config` (an object or YAML text) to a fresh temp file and returns its path. */
export async function writeConfig(config: unknown, directory?: string): Promise<string> {
  const folder = directory ?? (await mkdtemp(join(tmpdir(), 'sni-passthrough-test-')));
  const file = join(folder, 'proxy.yaml');
  await writeFile(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

/**
 * Runs the CLI (`node bin/sni-passthrough.js`) with `args`; resolves with exit code and output.
 * `env` is added to this process's environment; `launcher` runs node through another command (e.g. `setpriv ...`).
 */
export function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; launcher?: string[] } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const [command, ...prefix] = [...(options.launcher ?? []), process.execPath];
    const child = spawn(command!, [...prefix, cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/**
 * Starts the proxy CLI on `config` with JSON logs and resolves once it logs
 * `ready` (rejects if it exits first). Listeners should use port 0; their
 * real addresses come from the `listening` lines.
 */
export async function startProxy(
  config: unknown,
  /** `launcher`: a command that runs node with the rest of the line, e.g. `['prlimit', '--nofile=64:64']`. */
  options: { args?: string[]; env?: NodeJS.ProcessEnv; configFile?: string; launcher?: string[]; readyTimeoutMs?: number } = {},
): Promise<ProxyProcess> {
  const configFile = options.configFile ?? (await writeConfig(config));
  return startCli(['--config', configFile, '--log-format', 'json', ...(options.args ?? [])], { ...options, configFile });
}

/**
 * Starts the CLI with `args` (which must ask for JSON logs) and resolves
 * once it logs `ready`, as `startProxy` does; for commands other than a run
 * on a config file (`serve`). `program` replaces `node bin/sni-passthrough.js`
 * (e.g. `podman run ... IMAGE`); `readyTimeoutMs` is the guard on `ready`.
 */
export async function startCli(
  args: string[],
  /** `readyTimeoutMs`: a hang guard (default 60 s); a proxy that is not ready by then is killed. */
  options: { env?: NodeJS.ProcessEnv; configFile?: string; launcher?: string[]; program?: string[]; readyTimeoutMs?: number } = {},
): Promise<ProxyProcess> {
  const configFile = options.configFile ?? '';
  const [command, ...prefix] = [...(options.launcher ?? []), ...(options.program ?? [process.execPath, cliPath])];
  const child = spawn(command!, [...prefix, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  const logs: LogLine[] = [];
  const waiters: Array<{ predicate: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text, level: 0 };
    }
    logs.push(line);
    for (const waiter of waiters.slice()) {
      if (waiter.predicate(line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const exited = new Promise<number | null>((resolvePromise) => child.on('exit', (code) => resolvePromise(code)));

  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> => {
    const found = logs.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}; last lines: ${JSON.stringify(logs.slice(-5))}`));
      }, timeoutMs);
      const waiter = {
        predicate,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolvePromise(line);
        },
      };
      waiters.push(waiter);
    });
  };

  const proxy: ProxyProcess = {
    child,
    configFile,
    logs,
    stderr: () => stderr,
    address(listener) {
      // Bound at start (a `listening` line) or by a reload (its `bound` map); the latest wins.
      for (let index = logs.length - 1; index >= 0; index--) {
        const entry = logs[index]!;
        if (entry.msg === 'listening' && entry.listener === listener) return String(entry.address);
        const bound = entry.msg === 'config reloaded' ? (entry.bound as Record<string, string>)[listener] : undefined;
        if (bound) return bound;
      }
      throw new Error(`listener ${listener} is not listening; logs: ${JSON.stringify(logs)}`);
    },
    port(listener) {
      return Number(proxy.address(listener).split(':').pop());
    },
    waitForLog,
    connectionLogs: () => logs.filter((line) => line.msg === 'connection closed'),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    exited,
  };

  const ready = waitForLog((line) => line.msg === 'ready', options.readyTimeoutMs ?? 60_000);
  const failed = exited.then((code) => {
    throw new Error(`proxy exited with ${code} before it was ready: ${stderr}`);
  });
  // A proxy that never got ready must not outlive the test (with its worker processes, if any).
  await Promise.race([ready, failed]).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  failed.catch(() => {});
  return proxy;
}
