// Clients and probes for the worker-process tests (test/e2e/workers*.test.ts):
// connections that send a ClientHello through the proxy to an echo backend,
// and what the logs and metrics say about the workers.
import { once } from 'node:events';
import net from 'node:net';
import { buildClientHello, wrapInRecords } from './client-hello-fixtures.js';
import { parsePrometheus, sumOf, type Exposition } from './prometheus.js';
import type { LogLine, ProxyProcess } from './proxy-process.js';
import { sleep } from './wait.js';

/** A config with two workers, an admin endpoint, and listener "web" routing echo.example.com to `echoAddress`. */
export function workersConfig(echoAddress: string, extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    workers: 2,
    admin: { listen: '127.0.0.1:0' },
    listeners: [{ name: 'web', listen: '127.0.0.1:0', routes: [{ hostnames: ['echo.example.com'], backends: [echoAddress] }], ...listener }],
    ...extra,
  };
}

export async function scrape(proxy: ProxyProcess): Promise<Exposition> {
  const admin = proxy.logs.find((line) => line.msg === 'admin endpoint listening')!.address as string;
  const response = await fetch(`http://${admin}/metrics`);
  return parsePrometheus(await response.text());
}

/** A ClientHello for `name` in one TLS record: the echo backend sends it back once the proxy has connected the two. */
function helloFor(name: string): Buffer {
  return wrapInRecords(buildClientHello({ serverName: name }));
}

/** A connection through the proxy that stays open: the hello went through to the echo backend and came back. */
export async function openThrough(port: number, name = 'echo.example.com'): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const hello = helloFor(name);
  await once(socket, 'connect');
  socket.write(hello);
  let received = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received < hello.length) return;
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before the echo')));
    socket.once('error', reject);
  });
  socket.removeAllListeners('close');
  socket.removeAllListeners('error');
  return socket;
}

/** One short connection: hello, its echo, close. Resolves with whether the echo came back whole. */
export async function roundTrip(port: number, name = 'echo.example.com'): Promise<boolean> {
  try {
    const socket = await openThrough(port, name);
    socket.end();
    socket.on('error', () => {});
    return true;
  } catch {
    return false;
  }
}

/** `total` short connections, `concurrency` at a time; resolves with how many failed. */
export async function runConnections(port: number, total: number, concurrency: number, name?: string): Promise<number> {
  let started = 0;
  let failed = 0;
  const lane = async (): Promise<void> => {
    while (started < total) {
      started++;
      if (!(await roundTrip(port, name))) failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return failed;
}

/** Whether a connection opened earlier still passes bytes both ways. */
export async function stillEchoes(socket: net.Socket): Promise<boolean> {
  if (socket.destroyed) return false;
  return new Promise((resolve) => {
    const finish = (result: boolean): void => {
      socket.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => finish(chunk.toString() === 'ping');
    socket.on('data', onData);
    socket.once('close', () => finish(false));
    socket.once('error', () => finish(false));
    socket.write('ping');
  });
}

export function workerPid(proxy: ProxyProcess, worker: number): number {
  const started = proxy.logs.filter((line) => line.msg === `worker ${worker} started`);
  return Number(started.at(-1)!.workerPid);
}

export function servedBy(lines: LogLine[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const line of lines) counts.set(Number(line.worker), (counts.get(Number(line.worker)) ?? 0) + 1);
  return counts;
}

export async function openConnectionsReach(proxy: ProxyProcess, count: number): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (sumOf(await scrape(proxy), 'sni_passthrough_connections_open') === count) return;
    await sleep(100);
  }
  throw new Error(`never ${count} open connections`);
}
