import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { dial } from '../backends/dial.js';
import type { BackendRegistry } from '../backends/health.js';
import { type BackendAttempt, BackendPool, type BackendTarget } from '../backends/pool.js';
import type { RouteConfig } from '../config/types.js';
import { canonicalAddress } from '../net/address.js';
import { encodeProxyV1, encodeProxyV2 } from '../net/proxy-protocol.js';
import { ignoreError } from '../net/sockets.js';
import type { Connection } from '../pipeline/connection.js';
import type { Preamble } from '../pipeline/preamble.js';
import type { Stage, Target } from '../pipeline/target.js';
import { Splice, type SpliceOwner } from './splice.js';

/** Client bytes kept while a backend is dialled; past this, reading pauses until the splice (backpressure). */
const MAX_HELD_BYTES = 128 * 1024;

/**
 * Sends a connection to a route's backends, still encrypted: dial the
 * balancer's choice (the next on failure), replay the preamble, splice.
 */
export class PassthroughTarget implements Target {
  private readonly route: RouteConfig;
  private readonly registry: BackendRegistry;
  private balancer: BackendPool | null = null;

  constructor(route: RouteConfig, registry: BackendRegistry) {
    this.route = route;
    this.registry = registry;
  }

  /** Built on the first connection: a config with many routes pays for the balancers of those in use only. */
  get pool(): BackendPool {
    this.balancer ??= new BackendPool(this.route, this.registry);
    return this.balancer;
  }

  handle(connection: Connection, preamble: Preamble): void {
    const session = new PassthroughSession(this.pool, connection, preamble);
    connection.setStage(session);
    session.connectNext();
  }
}

const kSession = Symbol('passthrough session');
type HeldSocket = net.Socket & { [kSession]: PassthroughSession | null };

/**
 * One connection's way to a backend. While a backend is dialled the client is
 * still read (its bytes are held, and a client that leaves is noticed); once
 * connected the held bytes are replayed and the sockets spliced. The replayed
 * bytes are kept until the backend answers: a backend that resets before
 * answering, with no further client byte sent to it, is what a backend going
 * down does to the connections in its accept queue, so the connection moves
 * to the next backend with the same bytes.
 */
class PassthroughSession implements Stage, SpliceOwner {
  private readonly pool: BackendPool;
  private readonly connection: Connection;
  private readonly plan: BackendTarget[];
  private nextIndex = 0;
  /** Every backend was down: they are all tried anyway (panic routing). */
  private readonly panic: boolean;
  private attempt: BackendAttempt | null = null;
  private cancelDial: (() => void) | null = null;
  private lastError: string | null = null;
  private splice: Splice | null = null;
  /** What the backend is (to be) sent from the client, kept until it answers; null once it has. */
  private replay: Buffer[] | null;
  private heldBytes: number;
  /** `client.bytesRead` at the splice: more means bytes went to the backend that `replay` does not hold. */
  private clientBytesAtSplice = 0;

  constructor(pool: BackendPool, connection: Connection, preamble: Preamble) {
    this.pool = pool;
    this.connection = connection;
    const { bytes, offset } = preamble;
    this.replay = [offset === 0 ? bytes : bytes.subarray(offset)];
    this.heldBytes = bytes.length - offset;
    let plan = pool.plan(connection.clientAddress);
    this.panic = plan.length === 0;
    if (this.panic) plan = pool.panicPlan(connection.clientAddress);
    this.plan = plan;
    if (this.panic && plan.length > 0) connection.host.observer.panicRouting(connection.settings.listener, connection.route ?? 'default');
    this.hold();
  }

  /** Dials the next backend of the plan, or ends the connection when none is left. */
  connectNext(): void {
    for (;;) {
      const target = this.plan[this.nextIndex++];
      if (target === undefined) {
        this.connection.finish('backend_unreachable', this.lastError ?? 'no_backend_available');
        return;
      }
      // null: another connection is already the one retrying this backend after its failTimeout.
      const attempt = this.pool.beginAttempt(target, this.panic);
      if (attempt === null) continue;
      this.attempt = attempt;
      const { connection } = this;
      connection.backend = target.config.address;
      connection.attempts++;
      const startedAt = performance.now();
      this.cancelDial = dial(target.config.host, target.config.port, connection.settings.connectTimeout, (error, socket) => {
        this.cancelDial = null;
        if (socket === null) this.dialFailed(attempt, error ?? 'unknown');
        else this.connected(attempt, socket, performance.now() - startedAt);
      });
      return;
    }
  }

  private dialFailed(attempt: BackendAttempt, error: string): void {
    this.attempt = null;
    this.pool.attemptFailed(attempt);
    const { connection } = this;
    connection.host.observer.backendConnectFailed(connection.settings.listener, attempt.target.config.address, error);
    this.lastError = error;
    this.connectNext();
  }

  private connected(attempt: BackendAttempt, backend: net.Socket, latencyMs: number): void {
    this.pool.attemptSucceeded(attempt);
    const { connection } = this;
    const { client, settings } = connection;
    connection.host.observer.backendConnected(settings.listener, attempt.target.config.address, latencyMs);
    connection.adoptBackend(backend);
    this.unhold();
    const version = attempt.target.config.proxyProtocol;
    backend.cork();
    if (version !== null) {
      const header = this.proxyHeader(version);
      // Only a client socket that closed before its address was read has nothing to put in the header.
      if (header === null) {
        connection.finish('client_closed', 'no_client_address');
        return;
      }
      backend.write(header);
    }
    for (const chunk of this.replay!) backend.write(chunk);
    backend.uncork();
    this.clientBytesAtSplice = client.bytesRead;
    connection.relaying = true;
    this.splice = new Splice(client, backend, this, { idle: settings.idleTimeout, halfClosed: settings.halfCloseTimeout });
    this.splice.start();
  }

  backendAnswered(): void {
    this.replay = null;
  }

  backendFailed(error: NodeJS.ErrnoException): void {
    const code = error.code ?? error.message;
    if (this.canRetryElsewhere()) this.retryElsewhere(code);
    else this.connection.finish('backend_error', code, error);
  }

  /**
   * Whether a backend error can still move the connection on: the backend has
   * sent nothing (the client saw nothing of it), every byte it got is still in
   * `replay`, the client has not ended, and another backend is left to try.
   */
  private canRetryElsewhere(): boolean {
    const { client } = this.connection;
    return this.replay !== null && client.bytesRead === this.clientBytesAtSplice && !client.readableEnded && this.nextIndex < this.plan.length;
  }

  /**
   * Undoes the splice and dials the next backend with the same bytes. Not held
   * against the backend's health: a hello a backend rejects with a reset would
   * otherwise let any client take backends out.
   */
  private retryElsewhere(reason: string): void {
    const splice = this.splice!;
    this.splice = null;
    splice.stop();
    const { connection } = this;
    const { backend } = splice;
    connection.releaseBackend(backend);
    backend.on('error', ignoreError);
    backend.destroy();
    connection.relaying = false;
    this.pool.release(this.attempt!);
    this.attempt = null;
    connection.host.observer.backendConnectFailed(connection.settings.listener, connection.backend!, reason);
    this.lastError = reason;
    this.hold();
    this.connectNext();
  }

  /** The connection is over: stop dialling, give the backend slot back (its sockets are the connection's to close). */
  stop(): void {
    this.unhold();
    if (this.cancelDial) {
      this.cancelDial();
      this.cancelDial = null;
      this.pool.attemptAbandoned(this.attempt!);
    } else if (this.attempt) {
      this.pool.release(this.attempt);
    }
    this.attempt = null;
  }

  /** Reads the client while no backend is connected: its bytes are kept for the backend, its leaving is noticed. */
  private hold(): void {
    const client = this.connection.client as HeldSocket;
    client[kSession] = this;
    client.on('data', sessionOnHeldData);
    client.resume();
  }

  private unhold(): void {
    const client = this.connection.client as HeldSocket;
    if (client[kSession] !== this) return;
    client.off('data', sessionOnHeldData);
    client[kSession] = null;
  }

  held(chunk: Buffer): void {
    this.replay!.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > MAX_HELD_BYTES) this.connection.client.pause();
  }

  private proxyHeader(version: 'v1' | 'v2'): Buffer | null {
    const { connection } = this;
    const { client } = connection;
    const addresses = connection.proxied ?? {
      source: { address: connection.clientAddress, port: connection.clientPort ?? 0 },
      destination: { address: canonicalAddress(client.localAddress), port: client.localPort ?? 0 },
    };
    try {
      return version === 'v1' ? encodeProxyV1(addresses) : encodeProxyV2(addresses, connection.sni);
    } catch {
      return null;
    }
  }
}

function sessionOnHeldData(this: HeldSocket, chunk: Buffer): void {
  this[kSession]?.held(chunk);
}
