import dgram from 'node:dgram';
import { ignoreError } from '../net/sockets.js';
import type { Peer } from './flow.js';

/** Where a flow's datagrams go: the backend address it was resolved to, kept for every path of the flow. */
export interface ResolvedBackend {
  address: string;
  family: 4 | 6;
  port: number;
}

/** What a path reports to its flow. */
export interface PathOwner {
  backendDatagram(path: BackendPath, datagram: Buffer): void;
  /** The socket failed (an ICMP port unreachable shows as ECONNREFUSED on a connected socket). */
  backendPathFailed(path: BackendPath, error: NodeJS.ErrnoException): void;
}

const kPath = Symbol('backend path');
type PathSocket = dgram.Socket & { [kPath]: BackendPath };

/** Datagrams kept while the socket connects: a handful of Initials; more are dropped (the client retransmits). */
const MAX_QUEUED = 16;

/**
 * One client address's way to a flow's backend: a UDP socket connected to the
 * backend, so the backend's replies arrive on it and go back to that address.
 * A client that moves (NAT rebinding) gets a new path, and the backend sees
 * the move as a new address too, which it validates as QUIC requires.
 */
export class BackendPath {
  /** The client address and port replies go to. */
  readonly peer: Peer;
  private readonly owner: PathOwner;
  private readonly socket: PathSocket;
  private queue: Buffer[] | null = [];
  private closed = false;
  /** A send's failure: an ICMP error the kernel kept for the socket can be reported by the next send rather than by a receive. */
  private readonly sendDone = (error: Error | null): void => {
    if (error) this.onError(error as NodeJS.ErrnoException);
  };

  constructor(owner: PathOwner, backend: ResolvedBackend, peer: Peer) {
    this.owner = owner;
    this.peer = peer;
    this.socket = dgram.createSocket({ type: backend.family === 6 ? 'udp6' : 'udp4' }) as PathSocket;
    this.socket[kPath] = this;
    this.socket.on('message', pathOnMessage);
    this.socket.on('error', pathOnError);
    this.socket.connect(backend.port, backend.address, () => this.connected());
  }

  send(datagram: Buffer): void {
    if (this.closed) return;
    if (this.queue === null) this.socket.send(datagram, this.sendDone);
    else if (this.queue.length < MAX_QUEUED) this.queue.push(datagram);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = null;
    this.socket.off('message', pathOnMessage);
    this.socket.off('error', pathOnError);
    this.socket.on('error', ignoreError);
    this.socket.close();
  }

  private connected(): void {
    if (this.closed) return;
    const queued = this.queue!;
    this.queue = null;
    for (const datagram of queued) this.socket.send(datagram, this.sendDone);
  }

  onMessage(datagram: Buffer): void {
    if (!this.closed) this.owner.backendDatagram(this, datagram);
  }

  onError(error: NodeJS.ErrnoException): void {
    if (!this.closed) this.owner.backendPathFailed(this, error);
  }
}

function pathOnMessage(this: PathSocket, datagram: Buffer): void {
  this[kPath].onMessage(datagram);
}

function pathOnError(this: PathSocket, error: NodeJS.ErrnoException): void {
  this[kPath].onError(error);
}
