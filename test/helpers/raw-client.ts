import { once } from 'node:events';
import net from 'node:net';

/** A plain TCP connection to the proxy, for sending hand-made bytes (from `localAddress`, e.g. 127.0.0.2, when given). */
export async function connectRaw(port: number, host = '127.0.0.1', localAddress?: string): Promise<net.Socket> {
  // No Nagle: each write leaves as its own segment, so byte-by-byte tests really fragment.
  const socket = net.connect({ port, host, allowHalfOpen: true, noDelay: true, ...(localAddress ? { localAddress } : {}) });
  await once(socket, 'connect');
  return socket;
}

export interface RawOutcome {
  /** Everything the proxy sent before the connection closed. */
  received: Buffer;
  /** How it ended: the proxy's FIN (`end`), or an error such as ECONNRESET. */
  endedBy: 'end' | 'error';
  errorCode: string | null;
}

/** Collects what arrives on `socket` until it closes. */
export function readUntilClosed(socket: net.Socket): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let endedBy: RawOutcome['endedBy'] = 'end';
    let errorCode: string | null = null;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => socket.end());
    socket.on('error', (error: NodeJS.ErrnoException) => {
      endedBy = 'error';
      errorCode = error.code ?? error.message;
    });
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), endedBy, errorCode }));
  });
}

/** Writes `bytes` in pieces of `pieceSize`, waiting `delayMs` between them (a slow or fragmenting client). */
export async function writeInPieces(socket: net.Socket, bytes: Uint8Array, pieceSize: number, delayMs = 0): Promise<void> {
  for (let offset = 0; offset < bytes.length && !socket.destroyed; offset += pieceSize) {
    socket.write(bytes.subarray(offset, offset + pieceSize));
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    else await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Connects on plain TCP and resolves with the error code (e.g. ECONNREFUSED), or 'connected'. */
export function tryConnect(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}
