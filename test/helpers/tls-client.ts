import { once } from 'node:events';
import tls from 'node:tls';
import type { BackendIdentity } from './backends.js';

export interface TlsClientOptions {
  port: number;
  host?: string;
  servername?: string;
  ca: string;
  alpn?: string[];
}

/** Opens a verified TLS session through the proxy and resolves once the handshake is done. */
export async function connectTls(options: TlsClientOptions): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    host: options.host ?? '127.0.0.1',
    port: options.port,
    ca: options.ca,
    // Verify the name only when one is sent; without SNI there is nothing to check the certificate against.
    ...(options.servername ? { servername: options.servername } : { servername: '', checkServerIdentity: () => undefined }),
    ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
  });
  await once(socket, 'secureConnect');
  return socket;
}

/** Reads one newline-terminated line from a socket. */
export function readLine(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', reject);
      socket.off('end', onEnd);
      resolve(text.slice(0, end));
    };
    const onEnd = (): void => reject(new Error(`connection ended before a full line (got ${JSON.stringify(text)})`));
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('end', onEnd);
  });
}

/** One TLS session through the proxy: who answered, what certificate it showed, and that it verified. */
export async function whoAnswers(options: TlsClientOptions): Promise<BackendIdentity & { certificateName: string; authorized: boolean }> {
  const socket = await connectTls(options);
  try {
    const identity = JSON.parse(await readLine(socket)) as BackendIdentity;
    const certificateName = String(socket.getPeerCertificate().subject?.CN ?? '');
    return { ...identity, certificateName, authorized: socket.authorized };
  } finally {
    socket.destroy();
  }
}

/** Resolves with null once the TLS handshake completes, or with the error (or closure) that ended it first. */
export function handshakeResult(socket: tls.TLSSocket): Promise<Error | null> {
  return new Promise((resolve) => {
    socket.once('secureConnect', () => resolve(null));
    socket.once('error', resolve);
    socket.once('close', () => resolve(new Error('closed')));
  });
}

/**
 * A whole TLS session through the proxy to an echoing test backend:
 * handshake, the backend's identity line, `payload` echoed, then a clean
 * close from both sides. Rejects if any step fails (the connection was cut).
 */
export async function echoSession(options: TlsClientOptions, payload = 'ping'): Promise<BackendIdentity> {
  const socket = await connectTls(options);
  try {
    const identity = JSON.parse(await readLine(socket)) as BackendIdentity;
    socket.write(`${payload}\n`);
    const echoed = await readLine(socket);
    if (echoed !== payload) throw new Error(`echo: got ${JSON.stringify(echoed)}`);
    const closed = once(socket, 'close');
    socket.resume();
    socket.end();
    await closed;
    return identity;
  } finally {
    socket.destroy();
  }
}
