/**
 * The loaded configuration: plain, serializable data (no classes, maps or
 * functions) so it can be logged, diffed, served as JSON and later sent to
 * worker processes unchanged.
 */

/** Where to listen. `host` null means all interfaces. */
export interface ListenAddress {
  host: string | null;
  port: number;
}

export type ProxyProtocolVersion = 'v1' | 'v2';
/** What a listener's clients speak: TLS (routed by the ClientHello) or plain HTTP/1.x (routed by the Host header). */
export type ListenerProtocol = 'tls' | 'http';
export type BalanceMode = 'roundrobin' | 'leastconn' | 'source';

export interface BackendConfig {
  /** `host:port` as written (IPv6 in brackets); also the backend's identity in logs and health state. */
  address: string;
  /**
   * An IP address, a DNS name, or (see `isHostTemplate`) a template such as
   * "{1}.internal" that each connection fills from the name its route matched.
   */
  host: string;
  port: number;
  weight: number;
  /** PROXY protocol header to send before the ClientHello (the backend's own setting, else its route's). */
  proxyProtocol: ProxyProtocolVersion | null;
}

export interface HealthCheckConfig {
  interval: number;
  timeout: number;
  /** Consecutive successes that bring a backend up. */
  rise: number;
  /** Consecutive failures that take it down. */
  fall: number;
}

/** Client address lists: CIDRs in canonical form ("10.0.0.0/8", "::1/128"). */
export interface AccessLists {
  allow: string[];
  deny: string[];
}

/** A position in the config file (1-based), kept for errors found after parsing (a certificate that does not load). */
export interface ConfigPosition {
  line: number;
  col: number;
}

export interface CertificateFiles {
  /** Absolute path of the PEM certificate chain. */
  cert: string;
  /** Absolute path of its PEM private key. */
  key: string;
}

/** A route that completes the TLS handshake itself and passes the plaintext on. */
export interface TerminateTlsConfig {
  /** Certificate and key files (several: e.g. RSA and ECDSA, picked by what the client supports), or 'internal': issued by the local CA. */
  certificates: CertificateFiles[] | 'internal';
  /** ALPN protocols offered to clients, in order of preference. */
  alpn: string[];
  position: ConfigPosition;
}

/** TLS from the proxy to the backends of a terminating route. */
export interface BackendTlsConfig {
  /** Absolute path of the PEM CA certificates the backends' must chain to; null: the system's. */
  ca: string | null;
  /** Sent as SNI and checked in the backends' certificates; null: the client's SNI (else the backend's host). */
  servername: string | null;
  verify: boolean;
  position: ConfigPosition;
}

export interface RouteConfig extends AccessLists {
  /** Normalized patterns: lower-case ASCII, no trailing dot; wildcards keep their `*.` prefix. Empty for the default route. */
  hostnames: string[];
  /** The route matches only clients offering one of these ALPN protocols; empty: any client. */
  alpn: string[];
  backends: BackendConfig[];
  balance: BalanceMode;
  /** Backends tried after the first fails; null: each backend once. */
  retries: number | null;
  /** Consecutive connect failures that take a backend out for `failTimeout`; 0 turns passive health off. */
  maxFails: number;
  failTimeout: number;
  healthCheck: HealthCheckConfig | null;
  /** Terminate TLS here; null: pass the encrypted stream through. */
  tls: TerminateTlsConfig | null;
  backendTls: BackendTlsConfig | null;
  /** HTTP listeners: answer every request with a redirect instead of passing it to `backends` (then empty); null: no redirect. */
  redirect: RedirectConfig | null;
  /** HTTP listeners: backends for requests under `/.well-known/acme-challenge/` (ACME http-01); empty: none, they follow the route. */
  acmeChallenge: BackendConfig[];
}

/** A `308 Permanent Redirect` to the same host and request target over https. */
export interface RedirectConfig {
  scheme: 'https';
  /** The port in the Location; 443 is left out. */
  port: number;
}

/** Durations in milliseconds; 0 disables the timeout where that makes sense. */
export interface ConnectionTimeouts {
  clientHelloTimeout: number;
  connectTimeout: number;
  idleTimeout: number;
  /** Once either side has sent its FIN, close after this long without a byte (HAProxy's `timeout client-fin`/`server-fin`). */
  halfCloseTimeout: number;
  drainTimeout: number;
}

export interface ListenerConfig extends ConnectionTimeouts, AccessLists {
  name: string;
  listen: ListenAddress;
  /** What clients send first, and so what routes them: a TLS ClientHello (SNI, ALPN) or an HTTP request head (Host). */
  protocol: ListenerProtocol;
  /** Read a PROXY protocol v1/v2 header from the upstream load balancer before the ClientHello. */
  acceptProxyProtocol: boolean;
  /** CIDRs of the peers allowed to send that header (normalized); empty: any peer. */
  proxyProtocolFrom: string[];
  /** Open connections at which new clients wait, connected but unread, until one ends; 0: no limit. */
  maxConnections: number;
  /** Open connections one client address may have; more are closed at once. 0: no limit. */
  maxConnectionsPerClient: number;
  routes: RouteConfig[];
  defaultRoute: RouteConfig | null;
  /** Also pass QUIC (HTTP/3) through, routed by the ClientHello in its Initial packets, on UDP at the same address; null: TCP only. */
  quic: QuicConfig | null;
}

/** Limits of a listener's QUIC flows (one flow: one client's QUIC connection, on one backend). */
export interface QuicConfig {
  /** Flows open at once on the listener; a new client beyond it gets no answer (its Initials are dropped). */
  maxFlows: number;
  /** Flows one client address may have open; 0: no limit. */
  maxFlowsPerClient: number;
  /** Bytes of a flow's datagrams held while its ClientHello is incomplete (and until its backend first answers). */
  maxHelloBytes: number;
}

export interface AdminConfig {
  listen: ListenAddress;
  /** Needed to bind anything but a loopback address. */
  allowRemote: boolean;
}

/** How many worker processes serve the listeners: a number, or `auto` (one per CPU the process may use). */
export type WorkersSetting = number | 'auto';

export interface ProxyConfig {
  /** Worker processes; 1 (the default) serves everything in the one process, with no primary/worker split. */
  workers: WorkersSetting;
  listeners: ListenerConfig[];
  /** The HTTP admin endpoint (metrics, health, config, reload); null: off. */
  admin: AdminConfig | null;
  /** Absolute path of the local CA's directory (`tls: internal`); null: the default (or the command line's). */
  stateDir: string | null;
  /** DNS servers ("IP:port", IPv6 in brackets) that resolve backend names; empty: the system resolver. */
  resolvers: string[];
}
