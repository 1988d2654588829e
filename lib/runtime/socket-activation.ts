import net from 'node:net';
import type { ListenAddress, ListenerConfig } from '../config/types.js';
import { formatAddress } from '../config/values.js';
import { InheritedSocketError } from '../errors.js';

/** The first descriptor systemd passes (sd_listen_fds: SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

export interface PassedDescriptor {
  fd: number;
  /** From LISTEN_FDNAMES (FileDescriptorName= in the .socket unit); null when not given. */
  name: string | null;
}

/**
 * The listening sockets a service manager passed to this process (systemd's
 * protocol: LISTEN_PID is this process, LISTEN_FDS counts descriptors from 3,
 * LISTEN_FDNAMES names them). Empty when started any other way.
 */
export function passedDescriptors(env: NodeJS.ProcessEnv, pid: number): PassedDescriptor[] {
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== pid) return [];
  const count = Number(env.LISTEN_FDS ?? '0');
  if (!Number.isInteger(count) || count <= 0) return [];
  const names = env.LISTEN_FDNAMES?.split(':') ?? [];
  return Array.from({ length: count }, (_, index) => ({ fd: FIRST_FD + index, name: names[index] || null }));
}

export interface InheritedSocket {
  /** The descriptor number in this process. */
  fd: number;
  /**
   * The listening socket, wrapped but not yet accepting: connections waiting
   * in its backlog stay there until the listener that takes it is ready.
   */
  handle: net.Socket;
  name: string | null;
  address: ListenAddress;
}

function wrap(descriptor: PassedDescriptor): InheritedSocket {
  const handle = new net.Socket({ fd: descriptor.fd, readable: false, writable: false });
  const address = handle.address();
  if (!('port' in address)) throw new InheritedSocketError(`inherited descriptor ${descriptor.fd} is not a TCP socket`);
  const wildcard = address.address === '::' || address.address === '0.0.0.0';
  return { fd: descriptor.fd, handle, name: descriptor.name, address: { host: wildcard ? null : address.address, port: address.port } };
}

/** Wraps each passed descriptor and reads its address; nothing is accepted until a listener serves it. */
export function adoptPassedSockets(descriptors: readonly PassedDescriptor[]): InheritedSocket[] {
  return descriptors.map(wrap);
}

/**
 * Pairs inherited sockets with listeners: by name (LISTEN_FDNAMES = listener
 * name), else by address. A socket that matches no listener is an error: it
 * would accept connections nobody serves.
 */
export function matchInheritedSockets(listeners: readonly ListenerConfig[], sockets: readonly InheritedSocket[]): Map<string, net.Socket> {
  const matched = new Map<string, net.Socket>();
  for (const socket of sockets) {
    const sameAddress = (listener: ListenerConfig): boolean =>
      listener.listen.port === socket.address.port &&
      (listener.listen.host === socket.address.host || listener.listen.host === null || socket.address.host === null);
    const listener =
      listeners.find((candidate) => candidate.name === socket.name && !matched.has(candidate.name)) ??
      listeners.find((candidate) => sameAddress(candidate) && !matched.has(candidate.name));
    if (!listener) {
      const label = socket.name ? `"${socket.name}" ` : '';
      throw new InheritedSocketError(
        `inherited socket ${label}on ${formatAddress(socket.address.host, socket.address.port)} matches no listener: name the listener like the socket's FileDescriptorName or give it that address`,
      );
    }
    matched.set(listener.name, socket.handle);
  }
  return matched;
}

/**
 * The matched sockets by descriptor number, for worker processes: each
 * listens on the descriptor through the primary (node:cluster shares it)
 * rather than on a socket wrapped here.
 */
export function inheritedDescriptors(matched: ReadonlyMap<string, net.Socket>, adopted: readonly InheritedSocket[]): Map<string, { fd: number }> {
  const descriptors = new Map<string, { fd: number }>();
  for (const [listener, handle] of matched) {
    const socket = adopted.find((candidate) => candidate.handle === handle);
    if (socket) descriptors.set(listener, { fd: socket.fd });
  }
  return descriptors;
}
