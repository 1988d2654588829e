import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { ListenerConfig, QuicConfig } from '../config/types.js';
import type { HostLookup } from '../backends/dial.js';
import { formatAddress, quicIdleTimeout } from '../config/values.js';
import { ListenError } from '../errors.js';
import { canonicalAddress, formatPeer } from '../net/address.js';
import type { DatagramDropReason, ProxyObserver } from '../pipeline/observer.js';
import type { LiveConnection, Outcome } from '../pipeline/record.js';
import type { ListenerSettings } from '../pipeline/settings.js';
import { type FlowHost, type Peer, QuicFlow } from '../quic/flow.js';
import { FlowTable } from '../quic/flow-table.js';
import { longHeaderVersion, parseLongHeader, QUIC_V1, QUIC_V2 } from '../quic/packet.js';
import type { TlsMaterial } from '../tls/certificates.js';
import type { Listener } from './listener.js';
import { listenerSettings } from './settings.js';
import type { ListenerContext } from './tcp-listener.js';

/** A client's first datagram carries an Initial padded to at least this (RFC 9000 section 14.1); anything shorter is not a new QUIC client. */
const MIN_INITIAL_DATAGRAM = 1200;
/** A client's first Destination Connection ID has at least 8 bytes (RFC 9000 section 7.2). */
const MIN_CLIENT_DCID = 8;
/** Hello buffers of flows still reading their ClientHello, all together, at most this: a flood of Initials costs bounded memory. */
const PENDING_HELLO_BYTES = 64 * 1024 * 1024;
/** Client addresses a flow keeps (NAT rebinding, migration), each with its own socket to the backend. */
const MAX_PEERS_PER_FLOW = 4;
/** Backend connection IDs a flow is found by (a server's SCID, the client's first DCID, a Retry's). */
const MAX_CONNECTION_IDS_PER_FLOW = 8;
/** Asked of the kernel so a burst of datagrams (a download's ACKs, a handshake flight) is not dropped before it is read. */
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * A QUIC listener: a UDP socket on a TLS listener's address and port. A
 * datagram from an address no flow knows (nor the connection ID it is sent
 * to) must be a client's Initial; it starts a flow, which reads the
 * ClientHello, routes it with the listener's routes and passes the flow's
 * datagrams to the backend unchanged (see QuicFlow). Replies leave from
 * this socket. Garbage, unknown versions without a default route and flows
 * over the limits are dropped and counted; nothing is ever sent back.
 */
export class UdpListener implements Listener, FlowHost {
  config: ListenerConfig;
  settings: ListenerSettings;
  readonly observer: ProxyObserver;
  readonly resolver: HostLookup;
  maxHelloBytes: number;
  idleTimeout: number;
  private readonly context: ListenerContext;
  private readonly port: number;
  private readonly socket: dgram.Socket;
  private table: FlowTable<QuicFlow>;
  /** Flows created and not yet routed (some may have been since: pruned when the limit is reached). */
  private readonly reading = new Set<QuicFlow>();
  private opened = false;
  private accepting = true;
  private bound = false;
  private idleWaiters: Array<() => void> = [];

  /** `port`: the port the listener's TCP socket got (the same as the config's unless that is 0). */
  constructor(config: ListenerConfig, context: ListenerContext, tls: TlsMaterial, port: number) {
    this.config = config;
    this.context = context;
    this.observer = context.observer;
    this.resolver = context.resolver;
    this.port = port;
    this.settings = listenerSettings(config, { registry: context.registry, tls, resolver: context.resolver });
    const quic = config.quic!;
    this.maxHelloBytes = quic.maxHelloBytes;
    this.idleTimeout = quicIdleTimeout(config);
    this.table = new FlowTable(flowLimits(quic));
    const host = config.listen.host;
    this.socket = dgram.createSocket({ type: host === null || isIP(host) === 6 ? 'udp6' : 'udp4', recvBufferSize: RECEIVE_BUFFER_BYTES });
    this.socket.on('message', (datagram, rinfo) => this.received(datagram, rinfo));
  }

  listen(): Promise<string> {
    const { host } = this.config.listen;
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        this.socket.close();
        reject(new ListenError(this.config.name, `udp ${formatAddress(host, this.port)}`, error.code ?? 'ERROR', error));
      };
      this.socket.once('error', onError);
      this.socket.bind({ address: host ?? '::', port: this.port, exclusive: true }, () => {
        this.socket.off('error', onError);
        this.bound = true;
        this.socket.on('error', (error) => this.observer.listenerError(this.config.name, error));
        resolve(this.boundAddress());
      });
    });
  }

  boundAddress(): string {
    const address = this.socket.address();
    return formatAddress(address.address, address.port);
  }

  open(): void {
    this.opened = true;
  }

  update(config: ListenerConfig, tls: TlsMaterial): void {
    this.config = config;
    this.settings = listenerSettings(config, { registry: this.context.registry, tls, resolver: this.context.resolver });
    const quic = config.quic!;
    this.maxHelloBytes = quic.maxHelloBytes;
    this.idleTimeout = quicIdleTimeout(config);
    this.table.setLimits(flowLimits(quic));
  }

  /** No new flows from now on; the socket stays open for the flows there are (their datagrams arrive on it) until they end. */
  stopAccepting(): void {
    this.accepting = false;
    this.resolveIfIdle();
  }

  openConnections(): number {
    return this.table.size;
  }

  liveConnections(): Iterable<LiveConnection> {
    return this.table.flows();
  }

  whenIdle(): Promise<void> {
    if (this.table.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  terminateAll(outcome: Outcome): void {
    for (const flow of [...this.table.flows()]) flow.end(outcome, null);
  }

  sendToClient(datagram: Buffer, peer: Peer): void {
    this.socket.send(datagram, peer.port, peer.address, ignoreSendError);
  }

  learnConnectionId(flow: QuicFlow, id: Buffer): void {
    this.table.addConnectionId(flow, id);
  }

  reserveDescriptor(): boolean {
    const { descriptors } = this.context;
    if (descriptors === null || descriptors.reserve()) return true;
    this.observer.datagramDropped(this.config.name, 'fd_limit');
    return false;
  }

  releaseDescriptor(): void {
    this.context.descriptors?.release();
  }

  flowRouted(): void {
    this.observer.connectionAccepted(this.config.name);
  }

  flowEnded(flow: QuicFlow, dropped: DatagramDropReason | null): void {
    this.table.remove(flow);
    this.reading.delete(flow);
    if (dropped !== null) this.observer.datagramDropped(this.config.name, dropped);
    this.resolveIfIdle();
  }

  private received(datagram: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.opened) return;
    const client = canonicalAddress(rinfo.address);
    const key = formatPeer(client, rinfo.port);
    const peer: Peer = { key, address: rinfo.address, client, port: rinfo.port };
    const known = this.table.byAddress(key);
    if (known !== undefined) {
      known.fromClient(datagram, peer);
      return;
    }
    // A client that moved (NAT rebinding) is recognized by the connection ID it sends to.
    const moved = this.table.byDestination(datagram);
    if (moved !== undefined) {
      const forgotten = this.table.addPeer(moved, key);
      if (forgotten !== null) moved.forgetPeer(forgotten);
      moved.fromClient(datagram, peer);
      return;
    }
    if (this.accepting) this.newFlow(datagram, peer);
  }

  private newFlow(datagram: Buffer, peer: Peer): void {
    const refusal = this.newFlowRefusal(datagram, peer.client);
    if (typeof refusal === 'string') {
      this.observer.datagramDropped(this.config.name, refusal);
      return;
    }
    const flow = new QuicFlow(this, peer, refusal.version, refusal.dcid, !refusal.readable);
    this.table.add(flow, peer.client, peer.key);
    this.table.addConnectionId(flow, refusal.dcid);
    this.reading.add(flow);
    flow.fromClient(datagram, peer);
  }

  /** Why a datagram from an unknown address starts no flow, or what the flow starts with. */
  private newFlowRefusal(datagram: Buffer, client: string): DatagramDropReason | { version: number; dcid: Buffer; readable: boolean } {
    const version = longHeaderVersion(datagram);
    if (version === null || version === 0) return 'not_quic';
    if (datagram.length < MIN_INITIAL_DATAGRAM) return 'too_small';
    const readable = version === QUIC_V1 || version === QUIC_V2;
    let dcid: Buffer;
    if (readable) {
      const header = parseLongHeader(datagram);
      if (header === null || header.packetType !== 'initial' || header.dcid.length < MIN_CLIENT_DCID) return 'not_quic';
      dcid = header.dcid;
    } else {
      // A version this proxy cannot read: only the default route can take it (its backend answers with Version Negotiation).
      if (this.settings.routes.fallback === null) return 'unknown_version';
      // The invariant header (RFC 8999): the DCID's length, then the DCID.
      dcid = Buffer.from(datagram.subarray(6, 6 + datagram[5]!));
    }
    const { access } = this.settings;
    if (access && !access(client)) return 'denied';
    const limit = this.table.refusal(client);
    if (limit !== null) return limit;
    if (this.readingHellosAtLimit()) return 'pending_limit';
    return { version, dcid, readable };
  }

  /** Whether as many flows are reading their hello as PENDING_HELLO_BYTES allows (those routed since are forgotten only then). */
  private readingHellosAtLimit(): boolean {
    const limit = Math.floor(PENDING_HELLO_BYTES / this.maxHelloBytes);
    if (this.reading.size < limit) return false;
    for (const flow of this.reading) if (flow.routed) this.reading.delete(flow);
    return this.reading.size >= limit;
  }

  private resolveIfIdle(): void {
    if (this.table.size > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
    if (!this.accepting && this.bound) {
      this.bound = false;
      this.socket.close();
    }
  }
}

function flowLimits(quic: QuicConfig): ConstructorParameters<typeof FlowTable>[0] {
  return {
    maxFlows: quic.maxFlows,
    maxFlowsPerClient: quic.maxFlowsPerClient,
    maxPeersPerFlow: MAX_PEERS_PER_FLOW,
    maxConnectionIdsPerFlow: MAX_CONNECTION_IDS_PER_FLOW,
  };
}

function ignoreSendError(): void {}
