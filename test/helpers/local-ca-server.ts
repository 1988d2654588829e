import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import type { LocalCertificateAuthority } from '../../lib/tls/local-ca.js';

export interface LocalCaServer {
  port: number;
  /** Server names the clients sent, in order (a client without SNI gets the 127.0.0.1 certificate and adds nothing). */
  serverNames: string[];
  close(): Promise<void>;
}

/** The text of the page each request gets: it names the Host asked for, so a client's output shows the page loaded. */
export function greeting(host: string): string {
  return `served by the local CA test server to ${host}`;
}

/**
 * An HTTPS server on 127.0.0.1 whose certificate comes from `ca.leafFor`,
 * for the server name each client sends (127.0.0.1 without one): the way a
 * terminating route is meant to use the local CA.
 */
export async function startLocalCaServer(ca: LocalCertificateAuthority): Promise<LocalCaServer> {
  const serverNames: string[] = [];
  const fallback = ca.leafFor(['127.0.0.1']);
  const server = https.createServer(
    {
      cert: fallback.cert,
      key: fallback.key,
      SNICallback: (name, callback) => {
        serverNames.push(name);
        try {
          callback(null, tls.createSecureContext(ca.leafFor([name])));
        } catch (error) {
          callback(error as Error);
        }
      },
    },
    (request, response) => {
      response.setHeader('content-type', 'text/html; charset=utf-8');
      response.setHeader('connection', 'close');
      response.end(`<html><body><p>${greeting(request.headers.host ?? '')}</p></body></html>`);
    },
  );
  server.on('tlsClientError', () => {});
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  return {
    port,
    serverNames,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
