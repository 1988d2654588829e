import { lookup, type LookupAddress } from 'node:dns';
import net from 'node:net';
import { ignoreError } from '../net/sockets.js';

export type DialCallback = (error: string | null, socket: net.Socket | null) => void;

/**
 * Opens a TCP connection to `host:port` for splicing. A DNS name is resolved
 * now (so DNS changes are followed) and every address it has is tried in
 * turn, in the resolver's order; the lookup and each address get `timeout` ms.
 * Calls back once, with the connected socket or the last error code
 * ('connect_timeout', 'dns_timeout', 'ECONNREFUSED', 'ENOTFOUND', ...). The returned function cancels.
 */
export function dial(host: string, port: number, timeout: number, callback: DialCallback): () => void {
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
    attempt.once('error', (error: NodeJS.ErrnoException) => giveUp(error.code ?? error.message));
    if (timeout > 0) timer = setTimeout(giveUp, timeout, 'connect_timeout');
    attempt.once('connect', () => {
      if (timer) clearTimeout(timer);
      timer = null;
      attempt.removeAllListeners('error');
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
    lookup(host, { all: true, verbatim: true }, (error, addresses: LookupAddress[]) => {
      if (cancelled) return;
      if (timer) clearTimeout(timer);
      timer = null;
      if (error) callback(error.code ?? 'ENOTFOUND', null);
      else
        tryAddresses(
          addresses.map((entry) => entry.address),
          0,
          'ENOTFOUND',
        );
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
