// The command line through the compiled CLI: `check`, config errors with
// FILE:LINE:COL, --version, --help, a port that is taken, and graceful
// shutdown (drain, drainTimeout, a second signal).
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { startTlsBackend, unusedAddress } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { cliPath, projectRoot, runCli, startProxy, writeConfig, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard, sleep } from '../helpers/wait.js';
import { tryConnect } from '../helpers/raw-client.js';
import { positionOf } from '../helpers/text-position.js';

const ca = await createCertificateAuthority();
const HOSTNAME = 'app.example.com';

/**
 * Runs the proxy CLI where it is expected to exit by itself (a startup
 * failure); unlike `runCli` it kills the process if it is still running after
 * `guardMs`, so a proxy that wrongly starts serving cannot hang the test.
 */
function runCliExpectingExit(args: string[], guardMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, guardMs);
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, killed });
    });
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Resolves once `socket` has closed. */
function closed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

const unknownKeyYaml = [
  'listeners:',
  '  - name: public',
  '    listen: 127.0.0.1:0',
  '    bogus: 1',
  '    routes:',
  '      - hostnames: [app.example.com]',
  '        backends: [127.0.0.1:9443]',
  '',
].join('\n');

const duplicateHostnameYaml = [
  'listeners:',
  '  - name: public',
  '    listen: 127.0.0.1:0',
  '    routes:',
  '      - hostnames: [app.example.com]',
  '        backends: [127.0.0.1:9443]',
  '      - hostnames: [other.example.com, APP.Example.com.]',
  '        backends: [127.0.0.1:9444]',
  '',
].join('\n');

t.test('check --config prints the listeners and routes and exits 0', async (t) => {
  const file = await writeConfig({
    defaults: { idleTimeout: '5m' },
    listeners: [
      {
        name: 'public',
        listen: '127.0.0.1:0',
        routes: [
          { hostnames: ['app.example.com', '*.dev.example.com'], backends: ['127.0.0.1:9443', { address: '127.0.0.1:9444', weight: 2 }] },
          { hostnames: ['*.example.com'], backends: ['backend.internal:9445'] },
        ],
        default: { backends: ['127.0.0.1:9446'] },
      },
      { name: 'second', listen: '127.0.0.2:0', routes: [{ hostnames: ['only.example.org'], backends: ['127.0.0.1:9447'] }] },
    ],
  });
  const result = await runCli(['check', '--config', file]);
  t.equal(result.code, 0, 'exit 0');
  t.equal(result.stderr, '', 'nothing on stderr');
  for (const expected of [
    'public',
    '127.0.0.1:0',
    'second',
    '127.0.0.2:0',
    'app.example.com',
    '*.dev.example.com',
    '*.example.com',
    'only.example.org',
    '127.0.0.1:9443',
    '127.0.0.1:9444',
    'backend.internal:9445',
    '127.0.0.1:9446',
    '127.0.0.1:9447',
    'default',
  ]) {
    t.ok(result.stdout.includes(expected), `the summary mentions ${expected}`);
  }
  t.match(result.stdout, /weight 2/, 'and the weight');
  t.match(result.stdout, /idleTimeout 5m/, 'and the effective timeouts');
  t.notOk(result.stdout.includes('{"level"'), 'check does not start the proxy (no log lines)');
});

t.test('check: a bad file exits 1 with FILE:LINE:COL: message', async (t) => {
  t.test('unknown key', async (t) => {
    const file = await writeConfig(unknownKeyYaml);
    const { line, col } = positionOf(unknownKeyYaml, 'bogus');
    const result = await runCli(['check', '--config', file]);
    t.equal(result.code, 1, 'exit 1');
    t.match(result.stderr, new RegExp(`^${escapeRegExp(file)}:${line}:${col}: .*bogus`, 'm'), `points at ${line}:${col}: ${result.stderr.trim()}`);
    t.equal(result.stdout, '', 'nothing on stdout');
  });

  t.test('duplicate hostname (differing only in case and a trailing dot): the error points at the second', async (t) => {
    const file = await writeConfig(duplicateHostnameYaml);
    const { line, col } = positionOf(duplicateHostnameYaml, 'APP.Example.com.');
    const result = await runCli(['check', '--config', file]);
    t.equal(result.code, 1, 'exit 1');
    t.match(
      result.stderr,
      new RegExp(`^${escapeRegExp(file)}:${line}:${col}: .*app\\.example\\.com`, 'm'),
      `points at ${line}:${col}: ${result.stderr.trim()}`,
    );
  });

  t.test('a file that does not exist', async (t) => {
    const file = join(projectRoot, 'test', 'no-such-config.yaml');
    const result = await runCli(['check', '--config', file]);
    t.equal(result.code, 1, 'exit 1');
    t.match(result.stderr, file, `names the file: ${result.stderr.trim()}`);
  });
});

t.test('--version prints the package version', async (t) => {
  const { version } = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string };
  const result = await runCli(['--version']);
  t.equal(result.code, 0, 'exit 0');
  t.equal(result.stdout.trim(), version, `prints ${version}`);
});

t.test('--help shows the usage, the options and the check command', async (t) => {
  const result = await runCli(['--help']);
  t.equal(result.code, 0, 'exit 0');
  t.match(result.stdout, /Usage: sni-passthrough/, 'usage line');
  t.match(result.stdout, /--config/, 'the --config option');
  t.match(result.stdout, /--log-format/, 'the --log-format option');
  t.match(result.stdout, /--log-level/, 'the --log-level option');
  t.match(result.stdout, /^\s+check\b/m, 'the check command');
});

t.test('a port that is already taken: exit 1, one line naming the address, with a hint', async (t) => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const { port } = holder.address() as net.AddressInfo;
  const file = await writeConfig({ listeners: [{ name: 'taken', listen: `127.0.0.1:${port}`, default: { backends: [await unusedAddress()] } }] });
  const result = await runCliExpectingExit(['--config', file, '--log-format', 'json']);
  t.notOk(result.killed, 'the proxy exited by itself');
  t.equal(result.code, 1, 'exit 1');
  const lines = result.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${result.stderr.trim()}`);
  t.match(lines[0], `127.0.0.1:${port}`, 'names the address');
  t.match(lines[0], /another process/, 'hints at another process');
});

t.test('a config error at startup: exit 1 with FILE:LINE:COL: message', async (t) => {
  const file = await writeConfig(unknownKeyYaml);
  const { line, col } = positionOf(unknownKeyYaml, 'bogus');
  const result = await runCliExpectingExit(['--config', file, '--log-format', 'json']);
  t.notOk(result.killed, 'the proxy exited by itself');
  t.equal(result.code, 1, 'exit 1');
  t.match(
    result.stderr,
    new RegExp(`^${escapeRegExp(file)}:${line}:${col}: .*bogus`),
    `starts with ${line}:${col}, as check prints it: ${result.stderr.trim()}`,
  );
  t.equal(result.stderr.trim().split('\n').length, 1, 'one line');
});

t.test('graceful shutdown', async (t) => {
  const backend = await startTlsBackend(ca, 'echo');
  t.teardown(() => backend.close());
  const config = (drainTimeout?: string): unknown => ({
    listeners: [
      { name: 'main', listen: '127.0.0.1:0', ...(drainTimeout ? { drainTimeout } : {}), routes: [{ hostnames: [HOSTNAME], backends: [backend.address] }] },
    ],
  });
  const shuttingDown = (proxy: ProxyProcess): Promise<unknown> => proxy.waitForLog((line) => /shutting down/.test(line.msg), 5_000);

  t.test('SIGTERM: new connections are refused, an open one keeps working, exit 0 when it ends', async (t) => {
    const proxy = await startProxy(config());
    t.teardown(() => proxy.stop('SIGKILL'));
    const port = proxy.port('main');
    const socket = await connectTls({ port, servername: HOSTNAME, ca: ca.cert });
    socket.on('error', () => {});
    const key = `127.0.0.1:${socket.localPort}`;
    t.equal(JSON.parse(await readLine(socket)).backend, 'echo', 'the long-lived connection is up');

    proxy.child.kill('SIGTERM');
    await shuttingDown(proxy);
    // The listening socket closes just after the 'shutting down' line is written, not before it: poll (bounded).
    let attempt = '';
    for (let round = 0; round < 100; round++) {
      attempt = await guard(tryConnect(port), 30_000, 'a new connection attempt');
      if (attempt === 'ECONNREFUSED') break;
      await sleep(20);
    }
    t.equal(attempt, 'ECONNREFUSED', 'new connections are refused');

    socket.write('still here\n');
    t.equal(await guard(readLine(socket), 30_000, 'the echo during drain'), 'still here', 'the open connection still echoes');
    t.equal(proxy.child.exitCode, null, 'the proxy is still running while the connection is open');

    socket.end();
    t.equal(await guard(proxy.exited, 30_000, 'the proxy to exit once the connection ended'), 0, 'exit 0');
    const log = proxy.connectionLogs().find((line) => line.client === key);
    t.equal(log?.outcome, 'ok', 'the drained connection is logged as ok');
  });

  t.test('drainTimeout: a connection still open is closed and the process exits 0', async (t) => {
    const proxy = await startProxy(config('500ms'));
    t.teardown(() => proxy.stop('SIGKILL'));
    const socket = await connectTls({ port: proxy.port('main'), servername: HOSTNAME, ca: ca.cert });
    socket.on('error', () => {});
    const key = `127.0.0.1:${socket.localPort}`;
    await readLine(socket);

    proxy.child.kill('SIGTERM');
    await guard(closed(socket), 30_000, 'the proxy to close the connection after drainTimeout');
    t.pass('the proxy closed the open connection');
    t.equal(await guard(proxy.exited, 30_000, 'the proxy to exit'), 0, 'exit 0');
    const log = proxy.connectionLogs().find((line) => line.client === key);
    t.equal(log?.outcome, 'shutdown', 'logged with outcome shutdown');
  });

  t.test('a second SIGTERM during the drain exits at once', async (t) => {
    const proxy = await startProxy(config('30s'));
    t.teardown(() => proxy.stop('SIGKILL'));
    const socket = await connectTls({ port: proxy.port('main'), servername: HOSTNAME, ca: ca.cert });
    socket.on('error', () => {});
    await readLine(socket);

    proxy.child.kill('SIGTERM');
    await shuttingDown(proxy);
    t.equal(proxy.child.exitCode, null, 'still draining after the first signal');
    proxy.child.kill('SIGTERM');
    const code = await guard(proxy.exited, 30_000, 'the proxy to exit on the second signal (drainTimeout is 30 s)');
    t.pass(`exited with ${code} on the second signal`);
    await guard(closed(socket), 30_000, 'the open connection to be closed');
    t.pass('the open connection was closed');
    // The contract: exactly one log line per connection when it closes, also for those a forced exit drops.
    const logs = proxy.connectionLogs();
    t.equal(logs.length, 1, 'the connection dropped by the forced exit still gets its log line');
    t.equal(logs[0]?.outcome, 'shutdown', 'with outcome shutdown');
  });

  t.test('SIGINT also shuts down gracefully (exit 0)', async (t) => {
    const proxy = await startProxy(config());
    t.teardown(() => proxy.stop('SIGKILL'));
    const port = proxy.port('main');
    const socket = await connectTls({ port, servername: HOSTNAME, ca: ca.cert });
    socket.on('error', () => {});
    await readLine(socket);
    proxy.child.kill('SIGINT');
    await shuttingDown(proxy);
    socket.write('after SIGINT\n');
    t.equal(await guard(readLine(socket), 30_000, 'the echo during drain'), 'after SIGINT', 'the open connection still echoes');
    socket.end();
    t.equal(await guard(proxy.exited, 30_000, 'the proxy to exit'), 0, 'exit 0 once the connection ended');
  });
});
