// X.509 v3 certificates (RFC 5280) for the local CA: a self-signed CA
// certificate and server leaf certificates it signs, ECDSA P-256 with SHA-256,
// built from the DER pieces in der.ts and signed with node:crypto.

import { createHash, type KeyObject, randomBytes, sign } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import {
  bitString,
  boolean,
  explicit,
  implicit,
  integer,
  namedBits,
  octetString,
  oid,
  readChildren,
  readElement,
  sequence,
  set,
  TAG_IA5_STRING,
  TAG_PRINTABLE_STRING,
  TAG_UTF8_STRING,
  time,
  utf8String,
} from './der.js';

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
};

/** KeyUsage bit numbers (RFC 5280 4.2.1.3). */
const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 };

/** Upper bound of a commonName (RFC 5280 ub-common-name). */
const MAX_COMMON_NAME = 64;

export interface NameAttributes {
  organization?: string;
  organizationalUnit?: string;
  commonName?: string;
}

/** A distinguished name: one attribute per RDN, most general first (O, OU, CN), as UTF8String (RFC 5280 4.1.2.6). */
function distinguishedName(attributes: NameAttributes): Buffer {
  const rdns: Buffer[] = [];
  const add = (type: string, value: string | undefined): void => {
    if (value !== undefined) rdns.push(set(sequence(oid(type), utf8String(value))));
  };
  add(OID.organization, attributes.organization);
  add(OID.organizationalUnit, attributes.organizationalUnit);
  add(OID.commonName, attributes.commonName);
  return sequence(...rdns);
}

function extension(type: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(type), boolean(true), octetString(value)) : sequence(oid(type), octetString(value));
}

/**
 * The key identifier of a public key: SHA-1 of the subjectPublicKey bits
 * (RFC 5280 4.2.1.2, method 1), as OpenSSL computes it, so the CA's subject
 * and the leaves' authority key identifiers agree with other tools.
 */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const [, subjectPublicKey] = readChildren(spki, readElement(spki));
  if (!subjectPublicKey) throw new RangeError('SubjectPublicKeyInfo without a key');
  // Skip the BIT STRING's unused-bits byte.
  return createHash('sha1')
    .update(spki.subarray(subjectPublicKey.contentStart + 1, subjectPublicKey.end))
    .digest();
}

/** A random positive 16-byte serial number (CA/Browser Forum: at least 64 random bits). The top bits are fixed so it always encodes in 16 bytes. */
function randomSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x3f) | 0x40;
  return serial;
}

interface CertificateFields {
  subject: Buffer;
  issuer: Buffer;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
}

/** Builds the TBSCertificate and signs it with `signingKey` (EC): the whole certificate, DER. */
function signCertificate(fields: CertificateFields, signingKey: KeyObject): Buffer {
  if (signingKey.asymmetricKeyType !== 'ec') throw new TypeError(`the signing key must be an EC key, not ${signingKey.asymmetricKeyType}`);
  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const tbs = sequence(
    explicit(0, integer(2n)), // v3
    integer(randomSerial()),
    algorithm,
    fields.issuer,
    sequence(time(fields.notBefore), time(fields.notAfter)),
    fields.subject,
    fields.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(...fields.extensions)),
  );
  return sequence(tbs, algorithm, bitString(sign('sha256', tbs, signingKey)));
}

export interface CaCertificateOptions {
  name: NameAttributes;
  publicKey: KeyObject;
  privateKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
}

/** A self-signed CA certificate that may sign leaf certificates only (pathLen 0). */
export function caCertificate(options: CaCertificateOptions): Buffer {
  const name = distinguishedName(options.name);
  return signCertificate(
    {
      subject: name,
      issuer: name,
      publicKey: options.publicKey,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      extensions: [
        extension(OID.basicConstraints, true, sequence(boolean(true), integer(0n))),
        extension(OID.keyUsage, true, namedBits([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign])),
        extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(options.publicKey))),
      ],
    },
    options.privateKey,
  );
}

/** The 4 or 16 bytes of an IP address (an IPv6 zone, "%eth0", is not part of it). */
export function ipAddressBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  const plain = address.replace(/%.*$/, '');
  if (!isIPv6(plain)) throw new RangeError(`not an IP address: "${address}"`);
  // A dotted IPv4 tail ("::ffff:1.2.3.4") stands for the last two groups.
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(plain)?.[1];
  const text = v4Tail
    ? `${plain.slice(0, -v4Tail.length)}${ipAddressBytes(v4Tail)
        .toString('hex')
        .replace(/^(.{4})/, '$1:')}`
    : plain;
  const [head = '', tail] = text.split('::');
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const known = [...groups(head), ...(tail === undefined ? [] : groups(tail))].length;
  const all = tail === undefined ? groups(head) : [...groups(head), ...Array<string>(8 - known).fill('0'), ...groups(tail)];
  return Buffer.from(all.map((group) => group.padStart(4, '0')).join(''), 'hex');
}

/** GeneralNames for subjectAltName: IP literals as iPAddress [7], everything else as dNSName [2]. */
function subjectAltNames(hostnames: readonly string[]): Buffer {
  return sequence(...hostnames.map((name) => (isIPv4(name) || isIPv6(name) ? implicit(7, ipAddressBytes(name)) : implicit(2, Buffer.from(name, 'ascii')))));
}

export interface LeafCertificateOptions {
  /** DNS names (wildcards as "*.suffix") and IP addresses, already normalized (lower-case, ASCII). */
  hostnames: readonly string[];
  publicKey: KeyObject;
  /** The issuing CA: its subject name (DER, taken from its certificate) and key pair. */
  issuer: { name: Buffer; publicKey: KeyObject; privateKey: KeyObject };
  notBefore: Date;
  notAfter: Date;
}

/**
 * A TLS server certificate for `hostnames`: the names in subjectAltName (which
 * is what clients check; Chrome ignores the commonName), serverAuth only, and
 * the issuing key's identifier so clients find the CA.
 */
export function leafCertificate(options: LeafCertificateOptions): Buffer {
  if (options.hostnames.length === 0) throw new RangeError('a leaf certificate needs at least one hostname');
  const firstDnsName = options.hostnames.find((name) => !isIPv4(name) && !isIPv6(name));
  const commonName = firstDnsName && firstDnsName.length <= MAX_COMMON_NAME ? firstDnsName : undefined;
  return signCertificate(
    {
      subject: distinguishedName({ organization: 'sni-passthrough', commonName }),
      issuer: options.issuer.name,
      publicKey: options.publicKey,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      extensions: [
        extension(OID.basicConstraints, true, sequence()),
        extension(OID.keyUsage, true, namedBits([KEY_USAGE.digitalSignature])),
        extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, subjectAltNames(options.hostnames)),
        extension(OID.authorityKeyIdentifier, false, sequence(implicit(0, keyIdentifier(options.issuer.publicKey)))),
      ],
    },
    options.issuer.privateKey,
  );
}

/** The subject name of a certificate, DER as it is encoded there (a leaf's issuer must match it byte for byte). */
export function certificateSubject(certificate: Buffer): Buffer {
  const [tbs] = readChildren(certificate, readElement(certificate));
  if (!tbs) throw new RangeError('certificate without a TBSCertificate');
  const fields = readChildren(certificate, tbs);
  // version [0], serialNumber, signature, issuer, validity, subject
  const subject = fields[fields[0]?.tag === 0xa0 ? 5 : 4];
  if (!subject) throw new RangeError('certificate without a subject');
  return certificate.subarray(subject.start, subject.end);
}

/** String types whose bytes read as UTF-8 (IA5 and Printable are ASCII subsets). */
const TEXT_TAGS = new Set([TAG_UTF8_STRING, TAG_PRINTABLE_STRING, TAG_IA5_STRING]);

/**
 * OpenSSL's subject hash (`openssl x509 -hash`), the file name `<hash>.0` a
 * CA gets in a hashed directory (`-CApath`, `curl --capath`): the first four
 * bytes, little-endian, of SHA-1 over the name's canonical encoding, where each
 * value becomes a UTF8String trimmed, with inner whitespace runs collapsed and
 * ASCII lower-cased, and the outer SEQUENCE header is left off (OpenSSL
 * x509_name_canon). Only text values of the types above are supported.
 */
export function opensslSubjectHash(certificate: Buffer): string {
  const subject = certificateSubject(certificate);
  const canonical = readChildren(subject, readElement(subject)).map((rdn) =>
    set(
      ...readChildren(subject, rdn).map((attribute) => {
        const [type, value] = readChildren(subject, attribute);
        if (!type || !value || !TEXT_TAGS.has(value.tag)) throw new RangeError('unsupported attribute in a certificate name');
        const text = Buffer.from(subject.subarray(value.contentStart, value.end))
          .toString('utf8')
          .replace(/[ \t\n\v\f\r]+/g, ' ')
          .trim()
          .replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
        return sequence(subject.subarray(type.start, type.end), utf8String(text));
      }),
    ),
  );
  return createHash('sha1').update(Buffer.concat(canonical)).digest().subarray(0, 4).readUInt32LE(0).toString(16).padStart(8, '0');
}
