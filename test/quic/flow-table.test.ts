// FlowTable (lib/quic/flow-table.ts): QUIC flows found by client address, or
// from a new address by the connection ID a datagram is sent to (NAT
// rebinding), within limits per listener, per client and per flow.
import t from 'tap';
import { FlowTable } from '../../lib/quic/flow-table.js';
import { buildLongHeaderPacket, QUIC_V1 } from '../helpers/quic-initial.js';

const limits = { maxFlows: 3, maxFlowsPerClient: 2, maxPeersPerFlow: 2, maxConnectionIdsPerFlow: 3 };

/** A 1-RTT (short header) datagram sent to `dcid`. */
function shortHeader(dcid: Buffer, payload = Buffer.alloc(30, 0xaa)): Buffer {
  return Buffer.concat([Buffer.from([0x41]), dcid, payload]);
}

function handshake(dcid: Buffer): Buffer {
  return buildLongHeaderPacket({ version: QUIC_V1, packetType: 'handshake', dcid, scid: Buffer.alloc(0), body: Buffer.alloc(40, 1) });
}

t.test('a flow is found by the address it started from, and is gone once removed', async (t) => {
  const table = new FlowTable<string>(limits);
  t.equal(table.add('a', '192.0.2.1', '192.0.2.1:5000'), null);
  t.equal(table.byAddress('192.0.2.1:5000'), 'a');
  t.equal(table.byAddress('192.0.2.1:5001'), undefined, 'another port is another flow');
  t.equal(table.size, 1);
  table.remove('a');
  t.equal(table.byAddress('192.0.2.1:5000'), undefined);
  t.equal(table.size, 0);
  table.remove('a');
  t.equal(table.size, 0, 'removing twice is harmless');
});

t.test('limits: flows per listener and per client address', async (t) => {
  const table = new FlowTable<string>(limits);
  t.equal(table.add('a', '192.0.2.1', '192.0.2.1:1'), null);
  t.equal(table.add('b', '192.0.2.1', '192.0.2.1:2'), null);
  t.equal(table.add('c', '192.0.2.1', '192.0.2.1:3'), 'client_limit');
  t.equal(table.byAddress('192.0.2.1:3'), undefined, 'a refused flow is not added');
  t.equal(table.add('c', '192.0.2.2', '192.0.2.2:1'), null);
  t.equal(table.add('d', '192.0.2.3', '192.0.2.3:1'), 'flow_limit');
  table.remove('a');
  t.equal(table.refusal('192.0.2.1'), null, 'a slot of the client is free again');
  t.equal(table.add('d', '192.0.2.1', '192.0.2.1:4'), null);
  table.setLimits({ ...limits, maxFlowsPerClient: 0, maxFlows: 10 });
  t.equal(table.add('e', '192.0.2.1', '192.0.2.1:5'), null, 'maxFlowsPerClient 0 is no limit');
});

t.test('a short-header datagram from a new address finds its flow by a server connection ID of any known length', async (t) => {
  const table = new FlowTable<string>(limits);
  table.add('a', '192.0.2.1', '192.0.2.1:5000');
  table.add('b', '192.0.2.2', '192.0.2.2:5000');
  const serverCidA = Buffer.from('0102030405060708', 'hex');
  const serverCidB = Buffer.from('a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4', 'hex');
  table.addConnectionId('a', serverCidA);
  table.addConnectionId('b', serverCidB);
  t.equal(table.byDestination(shortHeader(serverCidA)), 'a', '8-byte ID');
  t.equal(table.byDestination(shortHeader(serverCidB)), 'b', '20-byte ID');
  t.equal(table.byDestination(shortHeader(Buffer.from('ffffffffffffffff', 'hex'))), undefined, 'an unknown ID');
  t.equal(table.byDestination(Buffer.alloc(0)), undefined, 'an empty datagram');
  t.equal(table.byDestination(Buffer.from([0x41, 1, 2])), undefined, 'shorter than any known ID');

  t.equal(table.addPeer('a', '198.51.100.7:6000'), null, 'the flow is reached from the new address too');
  t.equal(table.byAddress('198.51.100.7:6000'), 'a');
  t.equal(table.byAddress('192.0.2.1:5000'), 'a', 'and still from the old one');

  table.remove('a');
  t.equal(table.byDestination(shortHeader(serverCidA)), undefined, 'its IDs go with it');
  t.equal(table.byAddress('198.51.100.7:6000'), undefined, 'and its addresses');
  t.equal(table.byDestination(shortHeader(serverCidB)), 'b', 'the other flow stays');
});

t.test('a long-header datagram is matched by its DCID (the client DCID of an Initial, a server ID in a Handshake)', async (t) => {
  const table = new FlowTable<string>(limits);
  table.add('a', '192.0.2.1', '192.0.2.1:5000');
  const clientDcid = Buffer.from('c0c1c2c3c4c5c6c7c8', 'hex');
  table.addConnectionId('a', clientDcid);
  t.equal(table.byDestination(handshake(clientDcid)), 'a');
  t.equal(table.byDestination(handshake(Buffer.from('c0c1c2c3c4c5c6c7', 'hex'))), undefined, 'a prefix of a known ID is not that ID');
  t.equal(table.byDestination(Buffer.from([0xc0, 0, 0, 0, 1])), undefined, 'a cut header');
});

t.test('a flow keeps at most maxPeersPerFlow addresses, forgetting the oldest, and at most maxConnectionIdsPerFlow IDs', async (t) => {
  const table = new FlowTable<string>(limits);
  table.add('a', '192.0.2.1', '192.0.2.1:1');
  t.equal(table.addPeer('a', '192.0.2.1:2'), null);
  t.equal(table.addPeer('a', '192.0.2.1:3'), '192.0.2.1:1', 'the oldest address is given back to be closed');
  t.equal(table.byAddress('192.0.2.1:1'), undefined);
  t.equal(table.addPeer('a', '192.0.2.1:3'), null, 'an address it has already is no change');

  table.add('b', '192.0.2.2', '192.0.2.2:1');
  t.equal(table.addPeer('b', '192.0.2.1:3'), null, 'an address another flow has is not taken from it');
  t.equal(table.byAddress('192.0.2.1:3'), 'a');

  const ids = [1, 2, 3, 4].map((n) => Buffer.alloc(8, n));
  for (const id of ids) table.addConnectionId('a', id);
  t.same(
    ids.map((id) => table.byDestination(shortHeader(id))),
    ['a', 'a', 'a', undefined],
    'the fourth ID is not learnt',
  );
  table.addConnectionId('b', ids[0]!);
  t.equal(table.byDestination(shortHeader(ids[0]!)), 'a', 'an ID another flow has stays with it');
  table.addConnectionId('b', Buffer.alloc(0));
  t.equal(table.byDestination(Buffer.from([0x41, 1, 2, 3])), undefined, 'an empty ID identifies nothing');
});

t.test('removing flows lets the lengths they alone had go: a datagram is then tried at fewer lengths', async (t) => {
  const table = new FlowTable<number>({ ...limits, maxFlows: 100, maxFlowsPerClient: 0 });
  for (let length = 1; length <= 20; length++) {
    table.add(length, '192.0.2.1', `192.0.2.1:${length}`);
    table.addConnectionId(length, Buffer.alloc(length, length));
  }
  for (let length = 1; length <= 20; length++) t.equal(table.byDestination(shortHeader(Buffer.alloc(length, length))), length);
  for (let length = 1; length <= 20; length++) table.remove(length);
  t.equal(table.size, 0);
  t.equal(table.byDestination(shortHeader(Buffer.alloc(8, 8))), undefined);
});
