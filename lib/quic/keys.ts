// Initial packet protection keys (RFC 9001 section 5.2; QUIC v2: RFC 9369
// section 3.3). They derive from a salt published in the RFC and the
// Destination Connection ID of the client's first Initial packet, so anyone who
// sees that packet can derive them: this is what lets the proxy read the
// ClientHello without holding any key of the backend's.
import { createCipheriv, createHmac } from 'node:crypto';
import { QUIC_V1, QUIC_V2 } from './packet.js';

export interface PacketProtectionKeys {
  /** AEAD_AES_128_GCM key. */
  key: Buffer;
  /** Nonce base: the packet number is XORed into its last bytes. */
  iv: Buffer;
  /** Header protection key (AES-128-ECB). */
  hp: Buffer;
}

interface VersionSecrets {
  salt: Buffer;
  keyLabel: string;
  ivLabel: string;
  hpLabel: string;
}

const versionSecrets = new Map<number, VersionSecrets>([
  [QUIC_V1, { salt: Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex'), keyLabel: 'quic key', ivLabel: 'quic iv', hpLabel: 'quic hp' }],
  [QUIC_V2, { salt: Buffer.from('0dede3def700a6db819381be6e269dcbf9bd2ed9', 'hex'), keyLabel: 'quicv2 key', ivLabel: 'quicv2 iv', hpLabel: 'quicv2 hp' }],
]);

const HASH = 'sha256';
const HASH_BYTES = 32;
const KEY_BYTES = 16;
const IV_BYTES = 12;
const HP_KEY_BYTES = 16;
export const HP_SAMPLE_BYTES = 16;

/** Whether this module knows the salt and labels of `version`. */
export function isSupportedVersion(version: number): boolean {
  return versionSecrets.has(version);
}

/**
 * HKDF-Expand-Label of TLS 1.3 (RFC 8446 section 7.1) with an empty context,
 * for outputs of at most one SHA-256 block (every QUIC Initial secret and key).
 */
export function hkdfExpandLabel(secret: Buffer, label: string, length: number): Buffer {
  const fullLabel = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.alloc(2 + 1 + fullLabel.length + 1 + 1);
  info.writeUInt16BE(length, 0);
  info[2] = fullLabel.length;
  fullLabel.copy(info, 3);
  info[3 + fullLabel.length] = 0; // context length: empty
  info[4 + fullLabel.length] = 1; // HKDF-Expand's block counter T(1)
  return createHmac(HASH, secret).update(info).digest().subarray(0, length);
}

/** client_initial_secret of RFC 9001 section 5.2, or null for a version without published Initial salt. */
export function clientInitialSecret(version: number, originalDcid: Buffer): Buffer | null {
  const secrets = versionSecrets.get(version);
  if (secrets === undefined) return null;
  const initialSecret = createHmac(HASH, secrets.salt).update(originalDcid).digest(); // HKDF-Extract
  return hkdfExpandLabel(initialSecret, 'client in', HASH_BYTES);
}

/** The keys that protect the client's Initial packets of a connection whose first Initial carried `originalDcid`. */
export function clientInitialKeys(version: number, originalDcid: Buffer): PacketProtectionKeys | null {
  const secrets = versionSecrets.get(version);
  if (secrets === undefined) return null;
  const secret = clientInitialSecret(version, originalDcid)!;
  return {
    key: hkdfExpandLabel(secret, secrets.keyLabel, KEY_BYTES),
    iv: hkdfExpandLabel(secret, secrets.ivLabel, IV_BYTES),
    hp: hkdfExpandLabel(secret, secrets.hpLabel, HP_KEY_BYTES),
  };
}

/** The header protection mask for AES-based packet protection (RFC 9001 section 5.4.3): AES-ECB of the sample. */
export function headerProtectionMask(hp: Buffer, sample: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-128-ecb', hp, null);
  cipher.setAutoPadding(false);
  return cipher.update(sample);
}

/** The AEAD nonce of packet number `packetNumber` (RFC 9001 section 5.3): the IV with the packet number XORed into its end. */
export function packetNonce(iv: Buffer, packetNumber: number): Buffer {
  const nonce = Buffer.from(iv);
  // A packet number has up to 62 bits; written as two 32-bit halves because bitwise operators stop at 32.
  const high = Math.floor(packetNumber / 0x1_0000_0000);
  const low = packetNumber % 0x1_0000_0000;
  nonce.writeUInt32BE((nonce.readUInt32BE(IV_BYTES - 8) ^ high) >>> 0, IV_BYTES - 8);
  nonce.writeUInt32BE((nonce.readUInt32BE(IV_BYTES - 4) ^ low) >>> 0, IV_BYTES - 4);
  return nonce;
}
