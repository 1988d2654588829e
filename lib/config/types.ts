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

export interface BackendConfig {
  /** `host:port` as written (IPv6 in brackets); also the backend's identity in logs. */
  address: string;
  host: string;
  port: number;
  weight: number;
}

export interface RouteConfig {
  /** Normalized patterns: lower-case ASCII, no trailing dot; wildcards keep their `*.` prefix. Empty for the default route. */
  hostnames: string[];
  backends: BackendConfig[];
}

/** Durations in milliseconds; 0 disables the timeout where that makes sense. */
export interface ConnectionTimeouts {
  clientHelloTimeout: number;
  connectTimeout: number;
  idleTimeout: number;
  drainTimeout: number;
}

export interface ListenerConfig extends ConnectionTimeouts {
  name: string;
  listen: ListenAddress;
  routes: RouteConfig[];
  defaultRoute: RouteConfig | null;
}

export interface ProxyConfig {
  listeners: ListenerConfig[];
}
