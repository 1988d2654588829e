import type { QuicError } from '../errors.js';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { HostLookup } from '../backends/dial.js';
import type { BackendAttempt, BackendPool, BackendTarget } from '../backends/pool.js';
import { match } from '../pipeline/match.js';
import type { DatagramDropReason, ProxyObserver } from '../pipeline/observer.js';
import { type ConnectionSnapshot, type ConnectionState, type LiveConnection, nextConnectionId, type Outcome } from '../pipeline/record.js';
import type { ListenerSettings } from '../pipeline/settings.js';
import { PassthroughTarget } from '../targets/passthrough.js';
import { REFUSE_BY_ROUTE_ACCESS_LIST } from '../targets/refuse.js';
import { BackendPath, type PathOwner, type ResolvedBackend } from './backend-path.js';
import { readQuicClientHello } from './client-hello.js';
import { CryptoAssembler } from './crypto-assembler.js';
import { decryptInitials } from './initial.js';
import { isLongHeader, parseLongHeader } from './packet.js';

/** A client address and port as a flow knows it. */
export interface Peer {
  /** "192.0.2.1:4433": the flow table's key. */
  key: string;
  /** The address as the socket reported it (where replies are sent). */
  address: string;
  /** The address as logs and access lists see it (no IPv4-mapped prefix). */
  client: string;
  port: number;
}

/** What a flow asks of its listener. */
export interface FlowHost {
  /** The settings of the config running now (a flow routes with those current when its hello completes). */
  readonly settings: ListenerSettings;
  readonly observer: ProxyObserver;
  /** Resolves backend names (the proxy's DNS cache and resolvers). */
  readonly resolver: HostLookup;
  readonly maxHelloBytes: number;
  readonly idleTimeout: number;
  /** Sends a backend's datagram to the client, from the listening socket. */
  sendToClient(datagram: Buffer, peer: Peer): void;
  /** The backend named a connection ID (a long header's SCID): datagrams sent to it from a new address belong to this flow. */
  learnConnectionId(flow: QuicFlow, id: Buffer): void;
  /** A path to the backend is about to open a socket: false at the descriptor limit. */
  reserveDescriptor(): boolean;
  releaseDescriptor(): void;
  /** The flow was routed and passes datagrams to a backend from now on. */
  flowRouted(flow: QuicFlow): void;
  /** The flow ended: routed (its record is emitted) or not (`dropped` says why). */
  flowEnded(flow: QuicFlow, dropped: DatagramDropReason | null): void;
}

type State = 'hello' | 'routing' | 'relaying' | 'ended';

/** A flow's state in the admin endpoint's terms (those of a TCP connection). */
const SNAPSHOT_STATES: Record<State, ConnectionState> = { hello: 'preamble', routing: 'connecting', relaying: 'relaying', ended: 'closing' };

/**
 * One client's QUIC connection through the proxy: its Initial datagrams are
 * held while their CRYPTO frames are put together into the ClientHello, which
 * is routed like a TCP client's; then every datagram goes to the backend
 * unchanged, through a socket per client address (so replies map back), and
 * every reply goes to that address. The proxy sends nothing of its own.
 * A backend that has not answered yet and refuses (ICMP) or stays silent for
 * `connectTimeout` is swapped for the next, with the held datagrams.
 */
export class QuicFlow implements PathOwner, LiveConnection {
  readonly id = nextConnectionId();
  private readonly host: FlowHost;
  /** The address it started from: its record's `client`, the balancer's key. */
  readonly client: Peer;
  private readonly version: number;
  private readonly clientDcid: Buffer;
  private readonly startedAt = performance.now();
  private state: State = 'hello';
  private settings: ListenerSettings;
  private assembler: CryptoAssembler | null;
  /** The client's datagrams so far, kept until the backend first answers (so a failover replays them); null after. */
  private held: Array<{ datagram: Buffer; peer: Peer }> | null = [];
  private heldBytes = 0;
  private largestPacketNumber = -1;
  private readonly paths = new Map<string, BackendPath>();
  private pool: BackendPool | null = null;
  private plan: BackendTarget[] = [];
  private nextIndex = 0;
  private panic = false;
  private attempt: BackendAttempt | null = null;
  private attemptStartedAt = 0;
  private resolved: ResolvedBackend | null = null;
  private lastError: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastActivity = performance.now();
  private sni: string | null = null;
  private alpn: string[] = [];
  private route: string | null = null;
  private backend: string | null = null;
  private attempts = 0;
  private bytesFromClient = 0;
  private bytesToClient = 0;
  private packetsFromClient = 0;
  private packetsToClient = 0;

  /** `routeNow`: a version the proxy cannot read goes to the default route with its first datagram; otherwise the hello is read first. */
  constructor(host: FlowHost, client: Peer, version: number, clientDcid: Buffer, routeNow: boolean) {
    this.host = host;
    this.client = client;
    this.version = version;
    this.clientDcid = clientDcid;
    this.settings = host.settings;
    this.assembler = routeNow ? null : new CryptoAssembler(host.maxHelloBytes);
    this.arm(this.settings.clientHelloTimeout);
  }

  /** Past reading its hello: it no longer counts against the listener's bound on hellos being read. */
  get routed(): boolean {
    return this.state === 'relaying' || this.state === 'routing';
  }

  /** A datagram from the client at `peer` (its first address or one it moved to). */
  fromClient(datagram: Buffer, peer: Peer): void {
    if (this.state === 'ended') return;
    this.lastActivity = performance.now();
    this.packetsFromClient++;
    this.bytesFromClient += datagram.length;
    if (this.held !== null) {
      if (this.heldBytes + datagram.length <= this.host.maxHelloBytes) {
        this.held.push({ datagram, peer });
        this.heldBytes += datagram.length;
      } else if (this.state === 'hello') {
        this.drop('hello_too_large');
        return;
      }
      // Past the limit while a backend is tried: the datagram goes on unheld (a failover would replay the rest).
    }
    if (this.state === 'hello') {
      if (this.assembler === null) this.routeTo({ serverName: null, alpn: [], path: null });
      else this.readHello(datagram);
    } else if (this.state === 'relaying' || this.resolved !== null) this.pathFor(peer)?.send(datagram);
  }

  private readHello(datagram: Buffer): void {
    // A datagram may start with something else (0-RTT after an Initial is coalesced behind it, never before): held, not read.
    if (!isLongHeader(datagram[0]!) || parseLongHeader(datagram)?.packetType !== 'initial') return;
    let packets: ReturnType<typeof decryptInitials>;
    try {
      packets = decryptInitials(datagram, this.clientDcid, this.largestPacketNumber);
    } catch {
      // Not this client's Initial (or garbage from its address): the first datagram must be one, later ones are skipped.
      if (this.packetsFromClient === 1) this.drop('undecryptable');
      return;
    }
    const assembler = this.assembler!;
    try {
      for (const packet of packets) {
        if (packet.version !== this.version) continue;
        this.largestPacketNumber = Math.max(this.largestPacketNumber, packet.packetNumber);
        for (const frame of packet.crypto) assembler.add(frame.offset, frame.data);
      }
    } catch (error) {
      // Past maxHelloBytes, or CRYPTO data that contradicts itself (which copy would the backend read?).
      this.drop((error as QuicError).code === 'QUIC_CRYPTO_TOO_LARGE' ? 'hello_too_large' : 'bad_hello');
      return;
    }
    const result = readQuicClientHello(assembler.contiguous());
    if (result.kind === 'incomplete') return;
    if (result.kind === 'invalid') {
      this.drop('bad_hello');
      return;
    }
    this.assembler = null;
    this.routeTo({ serverName: result.hello.serverName, alpn: result.hello.alpn, path: null });
  }

  /** Routes with the config running now, as a TCP connection does once its hello is read. */
  private routeTo(request: { serverName: string | null; alpn: string[]; path: null }): void {
    this.settings = this.host.settings;
    this.sni = request.serverName;
    this.alpn = request.alpn;
    const { target, route } = match(this.settings, request, this.client.client);
    this.route = route;
    if (!(target instanceof PassthroughTarget)) {
      // No route, the route's access list, or a route that terminates TLS: none can take QUIC.
      this.drop(route === null ? 'no_route' : target === REFUSE_BY_ROUTE_ACCESS_LIST ? 'denied' : 'not_passthrough');
      return;
    }
    const pool = target.pool(this.sni, route);
    if (pool === null) {
      // A template the name cannot fill in: answered like an unknown name, before any DNS query.
      this.drop('no_backend_name');
      return;
    }
    this.pool = pool;
    this.state = 'routing';
    this.host.flowRouted(this);
    let plan = this.pool.plan(this.client.client);
    this.panic = plan.length === 0;
    if (this.panic) plan = this.pool.panicPlan(this.client.client);
    if (this.panic && plan.length > 0) this.host.observer.panicRouting(this.settings.listener, route ?? 'default');
    this.plan = plan;
    this.tryNext();
  }

  /** Sends the held datagrams to the next backend of the plan, or ends the flow when none is left. */
  private tryNext(): void {
    for (;;) {
      const target = this.plan[this.nextIndex++];
      if (target === undefined) {
        this.end('backend_unreachable', this.lastError ?? 'no_backend_available');
        return;
      }
      const attempt = this.pool!.beginAttempt(target, this.panic);
      if (attempt === null) continue;
      this.attempt = attempt;
      this.backend = target.config.address;
      this.attempts++;
      this.attemptStartedAt = performance.now();
      this.arm(this.settings.connectTimeout);
      const { host, port } = target.config;
      resolveBackend(this.host.resolver, host, port, (error, resolved) => {
        if (this.attempt !== attempt) return;
        if (resolved === null) this.attemptFailed(error ?? 'ENOTFOUND');
        else this.startAttempt(resolved);
      });
      return;
    }
  }

  private startAttempt(resolved: ResolvedBackend): void {
    this.resolved = resolved;
    for (const { datagram, peer } of this.held!) this.pathFor(peer)?.send(datagram);
  }

  private attemptFailed(reason: string): void {
    const attempt = this.attempt!;
    this.attempt = null;
    this.pool!.attemptFailed(attempt);
    this.host.observer.backendConnectFailed(this.settings.listener, attempt.target.config.address, reason);
    this.lastError = reason;
    this.closePaths();
    this.resolved = null;
    this.tryNext();
  }

  /** The path for the client's address `peer`, opened on first use; null at the descriptor limit (the datagram is dropped). */
  private pathFor(peer: Peer): BackendPath | null {
    let path = this.paths.get(peer.key);
    if (path === undefined) {
      if (!this.host.reserveDescriptor()) return null;
      path = new BackendPath(this, this.resolved!, peer);
      this.paths.set(peer.key, path);
    }
    return path;
  }

  /** The listener forgot `peerKey` (the flow moved on, past its limit of addresses): its path closes. */
  forgetPeer(peerKey: string): void {
    const path = this.paths.get(peerKey);
    if (path === undefined) return;
    this.paths.delete(peerKey);
    path.close();
    this.host.releaseDescriptor();
  }

  backendDatagram(path: BackendPath, datagram: Buffer): void {
    if (this.state === 'ended') return;
    this.lastActivity = performance.now();
    if (this.state === 'routing') this.answered();
    this.packetsToClient++;
    this.bytesToClient += datagram.length;
    if (isLongHeader(datagram[0] ?? 0)) {
      const header = parseLongHeader(datagram);
      if (header !== null) this.host.learnConnectionId(this, header.scid);
    }
    this.host.sendToClient(datagram, path.peer);
  }

  /** The backend's first datagram: it is the one, the held datagrams are freed, and from now on the flow ends when idle. */
  private answered(): void {
    this.state = 'relaying';
    this.pool!.attemptSucceeded(this.attempt!);
    this.host.observer.backendConnected(this.settings.listener, this.backend!, performance.now() - this.attemptStartedAt);
    this.held = null;
    this.heldBytes = 0;
    this.arm(this.host.idleTimeout);
  }

  backendPathFailed(_path: BackendPath, error: NodeJS.ErrnoException): void {
    const code = error.code ?? error.message;
    if (this.state === 'routing' && this.attempt !== null) this.attemptFailed(code);
    // Once relaying, an ICMP error is the network's word, not the end: QUIC's own timers decide, and the flow ends when idle.
  }

  snapshot(now: number): ConnectionSnapshot {
    return {
      id: this.id,
      listener: this.settings.listener,
      client: this.client.key,
      sni: this.sni,
      alpn: this.alpn,
      route: this.route,
      backend: this.backend,
      state: SNAPSHOT_STATES[this.state],
      bytesFromClient: this.bytesFromClient,
      bytesToClient: this.bytesToClient,
      ageMs: Math.round(now - this.startedAt),
    };
  }

  closeByAdmin(reason: string): void {
    this.end('closed_by_admin', reason);
  }

  /** Ends a flow that was never routed; only counted (`dropped`), not logged per flow. */
  private drop(reason: DatagramDropReason): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.release();
    this.host.flowEnded(this, reason);
  }

  /** Ends the flow (the first cause wins), closing its paths; a routed flow's record is emitted, one still reading its hello just goes. */
  end(outcome: Outcome, reason: string | null): void {
    if (this.state === 'ended') return;
    const wasRouted = this.state !== 'hello';
    const answered = this.state === 'relaying';
    this.state = 'ended';
    if (this.attempt !== null) {
      if (answered) this.pool!.release(this.attempt);
      else this.pool!.attemptAbandoned(this.attempt);
      this.attempt = null;
    }
    this.release();
    if (!wasRouted) {
      this.host.flowEnded(this, null);
      return;
    }
    this.host.observer.connectionClosed({
      listener: this.settings.listener,
      client: this.client.key,
      sni: this.sni,
      alpn: this.alpn,
      route: this.route,
      backend: this.backend,
      attempts: this.attempts,
      bytesFromClient: this.bytesFromClient,
      bytesToClient: this.bytesToClient,
      durationMs: Math.round((performance.now() - this.startedAt) * 10) / 10,
      outcome,
      reason,
      quic: { packetsFromClient: this.packetsFromClient, packetsToClient: this.packetsToClient },
    });
    this.host.flowEnded(this, null);
  }

  private release(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.closePaths();
    this.held = null;
    this.heldBytes = 0;
    this.assembler = null;
  }

  private closePaths(): void {
    for (const path of this.paths.values()) {
      path.close();
      this.host.releaseDescriptor();
    }
    this.paths.clear();
  }

  /** One timer per flow, for whatever the state waits on; activity only moves `lastActivity`, checked when it fires. */
  private arm(delay: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onTimer(), delay);
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = null;
    switch (this.state) {
      case 'hello':
        this.drop('hello_timeout');
        return;
      case 'routing':
        this.attemptFailed('timeout');
        return;
      case 'relaying': {
        const idleUntil = this.lastActivity + this.host.idleTimeout;
        const now = performance.now();
        if (now < idleUntil) this.arm(idleUntil - now);
        else this.end('ok', 'idle');
        return;
      }
    }
  }
}

/** The backend's address (a name resolved once, so every path of the flow reaches the same host). */
function resolveBackend(resolver: HostLookup, host: string, port: number, done: (error: string | null, resolved: ResolvedBackend | null) => void): void {
  const family = isIP(host);
  if (family !== 0) {
    queueMicrotask(() => done(null, { address: host, family: family as 4 | 6, port }));
    return;
  }
  resolver.lookup(host, (error, addresses) => {
    const address = addresses[0];
    if (error !== null || address === undefined) done(error ?? 'ENOTFOUND', null);
    else done(null, { address, family: isIP(address) === 6 ? 6 : 4, port });
  });
}
