import t from 'tap';
import { QuicError } from '../../lib/errors.js';
import { QuicHelloReader } from '../../lib/quic/hello-reader.js';
import { QUIC_V1, QUIC_V2 } from '../../lib/quic/packet.js';
import { buildClientHello } from '../helpers/client-hello-fixtures.js';
import { buildInitialPacket, cryptoFrame, PING_FRAME } from '../helpers/quic-initial.js';

const ORIGINAL_DCID = Buffer.from('0a0b0c0d0e0f1011', 'hex');
const SERVER_CID = Buffer.from('5e5e5e5e', 'hex');
const SCID = Buffer.from('c1c2', 'hex');

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'nothing thrown';
  } catch (error) {
    return error instanceof QuicError ? error.code : `not a QuicError: ${String(error)}`;
  }
}

t.test('keeps the original DCID and the largest packet number across datagrams', async (t) => {
  for (const version of [QUIC_V1, QUIC_V2]) {
    const hello = buildClientHello({ serverName: 'reader.example', alpn: ['h3'] });
    const reader = new QuicHelloReader(64 * 1024);
    t.equal(reader.clientDcid, undefined, 'no Initial read yet');
    const first = buildInitialPacket({
      version,
      dcid: ORIGINAL_DCID,
      scid: SCID,
      packetNumber: 250,
      frames: cryptoFrame(0, hello.subarray(0, 40)),
      padTo: 1200,
    });
    t.same(reader.read(first), { kind: 'incomplete' });
    t.same(reader.clientDcid, ORIGINAL_DCID);
    // The rest comes in a packet sent to the server's connection ID, its number (260) sent in one byte.
    const second = buildInitialPacket({
      version,
      dcid: SERVER_CID,
      keyDcid: ORIGINAL_DCID,
      scid: SCID,
      packetNumber: 260,
      packetNumberLength: 1,
      frames: cryptoFrame(40, hello.subarray(40)),
    });
    t.same(reader.read(second), { kind: 'complete', hello: { serverName: 'reader.example', alpn: ['h3'], sslv2: false } }, `0x${version.toString(16)}`);
    t.same(reader.clientDcid, ORIGINAL_DCID, 'still the original');
    t.equal(reader.bufferedBytes, hello.length);
  }
});

t.test('a refused datagram leaves what earlier ones gave', async (t) => {
  const reader = new QuicHelloReader(100);
  reader.read(buildInitialPacket({ version: QUIC_V1, dcid: ORIGINAL_DCID, scid: SCID, packetNumber: 0, frames: cryptoFrame(0, Buffer.from([1, 0, 0])) }));
  const forged = buildInitialPacket({ version: QUIC_V1, dcid: Buffer.from('ffffffffffffffff', 'hex'), scid: SCID, packetNumber: 1, frames: PING_FRAME });
  t.equal(
    codeOf(() => reader.read(forged)),
    'QUIC_DECRYPT_FAILED',
    'keys of another DCID',
  );
  const tooMuch = buildInitialPacket({ version: QUIC_V1, dcid: ORIGINAL_DCID, scid: SCID, packetNumber: 2, frames: cryptoFrame(90, Buffer.alloc(20)) });
  t.equal(
    codeOf(() => reader.read(tooMuch)),
    'QUIC_CRYPTO_TOO_LARGE',
    'past the bound',
  );
  t.equal(reader.bufferedBytes, 3);
  t.same(reader.read(Buffer.concat([Buffer.from([0x40]), SERVER_CID, Buffer.alloc(30)])), { kind: 'incomplete' }, 'a short-header datagram adds nothing');
});
