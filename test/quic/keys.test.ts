import t from 'tap';
import { clientInitialKeys, clientInitialSecret, headerProtectionMask, hkdfExpandLabel, isSupportedVersion, packetNonce } from '../../lib/quic/keys.js';
import { QUIC_V1, QUIC_V2 } from '../../lib/quic/packet.js';
import { RFC_DCID, RFC9001, RFC9369, type RfcClientInitialVectors } from '../helpers/quic-rfc-vectors.js';

const examples: Array<[string, number, RfcClientInitialVectors]> = [
  ['QUIC v1 (RFC 9001 A.1, A.2)', QUIC_V1, RFC9001],
  ['QUIC v2 (RFC 9369 A.1, A.2)', QUIC_V2, RFC9369],
];

for (const [name, version, vectors] of examples) {
  t.test(`${name}: client Initial secret and keys`, async (t) => {
    t.same(clientInitialSecret(version, RFC_DCID)?.toString('hex'), vectors.clientInitialSecret.toString('hex'), 'client_initial_secret');
    const keys = clientInitialKeys(version, RFC_DCID);
    t.same(keys?.key.toString('hex'), vectors.key.toString('hex'), 'key');
    t.same(keys?.iv.toString('hex'), vectors.iv.toString('hex'), 'iv');
    t.same(keys?.hp.toString('hex'), vectors.hp.toString('hex'), 'hp');
  });

  t.test(`${name}: header protection mask of the sample`, async (t) => {
    const mask = headerProtectionMask(vectors.hp, vectors.sample);
    t.equal(mask.length, 16, 'one AES block');
    t.equal(mask.subarray(0, 5).toString('hex'), vectors.mask.toString('hex'));
  });
}

t.test('HKDF-Expand-Label: the "client in" info of RFC 9001 A.1 (00200f746c73313320636c69656e7420696e00)', async (t) => {
  // The RFC gives the label's encoding; HKDF-Expand over it from the initial secret is HMAC(secret, info || 0x01).
  const initialSecret = Buffer.from('7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44', 'hex');
  t.equal(hkdfExpandLabel(initialSecret, 'client in', 32).toString('hex'), RFC9001.clientInitialSecret.toString('hex'));
});

t.test('versions without a published Initial salt have no keys', async (t) => {
  for (const version of [0, 2, 0xff00001d, 0x709a50c4, 0x1a2a3a4a]) {
    t.equal(isSupportedVersion(version), false, `0x${version.toString(16)}`);
    t.equal(clientInitialKeys(version, RFC_DCID), null);
    t.equal(clientInitialSecret(version, RFC_DCID), null);
  }
  t.equal(isSupportedVersion(QUIC_V1), true);
  t.equal(isSupportedVersion(QUIC_V2), true);
});

t.test('the nonce is the IV with the packet number XORed into its low bytes, beyond 32 bits too', async (t) => {
  const iv = RFC9001.iv;
  const expected = (packetNumber: bigint) => {
    const out = Buffer.from(iv);
    out.writeBigUInt64BE(out.readBigUInt64BE(4) ^ packetNumber, 4);
    return out.toString('hex');
  };
  for (const packetNumber of [0, 2, 255, 0xffff_ffff, 0x1_0000_0000, 2 ** 40 + 12345, 2 ** 53 - 1]) {
    t.equal(packetNonce(iv, packetNumber).toString('hex'), expected(BigInt(packetNumber)), `packet number ${packetNumber}`);
  }
  t.equal(iv.toString('hex'), 'fa044b2f42a3fd3b46fb255c', 'the IV itself is left as it was');
});
