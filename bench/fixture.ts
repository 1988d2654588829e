// What every bench script sets up first: a private CA and the backend's
// certificate, the backend, a captured ClientHello for the raw loads, and the
// TLS client's options (one context and one session to resume, as a real
// client keeps them).
import tls from 'node:tls';
import { createCertificateAuthority } from '../test/helpers/certificates.js';
import { captureClientHello } from '../test/helpers/client-hello-fixtures.js';
import { RAW_NAME, TLS_NAME } from './contenders.js';
import { type Backend, HOST, startBackend, type TlsClientOptions } from './load.js';

export interface Fixture {
  backend: Backend;
  /** Record-layer bytes of a ClientHello naming RAW_NAME, as Node's TLS client sends it. */
  hello: Buffer;
  tlsOptions: TlsClientOptions;
}

export async function startFixture(): Promise<Fixture> {
  const ca = await createCertificateAuthority('sni-passthrough bench CA');
  const backend = await startBackend(TLS_NAME, await ca.issue(TLS_NAME, [TLS_NAME]));
  const hello = await captureClientHello({ servername: RAW_NAME });
  const secureContext = tls.createSecureContext({ ca: ca.cert });
  // Resuming spares the load generator the certificate work; each handshake is still a real
  // TLS 1.3 handshake with a fresh key exchange, and the relay sees a real hello.
  const session = await new Promise<Buffer>((resolve, reject) => {
    const socket = tls.connect({ host: HOST, port: backend.port, servername: TLS_NAME, secureContext });
    socket.once('session', (ticket: Buffer) => {
      resolve(ticket);
      socket.destroy();
    });
    socket.once('error', reject);
  });
  return { backend, hello, tlsOptions: { servername: TLS_NAME, secureContext, session } };
}
