import tls from 'node:tls';
import type { BackendTlsOptions, HostLookup } from '../backends/dial.js';
import type { BackendPool } from '../backends/pool.js';
import type { Connection } from '../pipeline/connection.js';
import type { Preamble } from '../pipeline/preamble.js';
import type { Stage, Target } from '../pipeline/target.js';
import type { LeafIssuer } from '../tls/certificates.js';
import { BackendSession } from './backend-session.js';
import type { PoolSource } from './passthrough.js';

/** Leaf contexts kept per route; the oldest goes past this. */
const MAX_ISSUED_CONTEXTS = 1024;

/** Where a terminating route's certificate comes from: a context built from its files, or the local CA. */
export type CertificateSource = { context: tls.SecureContext } | { issuer: LeafIssuer; hostnames: readonly string[] };

export interface TerminateOptions {
  pool: PoolSource;
  resolver: HostLookup;
  certificates: CertificateSource;
  /** ALPN protocols offered to the client, in order of preference. */
  alpn: string[];
  /** Re-encrypt to the backends; null: plaintext to them. */
  backendTls: BackendTlsOptions | null;
}

/**
 * Completes the TLS handshake with the client itself (the route's
 * certificate), then sends the plaintext to the route's backends, or
 * re-encrypts it: terminating is one step in front of the same backend
 * session a passthrough route uses.
 */
export class TerminateTarget implements Target {
  private readonly options: TerminateOptions;
  /** Contexts of the local CA's leaves by server name; a renewed leaf replaces its context. */
  private readonly issued = new Map<string, { cert: string; context: tls.SecureContext }>();

  constructor(options: TerminateOptions) {
    this.options = options;
  }

  handle(connection: Connection, preamble: Preamble): void {
    // Before the handshake: a name no backend can be made from costs no TLS work.
    const pool = this.options.pool(connection.sni, connection.route);
    if (pool === null) {
      connection.settings.noBackendName.handle(connection, preamble);
      return;
    }
    let context: tls.SecureContext;
    try {
      context = this.contextFor(connection.sni);
    } catch (error) {
      // The local CA cannot name what the client asked for (or has expired): nothing to present.
      connection.host.observer.tlsHandshakeFailed(connection.settings.listener, connection.route ?? 'default', 'no_certificate');
      connection.finish('tls_handshake_failed', 'no_certificate', error as NodeJS.ErrnoException);
      return;
    }
    new ServerHandshake(this.options, pool, context, connection, preamble);
  }

  /**
   * The route's context, or the local CA's leaf for the name the client asked
   * for. A leaf names exactly that server name rather than the route's
   * patterns: browsers refuse a wildcard right under a one-label name
   * (`*.localhost`), and a name in a wildcard route is covered all the same.
   */
  private contextFor(serverName: string | null): tls.SecureContext {
    const { certificates } = this.options;
    if ('context' in certificates) return certificates.context;
    const name = serverName ?? certificates.hostnames.find((hostname) => !hostname.startsWith('*.')) ?? 'localhost';
    const leaf = certificates.issuer.leafFor([name]);
    let issued = this.issued.get(name);
    if (issued?.cert !== leaf.cert) {
      issued = { cert: leaf.cert, context: tls.createSecureContext({ cert: leaf.cert, key: leaf.key }) };
      this.issued.set(name, issued);
      // Bounded like the CA's own cache: names come from clients.
      if (this.issued.size > MAX_ISSUED_CONTEXTS) this.issued.delete(this.issued.keys().next().value!);
    }
    return issued.context;
  }
}

const kHandshake = Symbol('server handshake');
type HandshakeSocket = tls.TLSSocket & { [kHandshake]: ServerHandshake | null };

/** TLS errors that are the client's network going away rather than a failed handshake. */
const networkErrors = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/**
 * The handshake with the client: the ClientHello already read is given back
 * to the socket (unshift) for a TLS server session to read; bounded by
 * `clientHelloTimeout`; a failure is recorded with the route and reason.
 */
class ServerHandshake implements Stage {
  private readonly options: TerminateOptions;
  private readonly pool: BackendPool;
  private readonly connection: Connection;
  private readonly secure: HandshakeSocket;
  private readonly timer: NodeJS.Timeout;

  constructor(options: TerminateOptions, pool: BackendPool, context: tls.SecureContext, connection: Connection, preamble: Preamble) {
    this.options = options;
    this.pool = pool;
    this.connection = connection;
    const { client } = connection;
    client.pause();
    client.unshift(preamble.offset === 0 ? preamble.bytes : preamble.bytes.subarray(preamble.offset));
    const secure = new tls.TLSSocket(client, { isServer: true, secureContext: context, ALPNProtocols: options.alpn }) as HandshakeSocket;
    this.secure = secure;
    secure[kHandshake] = this;
    // Before the connection's own error handler: a failed handshake is recorded as such, not as the client leaving.
    secure.on('error', handshakeOnError);
    secure.on('secure', handshakeOnSecure);
    connection.useClientStream(secure);
    connection.setStage(this);
    this.timer = setTimeout(handshakeOnTimeout, connection.settings.clientHelloTimeout, this);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.detach();
  }

  secured(): void {
    this.stop();
    new BackendSession(this.pool, this.options.resolver, this.connection, [], this.options.backendTls).start();
  }

  failed(error: NodeJS.ErrnoException): void {
    const reason = error.code ?? error.message;
    if (networkErrors.has(reason)) {
      this.connection.finish('client_closed', reason, error);
      return;
    }
    this.report(reason);
    this.connection.finish('tls_handshake_failed', reason, error);
  }

  timedOut(): void {
    this.report('timeout');
    this.connection.finish('tls_handshake_failed', 'timeout');
  }

  private report(reason: string): void {
    const { connection } = this;
    connection.host.observer.tlsHandshakeFailed(connection.settings.listener, connection.route ?? 'default', reason);
  }

  private detach(): void {
    const { secure } = this;
    secure.off('error', handshakeOnError);
    secure.off('secure', handshakeOnSecure);
    secure[kHandshake] = null;
  }
}

function handshakeOnSecure(this: HandshakeSocket): void {
  this[kHandshake]?.secured();
}

function handshakeOnError(this: HandshakeSocket, error: NodeJS.ErrnoException): void {
  this[kHandshake]?.failed(error);
}

function handshakeOnTimeout(handshake: ServerHandshake): void {
  handshake.timedOut();
}
