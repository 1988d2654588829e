// Real QUIC peers for end-to-end tests: ngtcp2's HTTP/3 server and client
// over GnuTLS (Debian packages ngtcp2-server and ngtcp2-client), and
// nss_wrapper (libnss-wrapper) so the client resolves test names from a
// private hosts file: it sends the host it connects to as the server name.
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { access, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from './programs.js';
import { sleep } from './wait.js';

const NSS_WRAPPER = '/usr/lib/x86_64-linux-gnu/libnss_wrapper.so';

export interface Ngtcp2 {
  server: string;
  client: string;
  nssWrapper: string;
}

/** The programs, or why the tests that need them skip. */
export async function findNgtcp2(): Promise<Ngtcp2 | string> {
  const [server, client] = await Promise.all([which('gtlsserver'), which('gtlsclient')]);
  if (server === null || client === null) return 'gtlsserver/gtlsclient not installed (Debian packages ngtcp2-server, ngtcp2-client)';
  const nssWrapper = await access(NSS_WRAPPER).then(
    () => NSS_WRAPPER,
    () => null,
  );
  if (nssWrapper === null) return `${NSS_WRAPPER} not installed (Debian package libnss-wrapper): gtlsclient needs it to send a test name as SNI`;
  return { server, client, nssWrapper };
}

/** A UDP port free now (bound and released): for programs that cannot be told to take port 0. */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** Whether something is bound to UDP `port` on this host (from /proc/net/udp). */
async function udpPortBound(port: number): Promise<boolean> {
  const table = await readFile('/proc/net/udp', 'utf8');
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return table.split('\n').some((line) => /^\s*\d+: [0-9A-F]+:([0-9A-F]{4}) /.exec(line)?.[1] === hex);
}

export interface QuicServer {
  port: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Starts gtlsserver (`server`: its path) on 127.0.0.1 (`port`, default a free one) with `key`/`cert` (PEM) serving `htdocs`; resolves once its port is bound. */
export async function startQuicServer(server: string, pem: { key: string; cert: string }, htdocs: string, fixedPort?: number): Promise<QuicServer> {
  const directory = await mkdtemp(join(tmpdir(), 'sni-passthrough-quic-'));
  const keyFile = join(directory, 'key.pem');
  const certFile = join(directory, 'cert.pem');
  await writeFile(keyFile, pem.key);
  await writeFile(certFile, pem.cert);
  const port = fixedPort ?? (await freeUdpPort());
  const child = spawn(server, ['-q', '-d', htdocs, '--max-dyn-length=512M', '127.0.0.1', String(port), keyFile, certFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Bounded: 3000 polls of 10 ms at most (a guard against a server that never binds).
  for (let tries = 0; !(await udpPortBound(port)); tries++) {
    if (child.exitCode !== null || tries >= 3000) {
      child.kill('SIGKILL');
      throw new Error(`gtlsserver did not bind port ${port}: ${output}`);
    }
    await sleep(10);
  }
  return {
    port,
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface QuicClientRun {
  code: number | null;
  /** gtlsclient's trace: packets, frames, and (unless --no-quic-dump) the CRYPTO data it received, in hexdump lines. */
  output: string;
}

/**
 * Runs gtlsclient against `host` (resolved through `hostsFile`, and sent as
 * SNI) on 127.0.0.1:`port`, asking for `uri`; killed after `killAfterMs` (a
 * guard against hangs).
 */
export function runQuicClient(
  programs: Ngtcp2,
  options: { hostsFile: string; host: string; port: number; path: string; args?: string[]; killAfterMs?: number },
): { done: Promise<QuicClientRun>; child: ChildProcess } {
  const { host, port } = options;
  const child = spawn(
    programs.client,
    [...(options.args ?? []), '--exit-on-first-stream-close', '--no-http-dump', host, String(port), `https://${host}:${port}${options.path}`],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LD_PRELOAD: programs.nssWrapper, NSS_WRAPPER_HOSTS: options.hostsFile } },
  );
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 60_000);
  const done = new Promise<QuicClientRun>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
  return { done, child };
}

/** The bytes of every hexdump line in gtlsclient's trace, in order: the CRYPTO data it received (the server's certificate among it). */
export function dumpedBytes(output: string): Buffer {
  const chunks: Buffer[] = [];
  for (const line of output.split('\n')) {
    const match = /^[0-9a-f]{8} {2}((?:[0-9a-f]{2} {1,2})+)/.exec(line);
    if (match) chunks.push(Buffer.from(match[1]!.replace(/ /g, ''), 'hex'));
  }
  return Buffer.concat(chunks);
}
