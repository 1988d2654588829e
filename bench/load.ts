// The bench's load generator and backend, both in the bench process: clients
// that speak either raw bytes after a real ClientHello, or real TLS; and one
// backend that tells the two apart by the hello's server name and then obeys
// a one-line command. Every loop stops when told to or at a count bound.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';

export const HOST = '127.0.0.1';
/** The reply of a connection in the churn load, and the size of a request and its reply on a kept-alive TLS connection. */
export const SMALL_MESSAGE = 64;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const SMALL = CHUNK.subarray(0, SMALL_MESSAGE);

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A free TCP port on HOST (for programs that cannot bind port 0 and report it). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// ---- the backend. After the hello (raw) or the TLS handshake, one command line:
//   "send N"  writes N bytes and ends      "stream" writes until the client hangs up
//   "sink"    reads and counts everything  "echo"   echoes everything
//   nothing: the connection stays idle.

export interface Backend {
  port: number;
  /** Bytes received by "sink" connections so far. */
  sunk: number;
  /** TLS connections whose handshake completed so far. */
  handshakes: number;
  close(): Promise<void>;
}

function stream(socket: net.Socket): void {
  const pump = (): void => {
    while (!socket.destroyed && !socket.writableEnded) {
      if (!socket.write(CHUNK)) return void socket.once('drain', pump);
    }
  };
  pump();
}

/** Reads the command line (starting with the bytes already read, `head`) and carries it out. */
function obey(socket: net.Socket, backend: Backend, head?: Buffer): void {
  let line = '';
  const onData = (data: Buffer): void => {
    const newline = data.indexOf(10);
    if (newline < 0) return void (line += data.toString('latin1'));
    line += data.subarray(0, newline).toString('latin1');
    socket.off('data', onData);
    const rest = data.subarray(newline + 1);
    const [command, argument] = line.split(' ');
    if (command === 'send') socket.end(CHUNK.subarray(0, Number(argument)));
    else if (command === 'stream') stream(socket);
    else if (command === 'sink') {
      backend.sunk += rest.length;
      socket.on('data', (chunk: Buffer) => (backend.sunk += chunk.length));
      socket.resume();
    } else if (command === 'echo') {
      if (rest.length > 0) socket.write(rest);
      socket.pipe(socket);
    }
  };
  socket.on('data', onData);
  if (head && head.length > 0) onData(head);
}

/**
 * One backend port for every route: a hello naming `tlsName` goes to a TLS
 * server (the hello is given back with unshift); any other hello is skipped
 * and the raw bytes after it carry the command.
 */
export async function startBackend(tlsName: string, credentials: { key: string; cert: string }): Promise<Backend> {
  const marker = Buffer.from(tlsName, 'latin1');
  const tlsServer = tls.createServer(credentials, (socket) => {
    socket.on('error', () => {}); // a client that hangs up at once resets its connection
    backend.handshakes++;
    obey(socket, backend);
  });
  tlsServer.on('tlsClientError', () => {});
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {});
    let head: Buffer = Buffer.alloc(0);
    const onHead = (data: Buffer): void => {
      head = head.length === 0 ? data : Buffer.concat([head, data]);
      if (head.length < 5 || head.length < 5 + head.readUInt16BE(3)) return;
      socket.off('data', onHead);
      const helloLength = 5 + head.readUInt16BE(3);
      if (head.subarray(0, helloLength).includes(marker)) {
        socket.pause();
        socket.unshift(head);
        tlsServer.emit('connection', socket);
      } else {
        obey(socket, backend, head.subarray(helloLength));
      }
    };
    socket.on('data', onHead);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, 1024, resolve));
  const backend: Backend = {
    port: (server.address() as net.AddressInfo).port,
    sunk: 0,
    handshakes: 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  return backend;
}

// ---- loads. Each starts on a port and runs until stopped; count() is the work done so far
// (connections, bytes or requests), so a measuring window is the difference of two readings.

export interface Load {
  count(): number;
  /** Stops the load and resolves once its connections are closed, with the failures seen. */
  stop(): Promise<{ errors: number }>;
}

/** Closed loop of `concurrency` raw connections: hello + "send 64", read the 64 bytes, close. */
export function churn(port: number, hello: Buffer, concurrency: number): Load {
  const request = Buffer.concat([hello, Buffer.from(`send ${SMALL_MESSAGE}\n`)]);
  const maxConnections = 1_000_000; // a bound should stop() never come
  let stopped = false;
  let started = 0;
  let completed = 0;
  let errors = 0;
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      let received = 0;
      const socket = net.connect({ host: HOST, port, noDelay: true });
      socket.write(request);
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      socket.on('error', () => {});
      socket.on('close', () => {
        if (received === SMALL_MESSAGE) completed++;
        else errors++;
        resolve();
      });
    });
  const worker = async (): Promise<void> => {
    while (!stopped && started < maxConnections) {
      started++;
      await once();
    }
  };
  const workers = Promise.all(Array.from({ length: concurrency }, worker));
  return {
    count: () => completed,
    stop: async () => {
      stopped = true;
      await workers;
      return { errors };
    },
  };
}

/** `streams` long raw connections, each uploading to a "sink" or downloading a "stream" as fast as they can. */
export function bulk(port: number, hello: Buffer, backend: Backend, direction: 'upload' | 'download', streams: number): Load {
  const sockets: net.Socket[] = [];
  let received = 0;
  let stopped = false;
  for (let index = 0; index < streams; index++) {
    const socket = net.connect({ host: HOST, port });
    socket.on('error', () => {});
    socket.write(Buffer.concat([hello, Buffer.from(direction === 'upload' ? 'sink\n' : 'stream\n')]));
    if (direction === 'download') socket.on('data', (chunk: Buffer) => (received += chunk.length));
    else {
      const pump = (): void => {
        while (!stopped && !socket.destroyed) {
          if (!socket.write(CHUNK)) return void socket.once('drain', pump);
        }
      };
      socket.once('connect', pump);
    }
    sockets.push(socket);
  }
  const sunkBefore = backend.sunk;
  return {
    count: () => (direction === 'download' ? received : backend.sunk - sunkBefore),
    stop: async () => {
      stopped = true;
      await Promise.all(sockets.map((socket) => new Promise((resolve) => (socket.destroyed ? resolve(null) : socket.destroy().once('close', resolve)))));
      return { errors: 0 };
    },
  };
}

/** What the clients pass to tls.connect besides the address: servername, secureContext, a session to resume. */
export type TlsClientOptions = Pick<tls.ConnectionOptions, 'servername' | 'secureContext' | 'session'>;

/** One TLS connection, resolved once its handshake is done; rejects on an error or after `timeoutMs`. */
function connectTls(port: number, options: TlsClientOptions, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...options, host: HOST, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TLS handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * `count` TLS connections through `port`, opened `batch` at a time, no new
 * batch after `maxMs`; resolves with those whose handshake completed (the
 * failures are counted).
 */
export async function openTls(
  port: number,
  options: TlsClientOptions,
  count: number,
  batch: number,
  maxMs = 60_000,
): Promise<{ sockets: tls.TLSSocket[]; errors: number }> {
  const sockets: tls.TLSSocket[] = [];
  let errors = 0;
  const started = performance.now();
  for (let opened = 0; opened < count && performance.now() - started < maxMs; opened += batch) {
    const results = await Promise.allSettled(Array.from({ length: Math.min(batch, count - opened) }, () => connectTls(port, options, 10_000)));
    for (const result of results) {
      if (result.status === 'fulfilled') sockets.push(result.value.on('error', () => {}));
      else errors++;
    }
  }
  return { sockets, errors };
}

/**
 * `connections` kept-alive TLS connections, each sending a 64-byte request
 * and waiting for the 64-byte echo, over and over; count() is the requests
 * answered. Resolves once every handshake is done, so the window sees none.
 */
export async function tlsKeepAlive(port: number, options: TlsClientOptions, connections: number): Promise<Load> {
  const { sockets, errors } = await openTls(port, options, connections, connections);
  let answered = 0;
  let stopped = false;
  const maxRequests = 10_000_000; // a bound should stop() never come
  const loops = sockets.map(
    (socket) =>
      new Promise<void>((resolve) => {
        let received = 0;
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received < SMALL_MESSAGE) return;
          received -= SMALL_MESSAGE;
          answered++;
          if (stopped || answered >= maxRequests) return resolve();
          socket.write(SMALL);
        });
        socket.once('close', () => resolve());
        socket.write(Buffer.concat([Buffer.from('echo\n'), SMALL]));
      }),
  );
  return {
    count: () => answered,
    stop: async () => {
      stopped = true;
      await Promise.race([Promise.all(loops), sleep(2000)]);
      for (const socket of sockets) socket.destroy();
      return { errors };
    },
  };
}
