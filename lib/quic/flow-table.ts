import { isLongHeader, parseLongHeader, shortHeaderDcid } from './packet.js';

/** A client address and port as the table keys it: "192.0.2.1:4433", "[2001:db8::1]:4433". */
export type PeerKey = string;

/** Why a new flow was not admitted. */
export type FlowRefusal = 'flow_limit' | 'client_limit';

export interface FlowLimits {
  /** Flows at once. */
  maxFlows: number;
  /** Flows one client address (without its port) may have; 0: no limit. */
  maxFlowsPerClient: number;
  /** Client addresses one flow keeps (NAT rebinding, migration); past it the oldest is forgotten. */
  maxPeersPerFlow: number;
  /** Connection IDs one flow is found by; past it new ones are not learnt. */
  maxConnectionIdsPerFlow: number;
}

/** What the table keeps per flow, beside the flow itself. */
interface Entry<Flow> {
  flow: Flow;
  /** The client address it is counted under (the one it started from). */
  client: string;
  /** Every address it was seen from, oldest first. */
  peers: PeerKey[];
  /** Connection IDs (hex) it is found by. */
  connectionIds: string[];
}

/**
 * The QUIC flows of a listener, found by the client's address and port, or,
 * for a datagram from an address no flow knows, by the connection ID it is
 * sent to: the client's original Destination Connection ID and the Source
 * Connection IDs the backend put in its long-header packets. So a client
 * whose NAT binding or address changes keeps its backend. The table only
 * indexes: it opens and closes nothing.
 */
export class FlowTable<Flow> {
  private limits: FlowLimits;
  private readonly entries = new Map<Flow, Entry<Flow>>();
  private readonly byPeer = new Map<PeerKey, Flow>();
  private readonly byConnectionId = new Map<string, Flow>();
  private readonly perClient = new Map<string, number>();
  /** How many known connection IDs have each length: a short header does not say its DCID's length, so each known length is tried. */
  private readonly idLengths = new Map<number, number>();

  constructor(limits: FlowLimits) {
    this.limits = limits;
  }

  /** New limits apply to flows added from now on; flows over them stay. */
  setLimits(limits: FlowLimits): void {
    this.limits = limits;
  }

  get size(): number {
    return this.entries.size;
  }

  flows(): IterableIterator<Flow> {
    return this.entries.keys();
  }

  /** Why a new flow from `client` would be refused, or null. */
  refusal(client: string): FlowRefusal | null {
    if (this.entries.size >= this.limits.maxFlows) return 'flow_limit';
    const perClient = this.limits.maxFlowsPerClient;
    if (perClient > 0 && (this.perClient.get(client) ?? 0) >= perClient) return 'client_limit';
    return null;
  }

  /** Adds a flow first seen from `peer` (at `client`, its address), or says why not. */
  add(flow: Flow, client: string, peer: PeerKey): FlowRefusal | null {
    const refusal = this.refusal(client);
    if (refusal !== null) return refusal;
    this.entries.set(flow, { flow, client, peers: [], connectionIds: [] });
    this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
    this.addPeer(flow, peer);
    return null;
  }

  /** The flow that knows `peer`. */
  byAddress(peer: PeerKey): Flow | undefined {
    return this.byPeer.get(peer);
  }

  /**
   * The flow a datagram from an unknown address belongs to, by the connection
   * ID it is sent to: a long header's DCID, or a short header's first bytes
   * read at each length of the known IDs.
   */
  byDestination(datagram: Buffer): Flow | undefined {
    if (datagram.length === 0) return undefined;
    if (isLongHeader(datagram[0]!)) {
      const header = parseLongHeader(datagram);
      return header && header.dcid.length > 0 ? this.byConnectionId.get(header.dcid.toString('hex')) : undefined;
    }
    for (const length of this.idLengths.keys()) {
      const dcid = shortHeaderDcid(datagram, length);
      const flow = dcid === null ? undefined : this.byConnectionId.get(dcid.toString('hex'));
      if (flow !== undefined) return flow;
    }
    return undefined;
  }

  /**
   * `flow` is also reached from `peer` now (an address no flow has). Returns
   * the address it forgets to stay within `maxPeersPerFlow`, if any (the
   * caller closes what it kept for it).
   */
  addPeer(flow: Flow, peer: PeerKey): PeerKey | null {
    const entry = this.entries.get(flow);
    if (entry === undefined || this.byPeer.has(peer)) return null;
    entry.peers.push(peer);
    this.byPeer.set(peer, flow);
    if (entry.peers.length <= this.limits.maxPeersPerFlow) return null;
    const oldest = entry.peers.shift()!;
    this.byPeer.delete(oldest);
    return oldest;
  }

  /** `flow` is also found by `id` (an empty ID identifies nothing; one another flow has stays with it). */
  addConnectionId(flow: Flow, id: Buffer): void {
    const entry = this.entries.get(flow);
    if (entry === undefined || id.length === 0 || entry.connectionIds.length >= this.limits.maxConnectionIdsPerFlow) return;
    const key = id.toString('hex');
    if (this.byConnectionId.has(key)) return;
    this.byConnectionId.set(key, flow);
    entry.connectionIds.push(key);
    this.idLengths.set(id.length, (this.idLengths.get(id.length) ?? 0) + 1);
  }

  remove(flow: Flow): void {
    const entry = this.entries.get(flow);
    if (entry === undefined) return;
    this.entries.delete(flow);
    for (const peer of entry.peers) this.byPeer.delete(peer);
    for (const key of entry.connectionIds) {
      this.byConnectionId.delete(key);
      const length = key.length / 2;
      const count = this.idLengths.get(length)! - 1;
      if (count === 0) this.idLengths.delete(length);
      else this.idLengths.set(length, count);
    }
    const count = this.perClient.get(entry.client)! - 1;
    if (count === 0) this.perClient.delete(entry.client);
    else this.perClient.set(entry.client, count);
  }
}
