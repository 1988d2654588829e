import type net from 'node:net';

/** What a splice reports to the target that started it. */
export interface SpliceOwner {
  /** The backend sent its first byte: what it was sent has been taken. */
  backendAnswered(): void;
  backendFailed(error: NodeJS.ErrnoException): void;
}

/** Named as in the listener's settings, which are passed as they are (no object per connection). */
export interface SpliceTimeouts {
  /** Close after this long without a byte either way; 0: never. */
  readonly idleTimeout: number;
  /** Once either side has closed its half, close after this long without a byte; 0: never. */
  readonly halfCloseTimeout: number;
}

const kSplice = Symbol('splice');
type SplicedSocket = net.Socket & { [kSplice]: Splice | null };

/**
 * Moves bytes both ways between a client and a backend until both are done:
 * what one side sends is written to the other as it arrives; a side that
 * cannot keep up pauses the other (backpressure); a FIN is passed on as a FIN
 * (half-close). Handlers are shared functions attached in `start` and
 * detached in `stop`, nothing else: a splice that is undone (the backend
 * reset before answering) leaves both sockets as they were.
 *
 * Timeouts use the client socket's own timer, which every byte read from or
 * written to the client refreshes, so one timer covers both directions; the
 * connection handles its 'timeout' event.
 */
export class Splice {
  readonly client: net.Socket;
  readonly backend: net.Socket;
  private readonly owner: SpliceOwner;
  private readonly timeouts: SpliceTimeouts;
  private awaitingAnswer = true;

  constructor(client: net.Socket, backend: net.Socket, owner: SpliceOwner, timeouts: SpliceTimeouts) {
    this.client = client;
    this.backend = backend;
    this.owner = owner;
    this.timeouts = timeouts;
  }

  start(): void {
    const { client, backend } = this;
    (client as SplicedSocket)[kSplice] = this;
    (backend as SplicedSocket)[kSplice] = this;
    client.on('data', spliceOnData);
    backend.on('data', spliceOnData);
    client.on('drain', spliceOnDrain);
    backend.on('drain', spliceOnDrain);
    client.on('end', spliceOnEnd);
    backend.on('end', spliceOnEnd);
    backend.on('error', spliceOnBackendError);
    if (this.timeouts.idleTimeout > 0) client.setTimeout(this.timeouts.idleTimeout);
    // The client may have sent its FIN while the backend was being dialled.
    if (client.readableEnded) this.sideEnded(client);
    // Unless the replayed bytes already fill the backend's buffer: then its 'drain' resumes the client.
    if (!backend.writableNeedDrain) client.resume();
  }

  /** Detaches from both sockets, leaving them paused; the owner decides what becomes of them. */
  stop(): void {
    const { client, backend } = this;
    client.off('data', spliceOnData);
    backend.off('data', spliceOnData);
    client.off('drain', spliceOnDrain);
    backend.off('drain', spliceOnDrain);
    client.off('end', spliceOnEnd);
    backend.off('end', spliceOnEnd);
    backend.off('error', spliceOnBackendError);
    client.setTimeout(0);
    client.pause();
    backend.pause();
    (client as SplicedSocket)[kSplice] = null;
    (backend as SplicedSocket)[kSplice] = null;
  }

  relay(from: net.Socket, chunk: Buffer): void {
    const to = from === this.client ? this.backend : this.client;
    if (!to.write(chunk)) from.pause();
    if (this.awaitingAnswer && from === this.backend) {
      this.awaitingAnswer = false;
      this.owner.backendAnswered();
    }
  }

  drained(socket: net.Socket): void {
    (socket === this.client ? this.backend : this.client).resume();
  }

  sideEnded(socket: net.Socket): void {
    (socket === this.client ? this.backend : this.client).end();
    const { halfCloseTimeout, idleTimeout } = this.timeouts;
    if (halfCloseTimeout > 0 && (idleTimeout === 0 || halfCloseTimeout < idleTimeout)) this.client.setTimeout(halfCloseTimeout);
  }

  backendFailed(error: NodeJS.ErrnoException): void {
    this.owner.backendFailed(error);
  }
}

// Shared handlers (no closure per connection); `this` is the socket.
function spliceOnData(this: SplicedSocket, chunk: Buffer): void {
  this[kSplice]?.relay(this, chunk);
}

function spliceOnDrain(this: SplicedSocket): void {
  this[kSplice]?.drained(this);
}

function spliceOnEnd(this: SplicedSocket): void {
  this[kSplice]?.sideEnded(this);
}

function spliceOnBackendError(this: SplicedSocket, error: NodeJS.ErrnoException): void {
  this[kSplice]?.backendFailed(error);
}
