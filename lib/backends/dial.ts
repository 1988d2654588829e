import net from 'node:net';
import tls from 'node:tls';
import { ignoreError } from '../net/sockets.js';

export type DialCallback = (error: string | null, socket: net.Socket | null) => void;

/** Called back once, asynchronously: an error code ('ENOTFOUND', 'ETIMEOUT', ...) or the addresses to try, in order. */
export type LookupCallback = (error: string | null, addresses: readonly string[]) => void;

/** What resolves backend names for dials (the DNS cache, see host-resolver.ts). */
export interface HostLookup {
  lookup(name: string, callback: LookupCallback): void;
}

/**
 * Opens a TCP connection to `host:port` for splicing. A DNS name is resolved
 * through `resolver` (which caches answers for their TTL, so DNS changes are
 * followed) and every address it has is tried in turn, in the resolver's
 * order; the lookup and each address get `timeout` ms.
 * Calls back once, with the connected socket or the last error code
 * ('connect_timeout', 'dns_timeout', 'ECONNREFUSED', 'ENOTFOUND', ...). The returned function cancels.
 */
export function dial(host: string, port: number, timeout: number, resolver: HostLookup, callback: DialCallback): () => void {
  let cancelled = false;
  let socket: net.Socket | null = null;
  let timer: NodeJS.Timeout | null = null;

  const tryAddresses = (addresses: readonly string[], index: number, lastError: string): void => {
    if (cancelled) return;
    const address = addresses[index];
    if (address === undefined) {
      callback(lastError, null);
      return;
    }
    const attempt = net.connect({ host: address, port, allowHalfOpen: true, noDelay: true });
    socket = attempt;
    const giveUp = (reason: string): void => {
      if (timer) clearTimeout(timer);
      timer = null;
      attempt.removeAllListeners();
      attempt.on('error', ignoreError);
      attempt.destroy();
      socket = null;
      tryAddresses(addresses, index + 1, reason);
    };
    // Left on after the connect, inert: removing a socket's only 'error' listener deletes a property of its
    // event table, which turns that table into a dictionary (about 450 bytes more per relayed connection).
    attempt.on('error', (error: NodeJS.ErrnoException) => {
      if (socket === attempt) giveUp(error.code ?? error.message);
    });
    if (timeout > 0) timer = setTimeout(giveUp, timeout, 'connect_timeout');
    attempt.once('connect', () => {
      if (timer) clearTimeout(timer);
      timer = null;
      socket = null;
      callback(null, attempt);
    });
  };

  if (net.isIP(host) !== 0) {
    tryAddresses([host], 0, 'ECONNREFUSED');
  } else {
    // A slow resolver counts against the same budget: nothing else bounds the client's wait here.
    if (timeout > 0) {
      timer = setTimeout(() => {
        cancelled = true;
        callback('dns_timeout', null);
      }, timeout);
    }
    resolver.lookup(host, (error, addresses) => {
      if (cancelled) return;
      if (timer) clearTimeout(timer);
      timer = null;
      if (error !== null) callback(error, null);
      else tryAddresses(addresses, 0, 'ENOTFOUND');
    });
  }

  return () => {
    cancelled = true;
    if (timer) clearTimeout(timer);
    if (socket) {
      socket.removeAllListeners();
      socket.on('error', ignoreError);
      socket.destroy();
    }
  };
}

/** How a backend is spoken to over TLS when a route terminates and re-encrypts. */
export interface BackendTlsOptions {
  /** Server name sent (SNI) and checked in the backend's certificate; null: the backend's host. */
  servername: string | null;
  /** Trusted CAs (PEM); null: the system's. */
  ca: Buffer | null;
  /** Check the backend's certificate against `ca` and `servername`. */
  verify: boolean;
}

/**
 * `dial`, then a TLS handshake with the backend over the connected socket;
 * `timeout` bounds the handshake too. Calls back once with the TLS socket, or
 * the error ('tls_handshake_timeout', or the TLS error's code such as
 * 'DEPTH_ZERO_SELF_SIGNED_CERT'). The returned function cancels.
 */
export function dialTls(host: string, port: number, timeout: number, options: BackendTlsOptions, resolver: HostLookup, callback: DialCallback): () => void {
  let secure: tls.TLSSocket | null = null;
  let timer: NodeJS.Timeout | null = null;
  const giveUp = (reason: string): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    secure?.removeAllListeners();
    secure?.on('error', ignoreError);
    secure?.destroy();
    secure = null;
    callback(reason, null);
  };
  const cancelTcp = dial(host, port, timeout, resolver, (error, socket) => {
    if (socket === null) {
      callback(error, null);
      return;
    }
    const name = options.servername ?? host;
    const session = tls.connect({
      socket,
      servername: net.isIP(name) === 0 ? name : undefined,
      ...(options.ca ? { ca: options.ca } : {}),
      rejectUnauthorized: options.verify,
      checkServerIdentity: options.verify ? (_name, certificate) => tls.checkServerIdentity(name, certificate) : () => undefined,
    });
    secure = session;
    if (timeout > 0) timer = setTimeout(giveUp, timeout, 'tls_handshake_timeout');
    session.once('error', (tlsError: NodeJS.ErrnoException) => giveUp(tlsError.code ?? tlsError.message));
    session.once('secureConnect', () => {
      if (timer) clearTimeout(timer);
      timer = null;
      session.removeAllListeners('error');
      secure = null;
      callback(null, session);
    });
  });
  return () => {
    cancelTcp();
    if (timer) clearTimeout(timer);
    if (secure) {
      secure.removeAllListeners();
      secure.on('error', ignoreError);
      secure.destroy();
    }
  };
}
