// The log stream of the compiled CLI:
// - a line logged on an otherwise idle proxy reaches stdout with nothing else
//   happening (the asynchronous destination's periodic flush);
// - under systemd, when JOURNAL_STREAM names stdout's device and inode, each
//   JSON line starts with its syslog priority (`<6>{...}`), and not when the
//   variable names something else (stdout redirected, the variable inherited).
//   stdout is a regular file here, whose dev:ino the test reads itself.
import t, { type Test } from 'tap';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unusedAddress } from '../helpers/backends.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record } from '../helpers/client-hello-fixtures.js';
import { cliPath, startProxy, writeConfig } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { guard, sleep } from '../helpers/wait.js';

const GUARD_MS = 20_000;

/** One connection that sends a ClientHello for `serverName` and waits for the proxy to close it. */
async function helloFor(port: number, serverName: string): Promise<void> {
  const socket = await connectRaw(port);
  socket.on('error', () => {});
  const closed = readUntilClosed(socket);
  socket.write(record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName })));
  await guard(closed, GUARD_MS, 'the proxy closing the connection');
}

const config = async (): Promise<Record<string, unknown>> => ({
  listeners: [{ name: 'public', listen: '127.0.0.1:0', routes: [{ hostnames: ['dead.example.com'], backends: [await unusedAddress()] }] }],
});

t.test('a line logged on an otherwise idle proxy reaches stdout', async (t) => {
  const proxy = await startProxy(await config(), { args: ['--no-watch'] });
  t.teardown(() => proxy.stop('SIGKILL'));
  await helloFor(proxy.port('public'), 'unknown.example.com');
  // Nothing else happens from here on: no connection, no signal, no reload.
  const line = await proxy.waitForLog((entry) => entry.msg === 'connection closed', GUARD_MS);
  t.match(line, { outcome: 'no_route', sni: 'unknown.example.com' });
});

interface FileLogged {
  text(): Promise<string>;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** Runs the CLI with stdout on a regular file; `journalStream(dev, ino)` gives JOURNAL_STREAM from that file's identity. */
async function runWithStdoutFile(t: Test, journalStream: (dev: number, ino: number) => string): Promise<FileLogged> {
  const directory = await mkdtemp(join(tmpdir(), 'sni-journal-'));
  const configFile = await writeConfig(await config(), directory);
  const logFile = join(directory, 'stdout.log');
  const handle = await open(logFile, 'w');
  const { dev, ino } = await handle.stat();
  const child = spawn(process.execPath, [cliPath, '--config', configFile, '--log-format', 'json', '--no-watch'], {
    stdio: ['ignore', handle.fd, 'pipe'],
    env: { ...process.env, JOURNAL_STREAM: journalStream(dev, ino) },
  });
  await handle.close();
  child.stderr!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const stop = (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return guard(exited, GUARD_MS, 'the proxy exiting');
  };
  t.teardown(async () => {
    await stop();
    await rm(directory, { recursive: true, force: true });
  });
  return { text: () => readFile(logFile, 'utf8'), exited, stop };
}

/** Polls the stdout file for the `listening` line (prefixed or not) and returns its port. */
async function listeningPort(run: FileLogged): Promise<number> {
  for (let attempt = 0; attempt < GUARD_MS / 50; attempt++) {
    const address = /"address":"127\.0\.0\.1:(\d+)"[^\n]*"msg":"listening"/.exec(await run.text());
    if (address) return Number(address[1]);
    await sleep(50);
  }
  throw new Error(`no listening line in the stdout file: ${await run.text()}`);
}

t.test('JOURNAL_STREAM naming stdout: each line starts with its syslog priority', async (t) => {
  const run = await runWithStdoutFile(t, (dev, ino) => `${dev}:${ino}`);
  const port = await listeningPort(run);
  await helloFor(port, 'unknown.example.com');
  await helloFor(port, 'dead.example.com');
  t.equal(await run.stop(), 0);
  const lines = (await run.text()).split('\n').filter((line) => line !== '');
  t.ok(lines.length >= 5, `lines written (${lines.length})`);
  for (const line of lines) {
    const match = /^<(\d)>(\{.*\})$/.exec(line);
    t.ok(match, `prefixed: ${line.slice(0, 60)}`);
    if (!match) continue;
    const level = (JSON.parse(match[2]!) as { level: number }).level;
    t.equal(Number(match[1]), { 30: 6, 40: 4, 50: 3 }[level], `level ${level} → <${match[1]}>`);
  }
  t.ok(
    lines.some((line) => line.startsWith('<4>') && line.includes('"outcome":"backend_unreachable"')),
    'the unreachable backend at warning: <4>',
  );
  t.ok(
    lines.some((line) => line.startsWith('<6>') && line.includes('"msg":"ready"')),
    'ready at info: <6>',
  );
});

t.test('JOURNAL_STREAM naming another stream: plain JSON lines', async (t) => {
  const run = await runWithStdoutFile(t, (dev, ino) => `${dev}:${ino + 1}`);
  const port = await listeningPort(run);
  await helloFor(port, 'dead.example.com');
  t.equal(await run.stop(), 0);
  const lines = (await run.text()).split('\n').filter((line) => line !== '');
  t.ok(lines.length >= 4, `lines written (${lines.length})`);
  t.ok(
    lines.every((line) => line.startsWith('{"level":')),
    'no prefix on any line',
  );
  t.ok(
    lines.some((line) => (JSON.parse(line) as { outcome?: string }).outcome === 'backend_unreachable'),
    'the same lines, unprefixed',
  );
});

/** Starts the CLI with stdout on a pipe and `args`; resolves once `ready` appears in its output. */
async function runPiped(t: Test, args: string[]): Promise<{ child: ChildProcess; output(): string; exited: Promise<number | null> }> {
  const configFile = await writeConfig(await config());
  const child = spawn(process.execPath, [cliPath, '--config', configFile, '--no-watch', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += String(chunk)));
  child.stderr!.on('data', (chunk: Buffer) => (output += String(chunk)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let attempt = 0; attempt < GUARD_MS / 50 && !/\bready\b/.test(output); attempt++) await sleep(50);
  t.match(output, /\bready\b/, 'ready');
  return { child, output: () => output, exited };
}

t.test('--log-format pretty: one human-readable line per event', async (t) => {
  const run = await runPiped(t, ['--log-format', 'pretty']);
  const ready = run
    .output()
    .split('\n')
    .find((line) => /\bready\b/.test(line));
  t.match(ready, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ready /, `pretty, not JSON (${ready})`);
  run.child.kill('SIGTERM');
  t.equal(await guard(run.exited, GUARD_MS, 'the exit'), 0);
  t.match(run.output(), /INFO: stopped/, 'the last line written before the exit');
});

t.test('stdout closed by its reader: log lines are dropped and the proxy still exits at once', async (t) => {
  const run = await runPiped(t, ['--log-format', 'json']);
  run.child.stdout!.destroy();
  const port = Number(/"address":"127\.0\.0\.1:(\d+)"[^\n]*"msg":"listening"/.exec(run.output())![1]);
  // Lines to write into the closed pipe (EPIPE), then a shutdown that must not wait for them.
  for (let index = 0; index < 5; index++) await helloFor(port, 'unknown.example.com');
  run.child.kill('SIGTERM');
  t.equal(await guard(run.exited, GUARD_MS, 'the exit with stdout closed'), 0);
});
