import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { type BackendTlsOptions, dial, dialTls, type HostLookup } from '../backends/dial.js';
import type { BackendAttempt, BackendPool, BackendTarget } from '../backends/pool.js';
import { canonicalAddress } from '../net/address.js';
import { encodeProxyV1, encodeProxyV2 } from '../net/proxy-protocol.js';
import { ignoreError } from '../net/sockets.js';
import type { Connection } from '../pipeline/connection.js';
import type { Stage } from '../pipeline/target.js';
import { Splice, type SpliceOwner } from './splice.js';

/** Client bytes kept while a backend is dialled; past this, reading pauses until the splice (backpressure). */
const MAX_HELD_BYTES = 128 * 1024;

const kSession = Symbol('backend session');
type HeldSocket = net.Socket & { [kSession]: BackendSession | null };

/**
 * One connection's way to a route's backends: dial the balancer's choice (the
 * next on failure; all of them when every one is marked down), send what the
 * client has said so far, then splice the client's stream to the backend.
 *
 * While a backend is dialled the client is still read (its bytes are held,
 * and a client that leaves is noticed). The bytes sent are kept until the
 * backend answers: a backend that resets before answering, with no further
 * client byte sent to it, is what a backend going down does to the
 * connections in its accept queue, so the connection moves to the next
 * backend with the same bytes.
 */
export class BackendSession implements Stage, SpliceOwner {
  private readonly pool: BackendPool;
  private readonly resolver: HostLookup;
  private readonly connection: Connection;
  private readonly backendTls: BackendTlsOptions | null;
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
  /** The client stream's `bytesRead` at the splice: more means bytes went to the backend that `replay` does not hold. */
  private clientBytesAtSplice = 0;

  /** `replay`: what the client sent before this (its preamble, where the backend must see it). `backendTls`: re-encrypt. */
  constructor(pool: BackendPool, resolver: HostLookup, connection: Connection, replay: Buffer[], backendTls: BackendTlsOptions | null) {
    this.pool = pool;
    this.resolver = resolver;
    this.connection = connection;
    this.backendTls = backendTls;
    this.replay = replay;
    this.heldBytes = 0;
    for (const chunk of replay) this.heldBytes += chunk.length;
    let plan = pool.plan(connection.clientAddress);
    this.panic = plan.length === 0;
    if (this.panic) plan = pool.panicPlan(connection.clientAddress);
    this.plan = plan;
    if (this.panic && plan.length > 0) connection.host.observer.panicRouting(connection.settings.listener, connection.route ?? 'default');
  }

  /** Takes over the connection: from now on this is what runs for it. */
  start(): void {
    this.connection.setStage(this);
    this.hold();
    this.connectNext();
  }

  /** Dials the next backend of the plan, or ends the connection when none is left. */
  private connectNext(): void {
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
      const dialled = (error: string | null, socket: net.Socket | null): void => {
        this.cancelDial = null;
        if (socket === null) this.dialFailed(attempt, error ?? 'unknown');
        else this.connected(attempt, socket, performance.now() - startedAt);
      };
      const { host, port } = target.config;
      const timeout = connection.settings.connectTimeout;
      this.cancelDial = this.backendTls
        ? dialTls(host, port, timeout, this.backendTls, this.resolver, dialled)
        : dial(host, port, timeout, this.resolver, dialled);
      return;
    }
  }

  private dialFailed(attempt: BackendAttempt, error: string): void {
    this.attempt = null;
    this.pool.attemptFailed(attempt);
    const { connection } = this;
    connection.host.observer.backendConnectFailed(connection.settings.listener, metricName(attempt.target), error);
    this.lastError = error;
    this.connectNext();
  }

  private connected(attempt: BackendAttempt, backend: net.Socket, latencyMs: number): void {
    this.pool.attemptSucceeded(attempt);
    const { connection } = this;
    const { stream, settings } = connection;
    connection.host.observer.backendConnected(settings.listener, metricName(attempt.target), latencyMs);
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
    this.clientBytesAtSplice = stream.bytesRead;
    connection.relaying = true;
    this.splice = new Splice(stream, backend, this, settings);
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
    const { stream } = this.connection;
    return this.replay !== null && stream.bytesRead === this.clientBytesAtSplice && !stream.readableEnded && this.nextIndex < this.plan.length;
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
    const attempt = this.attempt!;
    this.pool.release(attempt);
    this.attempt = null;
    connection.host.observer.backendConnectFailed(connection.settings.listener, metricName(attempt.target), reason);
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
    const stream = this.connection.stream as HeldSocket;
    stream[kSession] = this;
    stream.on('data', sessionOnHeldData);
    stream.resume();
  }

  private unhold(): void {
    const stream = this.connection.stream as HeldSocket;
    if (stream[kSession] !== this) return;
    stream.off('data', sessionOnHeldData);
    stream[kSession] = null;
  }

  held(chunk: Buffer): void {
    this.replay!.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > MAX_HELD_BYTES) this.connection.stream.pause();
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

/**
 * The backend as observers (metrics) name it: a templated backend by its
 * template, as its names come from clients and would make series without bound.
 * The connection's record names the backend dialled.
 */
function metricName(target: BackendTarget): string {
  return target.state.template ?? target.config.address;
}

function sessionOnHeldData(this: HeldSocket, chunk: Buffer): void {
  this[kSession]?.held(chunk);
}
