import type { AccessCheck } from '../routing/access-list.js';
import type { RouteTable } from '../routing/route-table.js';
import type { PreambleProtocol } from './preamble.js';
import type { Target } from './target.js';

/** A route as matching sees it: its patterns, its ALPN condition, who may use it, and where it sends connections. */
export interface RouteEntry {
  hostnames: readonly string[];
  alpn: readonly string[];
  access: AccessCheck | null;
  target: Target;
  /** Where HTTP requests for an ACME http-01 challenge go instead of `target`; null: they follow the route. */
  acmeChallenge: Target | null;
}

/**
 * Everything a connection needs from its listener's config, built once per
 * config generation; a connection keeps the settings it was routed with.
 */
export interface ListenerSettings {
  listener: string;
  /** What this listener's clients send first, and how it is parsed. */
  protocol: PreambleProtocol;
  /** What a client whose name no route (and no default) serves gets: a TLS alert, an HTTP 404. */
  noRoute: Target;
  /** The same answer, for a name a route matched but whose templated backends it cannot name (see backends/templated-pools.ts). */
  noBackendName: Target;
  clientHelloTimeout: number;
  connectTimeout: number;
  idleTimeout: number;
  /** Once either side has closed its half, the idle time after which the connection is closed (0: never). */
  halfCloseTimeout: number;
  acceptProxyProtocol: boolean;
  /** Which peers may send the PROXY header; null: any. */
  trustedProxies: AccessCheck | null;
  access: AccessCheck | null;
  routes: RouteTable<RouteEntry>;
}
