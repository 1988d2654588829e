// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/**
 * Test and demo certificates: a private CA and leaf certificates issued by it,
 * made in-process with WebCrypto (ECDSA P-256, fast) so no openssl run is needed.
 */
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface KeyAndCertificate {
  key: string;
  cert: string;
}

export interface CertificateAuthority extends KeyAndCertificate {
  /** A leaf for `dnsNames`, with an ECDSA P-256 key (default) or an RSA 2048 one. */
  issue(commonName: string, dnsNames: string[], options?: { keyType?: 'ecdsa' | 'rsa' }): Promise<KeyAndCertificate>;
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`;
}

const rsaAlgorithm = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };

function generateKeys(keyType: 'ecdsa' | 'rsa' = 'ecdsa'): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(keyType === 'rsa' ? rsaAlgorithm : algorithm, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

const validity = (): { notBefore: Date; notAfter: Date } => ({
  notBefore: new Date(Date.now() - 60_000),
  notAfter: new Date(Date.now() + 7 * 24 * 3600_000),
});

export async function createCertificateAuthority(name = 'sni-passthrough test CA'): Promise<CertificateAuthority> {
  const keys = await generateKeys();
  const caCertificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: algorithm,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    key: await privateKeyPem(keys.privateKey),
    cert: caCertificate.toString('pem'),
    async issue(commonName, dnsNames, options = {}) {
      const leafKeys = await generateKeys(options.keyType);
      const certificate = await x509.X509CertificateGenerator.create({
        subject: `CN=${commonName}`,
        issuer: caCertificate.subject,
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: algorithm,
        ...validity(),
        extensions: [
          new x509.BasicConstraintsExtension(false),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value }))),
          await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      return { key: await privateKeyPem(leafKeys.privateKey), cert: certificate.toString('pem') };
    },
  };
}
