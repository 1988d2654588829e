// systemd integration through the compiled CLI, as far as a machine without
// systemd as PID 1 allows:
// - sd_notify: the datagrams the proxy sends, received on a real unix
//   datagram socket (a python3 receiver: Node has no unix datagram sockets);
//   nothing is spawned when NOTIFY_SOCKET is unset;
// - socket activation with inherited descriptors, passed by
//   `systemd-socket-activate` (by name and by address; a socket no listener
//   claims stops the start), and a restart under load with zero refused
//   connections while test/helpers/socket-holder.py holds the socket open;
// - `systemd-analyze verify` on copies of contrib/systemd/.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import t from 'tap';
import { stringify } from 'yaml';
import { startTlsBackend, unusedAddress, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { cliPath, projectRoot, startProxy, writeConfig } from '../helpers/proxy-process.js';
import { readLine } from '../helpers/tls-client.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';
import { which } from '../helpers/programs.js';
import { tryConnect } from '../helpers/raw-client.js';

const GUARD_MS = 20_000;
const ca = await createCertificateAuthority();

const python = await which('python3');
const socketActivate = await which('systemd-socket-activate');
const systemdAnalyze = await which('systemd-analyze');
const systemdNotify = await which('systemd-notify');
const linux = process.platform === 'linux';

type Line = Record<string, unknown>;

/** A child process whose stdout is JSON lines (anything else is kept as `{ text }`). */
interface LineProcess {
  child: ChildProcess;
  lines: Line[];
  stderr(): string;
  onLine(listener: (line: Line) => void): void;
  /** The first line (past or future) matching `predicate` from index `from` on. */
  waitForLine(predicate: (line: Line) => boolean, what: string, timeoutMs?: number, from?: number): Promise<Line>;
  send(text: string): void;
  exited: Promise<number | null>;
  kill(): Promise<number | null>;
}

const running = new Set<LineProcess>();

function spawnWithLines(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): LineProcess {
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  const lines: Line[] = [];
  const listeners: Array<(line: Line) => void> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  child.stdin!.on('error', () => {});
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
      if (typeof line !== 'object' || line === null) line = { text };
    } catch {
      line = { text };
    }
    lines.push(line);
    for (const listener of listeners.slice()) listener(line);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const process_: LineProcess = {
    child,
    lines,
    stderr: () => stderr,
    onLine: (listener) => void listeners.push(listener),
    waitForLine(predicate, what, timeoutMs = GUARD_MS, from = 0) {
      const found = lines.slice(from).find(predicate);
      if (found) return Promise.resolve(found);
      return guard(
        new Promise<Line>((resolve) => {
          const listener = (line: Line): void => {
            if (!predicate(line)) return;
            listeners.splice(listeners.indexOf(listener), 1);
            resolve(line);
          };
          listeners.push(listener);
        }),
        timeoutMs,
        `${what} (stderr: ${stderr}; last lines: ${JSON.stringify(lines.slice(-5))})`,
      );
    },
    send: (text) => void child.stdin!.write(`${text}\n`),
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(5_000).then(() => 'timeout' as const)]);
      if (code === 'timeout') {
        child.kill('SIGKILL');
        return exited;
      }
      return code;
    },
  };
  running.add(process_);
  void exited.then(() => running.delete(process_));
  return process_;
}

t.teardown(async () => {
  for (const process_ of [...running]) await process_.kill();
});

interface SessionResult {
  ok: boolean;
  error: string | null;
  backend: string | null;
  /** The client's own port: the `client` field of the proxy's log line is "127.0.0.1:<this>". */
  localPort: number | null;
}

/**
 * One whole TLS session through the proxy (handshake, the backend's identity
 * line, clean close). `onConnect` runs when the TCP connection is
 * established, which happens even when nobody accepts it yet (backlog).
 */
function session(port: number, servername: string, onConnect?: (socket: tls.TLSSocket) => void): Promise<SessionResult> {
  return new Promise((resolve) => {
    const result: SessionResult = { ok: false, error: null, backend: null, localPort: null };
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: ca.cert });
    const timer = setTimeout(() => socket.destroy(new Error('guard: session did not finish')), GUARD_MS * 2);
    socket.once('connect', () => {
      result.localPort = socket.localPort ?? null;
      onConnect?.(socket);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      result.error ??= error.code ?? error.message;
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(result);
    });
    socket.once('secureConnect', () => {
      readLine(socket).then(
        (line) => {
          result.backend = (JSON.parse(line) as BackendIdentity).backend;
          result.ok = result.error === null;
          socket.resume();
          socket.end();
        },
        (error: Error) => {
          result.error ??= error.message;
          socket.destroy();
        },
      );
    });
  });
}

/** Pids of the processes whose parent is `pid` (from /proc; Linux only). */
async function childrenOf(pid: number): Promise<Array<{ pid: number; comm: string }>> {
  const children: Array<{ pid: number; comm: string }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    if (ppid === pid) children.push({ pid: Number(entry), comm });
  }
  return children;
}

async function parentOf(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/^PPid:\s*(\d+)/m.exec(status)?.[1] ?? NaN);
  } catch {
    return null;
  }
}

/** Fields of one sd_notify datagram ("READY=1\nSTATUS=..."). */
function fieldsOf(message: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const assignment of message.split('\n')) {
    const equals = assignment.indexOf('=');
    if (equals > 0) fields[assignment.slice(0, equals)] = assignment.slice(equals + 1);
  }
  return fields;
}

/**
 * Binds a unix datagram socket at argv[1] and prints each datagram it
 * receives as one JSON line, with the sender's pid (SCM_CREDENTIALS).
 */
const NOTIFY_RECEIVER = `
import json, socket, struct, sys
receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
receiver.bind(sys.argv[1])
print(json.dumps({"bound": sys.argv[1]}), flush=True)
while True:
    data, ancillary, _flags, _address = receiver.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    print(json.dumps({"message": data.decode("utf-8", "replace"), "pid": pid}), flush=True)
`;

interface NotifyReceiver {
  socketPath: string;
  process: LineProcess;
  /** Datagrams so far, parsed. */
  messages(): Array<{ fields: Record<string, string>; raw: string; pid: number | null }>;
  /** The first message from index `from` on that has `key=value` (value optional). */
  waitFor(key: string, value: string | null, from?: number): Promise<{ fields: Record<string, string>; index: number; pid: number | null }>;
}

async function startNotifyReceiver(): Promise<NotifyReceiver> {
  const directory = await mkdtemp(join(tmpdir(), 'sni-notify-'));
  const socketPath = join(directory, 'notify.sock');
  const receiver = spawnWithLines(python!, ['-c', NOTIFY_RECEIVER, socketPath]);
  await receiver.waitForLine((line) => line.bound === socketPath, 'the notify receiver binding its socket');
  const messages = (): Array<{ fields: Record<string, string>; raw: string; pid: number | null }> =>
    receiver.lines
      .filter((line) => typeof line.message === 'string')
      .map((line) => ({ raw: String(line.message), fields: fieldsOf(String(line.message)), pid: line.pid as number | null }));
  return {
    socketPath,
    process: receiver,
    messages,
    async waitFor(key, value, from = 0) {
      const matches = (fields: Record<string, string>): boolean => key in fields && (value === null || fields[key] === value);
      await waitFor(
        () =>
          messages()
            .slice(from)
            .some((message) => matches(message.fields)),
        `sd_notify ${key}=${value ?? '*'} (got ${JSON.stringify(messages().map((m) => m.raw))})`,
        GUARD_MS,
        10,
      );
      const index = messages().findIndex((message, position) => position >= from && matches(message.fields));
      return { fields: messages()[index]!.fields, index, pid: messages()[index]!.pid };
    },
  };
}

function listenerConfig(name: string, listen: string, backend: TestBackend, hostnames = ['a.example.com']): Record<string, unknown> {
  return { name, listen, routes: [{ hostnames, backends: [backend.address] }] };
}

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

t.test(
  'sd_notify on a real unix datagram socket',
  { skip: python ? false : 'python3 is not installed (the test receiver and the proxy’s sender need it)' },
  async (t) => {
    const backend = await startTlsBackend(ca, 'A');
    t.teardown(() => backend.close());
    const receiver = await startNotifyReceiver();
    t.teardown(async () => {
      await receiver.process.kill();
      await rm(join(receiver.socketPath, '..'), { recursive: true, force: true });
    });

    // Ports picked beforehand, so a connection can be tried the moment READY=1 arrives.
    const ports = [portOf(await unusedAddress()), portOf(await unusedAddress())];
    const probes: Array<Promise<string[]>> = [];
    receiver.process.onLine((line) => {
      if (probes.length === 0 && typeof line.message === 'string' && fieldsOf(line.message).READY === '1') {
        probes.push(Promise.all(ports.map((port) => tryConnect(port))));
      }
    });

    const config = { listeners: [listenerConfig('one', `127.0.0.1:${ports[0]}`, backend), listenerConfig('two', `127.0.0.1:${ports[1]}`, backend)] };
    const proxy = await startProxy(config, { args: ['--no-watch'], env: { NOTIFY_SOCKET: receiver.socketPath } });
    t.teardown(() => proxy.stop('SIGKILL'));

    const ready = await receiver.waitFor('READY', '1');
    t.equal(ready.index, 0, 'READY=1 is the first message');
    t.same(await guard(probes[0]!, GUARD_MS, 'the probes'), ['connected', 'connected'], 'every listener accepts connections when READY=1 is seen');
    t.match(ready.fields.STATUS, /^generation 1, 0 open connections$/, 'STATUS= with the generation and open connections');

    if (linux) {
      // The sender is a helper process of the proxy, not its main pid: why the unit says NotifyAccess=all.
      t.not(ready.pid, proxy.child.pid, 'sent by a helper process');
      t.equal(await parentOf(ready.pid!), proxy.child.pid, 'whose parent is the proxy');
      const children = await childrenOf(proxy.child.pid!);
      t.ok(
        children.some((child) => /python/.test(child.comm)),
        `a python3 sender runs as a child of the proxy while NOTIFY_SOCKET is set (${JSON.stringify(children)})`,
      );
    }

    t.test('a reload: RELOADING=1 with MONOTONIC_USEC, then READY=1', async (t) => {
      const from = receiver.messages().length;
      await writeFile(proxy.configFile, stringify({ listeners: [...config.listeners, listenerConfig('three', '127.0.0.1:0', backend)] }));
      const before = process.hrtime.bigint() / 1000n;
      proxy.child.kill('SIGHUP');
      const reloading = await receiver.waitFor('RELOADING', '1', from);
      const after = process.hrtime.bigint() / 1000n;
      t.equal(reloading.index, from, 'RELOADING=1 is the first message of the reload');
      t.match(reloading.fields.MONOTONIC_USEC, /^\d+$/, 'MONOTONIC_USEC=<digits> in the same datagram');
      const usec = BigInt(reloading.fields.MONOTONIC_USEC!);
      // Both processes read CLOCK_MONOTONIC: the value lies between the test's readings around the reload (an order, not a duration).
      t.ok(usec >= before && usec <= after, `MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds (${before} <= ${usec} <= ${after})`);
      const readyAgain = await receiver.waitFor('READY', '1', from + 1);
      t.equal(readyAgain.index, from + 1, 'READY=1 right after');
      t.match(readyAgain.fields.STATUS, /^generation 2, /, 'STATUS= has the new generation');
      await proxy.waitForLog((line) => line.msg === 'config reloaded');
    });

    t.test('a refused reload still ends with READY=1, on the old generation', async (t) => {
      const from = receiver.messages().length;
      await writeFile(proxy.configFile, 'listeners:\n  - listen: 127.0.0.1:0\n    bogus: 1\n');
      proxy.child.kill('SIGHUP');
      const reloading = await receiver.waitFor('RELOADING', '1', from);
      t.equal(reloading.index, from);
      const readyAgain = await receiver.waitFor('READY', '1', from + 1);
      t.match(readyAgain.fields.STATUS, /^generation 2, /, 'still generation 2');
      await proxy.waitForLog((line) => line.msg.startsWith('config reload refused'));
    });

    t.test('SIGTERM: STOPPING=1', async (t) => {
      const from = receiver.messages().length;
      const code = await guard(proxy.stop('SIGTERM'), GUARD_MS, 'the proxy exiting');
      t.equal(code, 0, 'exit 0');
      const stopping = await receiver.waitFor('STOPPING', '1', from);
      t.match(stopping.fields.STATUS, /draining 0 connections/, 'STATUS= says what it drains');
      t.same(
        receiver
          .messages()
          .slice(from)
          .map((message) => Object.keys(message.fields).sort()),
        [['STATUS', 'STOPPING']],
        'one message at shutdown',
      );
    });
  },
);

t.test(
  'sd_notify without python3: one systemd-notify run per message',
  { skip: !python ? 'python3 is not installed (the test receiver needs it)' : !systemdNotify ? 'systemd-notify is not installed' : false },
  async (t) => {
    const backend = await startTlsBackend(ca, 'A');
    t.teardown(() => backend.close());
    const receiver = await startNotifyReceiver();
    const bin = await mkdtemp(join(tmpdir(), 'sni-path-'));
    t.teardown(async () => {
      await receiver.process.kill();
      await rm(join(receiver.socketPath, '..'), { recursive: true, force: true });
      await rm(bin, { recursive: true, force: true });
    });
    // A PATH with systemd-notify and nothing else: the proxy cannot start its python3 sender and falls back.
    await symlink(systemdNotify!, join(bin, 'systemd-notify'));
    const proxy = await startProxy(
      { listeners: [listenerConfig('one', '127.0.0.1:0', backend)] },
      { args: ['--no-watch'], env: { NOTIFY_SOCKET: receiver.socketPath, PATH: bin } },
    );
    t.teardown(() => proxy.stop('SIGKILL'));
    const ready = await receiver.waitFor('READY', '1');
    t.match(ready.fields.STATUS, /^generation 1, /);
    t.equal(ready.fields.MAINPID, String(proxy.child.pid), 'systemd-notify --pid names the proxy as the sender (MAINPID)');
    await writeFile(proxy.configFile, stringify({ listeners: [listenerConfig('one', '127.0.0.1:0', backend), listenerConfig('two', '127.0.0.1:0', backend)] }));
    proxy.child.kill('SIGHUP');
    const reloading = await receiver.waitFor('RELOADING', '1', ready.index + 1);
    t.match(reloading.fields.MONOTONIC_USEC, /^\d+$/);
    const readyAgain = await receiver.waitFor('READY', '1', reloading.index + 1);
    t.match(readyAgain.fields.STATUS, /^generation 2, /);
    t.equal(await guard(proxy.stop('SIGTERM'), GUARD_MS, 'exit'), 0);
    await receiver.waitFor('STOPPING', '1', readyAgain.index + 1);
    // systemd-notify (252) follows each message with its own BARRIER=1 datagram; the messages proper, in order:
    t.same(
      receiver
        .messages()
        .map((message) => ['READY', 'RELOADING', 'STOPPING'].filter((key) => key in message.fields).join('+'))
        .filter((keys) => keys !== ''),
      ['READY', 'RELOADING', 'READY', 'STOPPING'],
      'READY, RELOADING, READY, STOPPING',
    );
  },
);

t.test(
  'sd_notify via systemd-notify: a message still queued when the proxy is done is sent before it exits',
  { skip: !python ? 'python3 is not installed (the test receiver needs it)' : !systemdNotify ? 'systemd-notify is not installed' : false },
  async (t) => {
    const backend = await startTlsBackend(ca, 'A');
    t.teardown(() => backend.close());
    const receiver = await startNotifyReceiver();
    const bin = await mkdtemp(join(tmpdir(), 'sni-path-'));
    t.teardown(async () => {
      await receiver.process.kill();
      await rm(join(receiver.socketPath, '..'), { recursive: true, force: true });
      await rm(bin, { recursive: true, force: true });
    });
    // A systemd-notify that is slow to send READY=1: STOPPING=1 waits behind it in the proxy's queue, and a
    // proxy that exits once drained (at once: nothing is open) would leave it unsent.
    await writeFile(join(bin, 'systemd-notify'), `#!/bin/sh\ncase "$*" in *READY=1*) /bin/sleep 0.5 ;; esac\nexec ${systemdNotify} "$@"\n`, { mode: 0o755 });
    const proxy = await startProxy(
      { listeners: [listenerConfig('one', '127.0.0.1:0', backend)] },
      { args: ['--no-watch'], env: { NOTIFY_SOCKET: receiver.socketPath, PATH: bin } },
    );
    t.teardown(() => proxy.stop('SIGKILL'));
    // SIGTERM as soon as the proxy says it is ready, while its READY=1 is still on its way.
    t.equal(await guard(proxy.stop('SIGTERM'), GUARD_MS, 'exit'), 0, 'exit 0');
    await receiver.waitFor('STOPPING', '1');
    t.same(
      receiver
        .messages()
        .map((message) => ['READY', 'STOPPING'].filter((key) => key in message.fields).join('+'))
        .filter((keys) => keys !== ''),
      ['READY', 'STOPPING'],
      'READY, then STOPPING',
    );
  },
);

t.test('without NOTIFY_SOCKET nothing is spawned', { skip: linux ? false : 'reads /proc (Linux only)' }, async (t) => {
  const backend = await startTlsBackend(ca, 'A');
  t.teardown(() => backend.close());
  for (const value of [undefined, '']) {
    const proxy = await startProxy({ listeners: [listenerConfig('one', '127.0.0.1:0', backend)] }, { args: ['--no-watch'], env: { NOTIFY_SOCKET: value } });
    // The notifier would be spawned when the service is constructed, before `ready`.
    const children = await childrenOf(proxy.child.pid!);
    t.same(children, [], `no child process with NOTIFY_SOCKET=${JSON.stringify(value)}`);
    t.equal(await guard(proxy.stop('SIGTERM'), GUARD_MS, 'exit'), 0);
  }
});

/** Runs `systemd-socket-activate -l 127.0.0.1:PORT [--fdname=NAME] node cli --config FILE`; the proxy starts on the first connection. */
async function socketActivated(port: number, fdname: string | null, configFile: string): Promise<LineProcess> {
  const args = [
    '-l',
    `127.0.0.1:${port}`,
    ...(fdname ? [`--fdname=${fdname}`] : []),
    process.execPath,
    cliPath,
    '--config',
    configFile,
    '--log-format',
    'json',
    '--no-watch',
  ];
  const activator = spawnWithLines(socketActivate!, args);
  await waitFor(() => /Listening on/.test(activator.stderr()) || activator.child.exitCode !== null, 'systemd-socket-activate listening', GUARD_MS, 10);
  if (activator.child.exitCode !== null) throw new Error(`systemd-socket-activate exited: ${activator.stderr()}`);
  return activator;
}

t.test('socket activation with systemd-socket-activate', { skip: socketActivate ? false : 'systemd-socket-activate is not installed' }, async (t) => {
  const backend = await startTlsBackend(ca, 'A');
  t.teardown(() => backend.close());

  for (const how of ['by name', 'by address'] as const) {
    t.test(`the inherited socket is matched ${how} and serves TLS`, async (t) => {
      const port = portOf(await unusedAddress());
      // By name: the listener's own address is another one; by address: no LISTEN_FDNAMES at all.
      const configFile = await writeConfig({
        listeners: [
          listenerConfig('public', how === 'by name' ? '127.0.0.1:0' : `127.0.0.1:${port}`, backend),
          listenerConfig('other', '127.0.0.1:0', backend),
        ],
      });
      const activator = await socketActivated(port, how === 'by name' ? 'public' : null, configFile);
      t.teardown(() => activator.kill());
      // systemd-socket-activate starts the program on the first connection; that connection waits in the backlog and is served.
      const first = await session(port, 'a.example.com');
      t.same({ ok: first.ok, error: first.error, backend: first.backend }, { ok: true, error: null, backend: 'A' }, 'the connection that started it is served');
      await activator.waitForLine((line) => line.msg === 'ready', 'ready');
      const listening = activator.lines.filter((line) => line.msg === 'listening');
      const publicLine = listening.find((line) => line.listener === 'public');
      const otherLine = listening.find((line) => line.listener === 'other');
      t.equal(publicLine?.inherited, true, '`listening` for public says inherited: true');
      t.equal(publicLine?.address, `127.0.0.1:${port}`, 'on the inherited address');
      t.equal(otherLine?.inherited, false, 'the other listener binds its own socket');
      for (let index = 0; index < 3; index++) {
        const result = await session(port, 'a.example.com');
        t.equal(result.backend, 'A', `session ${index + 2} through the inherited socket`);
      }
      const result = await session(portOf(String(otherLine?.address)), 'a.example.com');
      t.equal(result.backend, 'A', 'and through the listener it bound itself');
      activator.child.kill('SIGTERM');
      t.equal(await guard(activator.exited, GUARD_MS, 'exit'), 0, 'SIGTERM: exit 0');
    });
  }

  t.test('connections waiting in the backlog at start are all served, whatever else the config binds first', async (t) => {
    const port = portOf(await unusedAddress());
    const configFile = await writeConfig({
      admin: { listen: 'localhost:0' },
      listeners: [listenerConfig('first', 'localhost:0', backend), listenerConfig('public', '127.0.0.1:0', backend)],
    });
    const activator = await socketActivated(port, 'public', configFile);
    t.teardown(() => activator.kill());
    // The first connection starts the proxy; the others arrive while it starts. Each sends plain HTTP, which the proxy closes at once.
    const COUNT = 10;
    const answered = await Promise.all(
      Array.from({ length: COUNT }, async () => {
        const socket = net.connect({ port, host: '127.0.0.1' });
        socket.on('error', () => {});
        socket.write('GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
        const closedByProxy = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
        socket.resume();
        const result = await Promise.race([closedByProxy, sleep(GUARD_MS / 2).then(() => false)]);
        socket.destroy();
        return result;
      }),
    );
    await activator.waitForLine((line) => line.msg === 'ready', 'ready');
    t.equal(answered.filter(Boolean).length, COUNT, 'every waiting connection was handled (closed as bad_hello)');
    // The client sees its close before the proxy's log line is written: wait for the lines.
    const handled = () => activator.lines.filter((line) => line.msg === 'connection closed' && line.listener === 'public');
    await waitFor(() => handled().length >= COUNT, 'a log line for every waiting connection', GUARD_MS).catch(() => {});
    t.equal(handled().length, COUNT, `one log line each (${handled().length})`);
  });

  t.test('an inherited socket that matches no listener: exit 1 with one line', async (t) => {
    const port = portOf(await unusedAddress());
    const configFile = await writeConfig({ listeners: [listenerConfig('public', '127.0.0.1:0', backend)] });
    const activator = await socketActivated(port, 'nosuch', configFile);
    t.teardown(() => activator.kill());
    const trigger = net.connect(port, '127.0.0.1');
    trigger.on('error', () => {});
    t.teardown(() => trigger.destroy());
    t.equal(await guard(activator.exited, GUARD_MS, 'the proxy exiting'), 1, 'exit 1');
    // systemd-socket-activate's own lines come first; what the proxy wrote is the rest.
    const own = /^(Listening on |Communication attempt on fd |Execing )/;
    const proxyLines = activator
      .stderr()
      .split('\n')
      .filter((line) => line !== '' && !own.test(line));
    t.equal(proxyLines.length, 1, `one line (${JSON.stringify(proxyLines)})`);
    t.match(proxyLines[0], new RegExp(`^sni-passthrough: inherited socket "nosuch" on 127\\.0\\.0\\.1:${port} matches no listener`));
    t.notOk(
      activator.lines.some((line) => line.msg === 'ready'),
      'never ready',
    );
  });
});

t.test(
  'restart under load while the socket is held open: zero refused connections',
  { skip: python ? false : 'python3 is not installed (test/helpers/socket-holder.py)' },
  async (t) => {
    const backend = await startTlsBackend(ca, 'A');
    t.teardown(() => backend.close());
    const directory = await mkdtemp(join(tmpdir(), 'sni-holder-'));
    t.teardown(() => rm(directory, { recursive: true, force: true }));
    const configFile = join(directory, 'proxy.yaml');
    const holder = spawnWithLines(python!, [
      join(projectRoot, 'test', 'helpers', 'socket-holder.py'),
      '--fdname',
      'public',
      '--',
      process.execPath,
      cliPath,
      '--config',
      configFile,
      '--log-format',
      'json',
      '--no-watch',
    ]);
    t.teardown(() => holder.kill());
    const port = Number((await holder.waitForLine((line) => line.holder === 'listening', 'the holder listening')).port);
    await writeFile(configFile, stringify({ listeners: [{ ...listenerConfig('public', `127.0.0.1:${port}`, backend), drainTimeout: '10s' }] }));

    /** Starts (or restarts) the proxy and resolves with its pid once it is ready. */
    const started = async (command: 'start' | 'restart'): Promise<number> => {
      const from = holder.lines.length;
      holder.send(command);
      const line = await holder.waitForLine((entry) => entry.holder === 'started', `${command}: started`, GUARD_MS, from);
      const pid = Number(line.pid);
      await holder.waitForLine((entry) => entry.msg === 'ready' && entry.pid === pid, `${command}: ready (pid ${pid})`, GUARD_MS, from);
      return pid;
    };
    const pids = [await started('start')];

    const TOTAL = 200;
    /** The first restart is in two steps: `stop` here, then `start` once connections have arrived while no proxy process exists. */
    const STOP_AT = 40;
    /** The second restart (`restart`: stop and start at once) comes at the earliest here, once the second process has served a few. */
    const RESTART_FROM = 100;
    /** If the machine is slow, the pace waits at these points so that each phase still gets connections. */
    const START_BY = 90;
    const RESTART_BY = 170;
    const results: Array<Promise<SessionResult>> = [];
    /** Client ports of connections established while no proxy process existed at all. */
    const inGap = new Set<number>();
    let gapOpen = false;
    let startSent = false;
    let restartSent = false;
    let second: Promise<number> | null = null;
    let secondPid: number | null = null;
    let third: Promise<number> | null = null;
    const served = (pid: number | null): number => holder.lines.filter((line) => line.msg === 'connection closed' && line.pid === pid).length;
    const canStart = (): boolean => gapOpen && inGap.size >= 5;
    const canRestart = (): boolean => secondPid !== null && served(secondPid) >= 5;
    const deadline = Date.now() + 120_000;

    for (let index = 0; index < TOTAL && Date.now() < deadline; index++) {
      if (index === STOP_AT) {
        holder.send('stop');
        void holder.waitForLine((line) => line.holder === 'exited' && line.pid === pids[0], 'the first proxy exiting').then(() => (gapOpen = true));
      }
      if (index >= START_BY && !startSent) await waitFor(canStart, 'connections arriving while no proxy runs', GUARD_MS * 2, 10);
      if (!startSent && canStart()) {
        gapOpen = false;
        startSent = true;
        second = started('start');
        void second.then((pid) => (secondPid = pid));
      }
      if (index >= RESTART_BY && !restartSent) {
        await guard(second!, GUARD_MS * 2, 'the second proxy ready');
        await waitFor(canRestart, 'the second proxy serving', GUARD_MS * 2, 10);
      }
      if (index >= RESTART_FROM && !restartSent && canRestart()) {
        restartSent = true;
        third = started('restart');
      }
      results.push(
        session(port, 'a.example.com', (socket) => {
          if (gapOpen && socket.localPort !== undefined) inGap.add(socket.localPort);
        }),
      );
      await sleep(10);
    }
    pids.push(await guard(second!, GUARD_MS * 2, 'the second proxy ready'));
    pids.push(await guard(third!, GUARD_MS * 2, 'the third proxy ready'));
    t.equal(results.length, TOTAL, `${TOTAL} connections started`);
    const outcomes = await guard(Promise.all(results), 120_000, 'every session finishing');

    const failed = outcomes.filter((outcome) => !outcome.ok);
    t.same(failed, [], 'every connection succeeded');
    t.equal(outcomes.filter((outcome) => outcome.error === 'ECONNREFUSED').length, 0, 'no ECONNREFUSED');
    t.ok(
      outcomes.every((outcome) => outcome.backend === 'A'),
      'each answered by the backend',
    );
    t.ok(inGap.size >= 5, `connections made while no proxy process existed: ${inGap.size}`);
    t.equal(new Set(pids).size, 3, 'three proxy processes in turn');

    // Stop the last one (and the holder), then read who served what.
    holder.send('quit');
    t.equal(await guard(holder.exited, GUARD_MS, 'the holder exiting'), 0);
    const exits = holder.lines.filter((line) => line.holder === 'exited');
    t.same(
      exits.map((line) => ({ pid: line.pid, code: line.code })),
      pids.map((pid) => ({ pid, code: 0 })),
      'each proxy exited 0 on SIGTERM',
    );
    for (const pid of pids) {
      const listening = holder.lines.find((line) => line.msg === 'listening' && line.pid === pid);
      t.same(
        { inherited: listening?.inherited, address: listening?.address },
        { inherited: true, address: `127.0.0.1:${port}` },
        `pid ${pid} served the inherited socket`,
      );
    }
    const connectionLines = holder.lines.filter((line) => line.msg === 'connection closed');
    t.equal(connectionLines.length, TOTAL, 'one log line per connection');
    t.ok(
      connectionLines.every((line) => line.outcome === 'ok'),
      'all ok',
    );
    for (const pid of pids) t.ok(served(pid) > 0, `pid ${pid} served ${served(pid)} connections`);
    // Usually all by the second process; one that gets SIGTERM before its first accept leaves them to the third.
    const gapLines = connectionLines.filter((line) => inGap.has(portOf(String(line.client))));
    t.equal(gapLines.length, inGap.size, 'each connection made during the gap has its log line');
    t.ok(
      gapLines.every((line) => line.pid === pids[1] || line.pid === pids[2]),
      'connections that waited in the backlog were served by a process started after them',
    );
  },
);

t.test('systemd-analyze verify on contrib/systemd', { skip: systemdAnalyze ? false : 'systemd-analyze is not installed' }, async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'sni-units-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  const source = join(projectRoot, 'contrib', 'systemd');
  const service = await readFile(join(source, 'sni-passthrough.service'), 'utf8');
  const socketUnit = await readFile(join(source, 'sni-passthrough.socket'), 'utf8');
  const dropIn = await readFile(join(source, 'sni-passthrough.service.d', 'socket-activation.conf'), 'utf8');

  t.test('what the units promise', async (t) => {
    const directives = (text: string): string[] => text.split('\n').filter((line) => /^[A-Za-z]+=/.test(line));
    const s = directives(service);
    for (const expected of [
      'Type=notify',
      'NotifyAccess=all',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'DynamicUser=yes',
      'ProtectSystem=strict',
      'NoNewPrivileges=yes',
      'AmbientCapabilities=CAP_NET_BIND_SERVICE',
    ]) {
      t.ok(s.includes(expected), `service: ${expected}`);
    }
    t.match(
      s.find((line) => line.startsWith('ExecStart=')),
      /--config \/etc\/sni-passthrough\/proxy\.yaml/,
    );
    const d = directives(dropIn);
    t.ok(d.includes('AmbientCapabilities='), 'socket activation drops the capability');
    t.ok(d.includes('CapabilityBoundingSet='), 'and the bounding set');
    t.ok(d.includes('Requires=sni-passthrough.socket'));
    const k = directives(socketUnit);
    t.ok(k.includes('ListenStream=443'));
    t.ok(k.includes('FileDescriptorName=public'), 'the name a listener claims it by');
  });

  /** Copies the units (with the drop-in) and points ExecStart at something that exists: `executable`. */
  const copyUnits = async (name: string, executable: string | null, extraDropIn = ''): Promise<string> => {
    const target = join(directory, name);
    await cp(source, target, { recursive: true });
    if (executable !== null) {
      await writeFile(join(target, 'sni-passthrough.service'), service.replace(/^ExecStart=.*?(?= --config)/m, `ExecStart=${executable}`));
    }
    if (extraDropIn) await writeFile(join(target, 'sni-passthrough.service.d', 'socket-activation.conf'), dropIn + extraDropIn);
    return target;
  };
  const verify = (target: string): Promise<{ code: number | null; output: string }> =>
    new Promise((resolve) => {
      execFile(
        systemdAnalyze!,
        ['verify', join(target, 'sni-passthrough.socket'), join(target, 'sni-passthrough.service')],
        { timeout: 60_000 },
        (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, output: `${stdout}${stderr}` }),
      );
    });

  t.test('no warnings with ExecStart on an existing executable', async (t) => {
    const target = await copyUnits('clean', `${process.execPath} ${cliPath}`);
    const { code, output } = await verify(target);
    // Documented exceptions: none. (systemd 252 on Debian 12 prints nothing for these units.)
    t.equal(output.trim(), '', 'no output at all');
    t.equal(code, 0);
  });

  t.test('the checks are real (controls)', async (t) => {
    const asShipped = await verify(await copyUnits('as-shipped', null));
    t.equal(asShipped.output.trim(), '', 'as shipped (/usr/bin/env finds the CLI on PATH when it runs): no warnings');
    const missing = await verify(await copyUnits('missing', '/nonexistent/sni-passthrough'));
    t.match(missing.output, /\/nonexistent\/sni-passthrough is not executable/, 'the ExecStart path is checked');
    const bogus = await verify(await copyUnits('bogus', `${process.execPath} ${cliPath}`, 'BogusKey=1\n'));
    t.match(bogus.output, /socket-activation\.conf:\d+: Unknown key/, 'the drop-in is read and checked');
  });
});

t.test(
  'sd_notify with worker processes: the primary sends READY, STATUS with the worker count, and STOPPING',
  { skip: python ? false : 'python3 is not installed (the test receiver and the proxy’s sender need it)' },
  async (t) => {
    const backend = await startTlsBackend(ca, 'A');
    t.teardown(() => backend.close());
    const receiver = await startNotifyReceiver();
    t.teardown(async () => {
      await receiver.process.kill();
      await rm(join(receiver.socketPath, '..'), { recursive: true, force: true });
    });
    const config = { workers: 2, listeners: [listenerConfig('one', '127.0.0.1:0', backend)] };
    const proxy = await startProxy(config, { args: ['--no-watch'], env: { NOTIFY_SOCKET: receiver.socketPath }, readyTimeoutMs: GUARD_MS });
    t.teardown(() => proxy.stop('SIGKILL'));
    const ready = await receiver.waitFor('READY', '1');
    t.equal(ready.index, 0, 'READY=1 first, once both workers serve');
    t.match(ready.fields.STATUS, /^generation 1, 2 workers, 0 open connections$/, 'STATUS= counts the workers');
    proxy.child.kill('SIGTERM');
    await receiver.waitFor('STOPPING', '1', ready.index);
    t.equal(await guard(proxy.exited, GUARD_MS, 'exit'), 0, 'exit 0 after the workers drained');
  },
);
