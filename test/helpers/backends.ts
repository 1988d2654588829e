import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { CertificateAuthority } from './certificates.js';

export interface TestBackend {
  name: string;
  port: number;
  /** "127.0.0.1:PORT", as written in a config. */
  address: string;
  /** TLS sessions (or raw connections) accepted so far. */
  accepted: number;
  close(): Promise<void>;
}

/** What a TLS test backend tells each client first: who answered and what it saw. */
export interface BackendIdentity {
  backend: string;
  sni: string | null;
  alpn: string | null;
}

function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  });
}

function listenOnLoopback(server: net.Server, host = '127.0.0.1', port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/**
 * A TLS server with its own certificate for `dnsNames`: on each session it
 * writes one JSON line (`BackendIdentity`) and then echoes what it receives,
 * half-closing when the client does.
 */
export async function startTlsBackend(
  ca: CertificateAuthority,
  name: string,
  /** `port`: a given one (e.g. the same port on another loopback address), else one the system picks. */
  options: { dnsNames?: string[]; alpn?: string[]; host?: string; port?: number } = {},
): Promise<TestBackend> {
  const { key, cert } = await ca.issue(name, options.dnsNames ?? ['*.example.com', 'example.com', '*.test', 'localhost']);
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key, cert, allowHalfOpen: true, ...(options.alpn ? { ALPNProtocols: options.alpn } : {}) });
  const backend: TestBackend = { name, port: 0, address: '', accepted: 0, close: () => closeServer(server, sockets) };
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => {});
  server.on('secureConnection', (socket) => {
    backend.accepted++;
    socket.on('error', () => {});
    const identity: BackendIdentity = {
      backend: name,
      sni: (socket as tls.TLSSocket & { servername?: string | false }).servername || null,
      alpn: socket.alpnProtocol || null,
    };
    socket.write(`${JSON.stringify(identity)}\n`);
    socket.pipe(socket);
  });
  const host = options.host ?? '127.0.0.1';
  backend.port = await listenOnLoopback(server, host, options.port);
  backend.address = host.includes(':') ? `[${host}]:${backend.port}` : `${host}:${backend.port}`;
  return backend;
}

/** A plain TCP server that echoes every byte back (the proxy never looks past the hello). */
export async function startEchoBackend(name = 'echo'): Promise<TestBackend> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    backend.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  const backend: TestBackend = { name, port: 0, address: '', accepted: 0, close: () => closeServer(server, sockets) };
  backend.port = await listenOnLoopback(server);
  backend.address = `127.0.0.1:${backend.port}`;
  return backend;
}

/** What a test HTTP backend answers each request with, as JSON. */
export interface HttpIdentity {
  backend: string;
  method: string;
  /** The request target as the backend read it. */
  url: string;
  host: string | null;
}

/** A plain HTTP/1.1 server that answers every request with its `HttpIdentity`; `accepted` counts connections, `requests` requests. */
export async function startHttpBackend(name: string): Promise<TestBackend & { requests: number }> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((request, response) => {
    backend.requests++;
    const identity: HttpIdentity = { backend: name, method: request.method ?? '', url: request.url ?? '', host: request.headers.host ?? null };
    request.resume();
    request.on('end', () => response.end(JSON.stringify(identity)));
  });
  const backend = { name, port: 0, address: '', accepted: 0, requests: 0, close: () => closeServer(server, sockets) };
  server.on('connection', (socket) => {
    backend.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  backend.port = await listenOnLoopback(server);
  backend.address = `127.0.0.1:${backend.port}`;
  return backend;
}

/**
 * A plain TCP server that reads the first bytes of each connection and resets
 * it without answering, as the clients of a backend that goes down see it.
 */
export async function startResettingBackend(name = 'resetting'): Promise<TestBackend> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    backend.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.once('data', () => socket.resetAndDestroy());
  });
  const backend: TestBackend = { name, port: 0, address: '', accepted: 0, close: () => closeServer(server, sockets) };
  backend.port = await listenOnLoopback(server);
  backend.address = `127.0.0.1:${backend.port}`;
  return backend;
}

/**
 * An address on loopback where nothing listens: bind port 0, note the port,
 * close. Connecting there is refused at once.
 */
export async function unusedAddress(): Promise<string> {
  const server = net.createServer();
  const port = await listenOnLoopback(server);
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

/** An HTTPS backend (for curl) whose every response body is its own name. */
export async function startHttpsBackend(ca: CertificateAuthority, name: string, dnsNames: string[]): Promise<TestBackend> {
  const { key, cert } = await ca.issue(name, dnsNames);
  const server = https.createServer({ key, cert }, (_request, response) => {
    backend.accepted++;
    response.setHeader('content-type', 'text/plain');
    response.end(name);
  });
  const backend: TestBackend = {
    name,
    port: 0,
    address: '',
    accepted: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  backend.port = (server.address() as net.AddressInfo).port;
  backend.address = `127.0.0.1:${backend.port}`;
  return backend;
}
