import { boolean, byKind, integer, list, object, oneOf, optional, required, scalar, scalarOrObject, string, type Shape } from './shape.js';
import {
  MAX_WORKERS,
  normalizeHostnamePattern,
  parseAlpnProtocol,
  parseBackendAddress,
  parseCidr,
  parseDuration,
  parseListenAddress,
  parseResolverAddress,
  parseWorkers,
} from './values.js';
import { ShapeError, ValueError } from '../errors.js';

/** The config file's definition: read by the loader, published as JSON Schema. */

const duration = scalar(
  {
    anyOf: [
      { type: 'number', minimum: 0, description: 'milliseconds' },
      { type: 'string', pattern: '^(\\d+|(\\d+(\\.\\d+)?(ms|s|m|h))+)$', examples: ['250ms', '10s', '5m', '1h'] },
    ],
  },
  parseDuration,
);

const listenAddress = scalar(
  {
    anyOf: [
      { type: 'integer', minimum: 0, maximum: 65535, description: 'a port on all interfaces' },
      { type: 'string', examples: ['127.0.0.1:8443', '[::1]:8443', ':8443', '8443'] },
    ],
  },
  parseListenAddress,
);

const backendAddress = scalar(
  {
    type: 'string',
    description: 'host:port; on a wildcard route the host may be a template: {sni} is the name the client asked for, {1}, {2}, ... the labels "*" matched',
    examples: ['127.0.0.1:9443', 'app.internal:443', '[::1]:9443', '{sni}:443', '{1}.internal:8443'],
  },
  parseBackendAddress,
);

const hostname = scalar(
  { type: 'string', description: 'an exact hostname or a wildcard "*.example.com" (any name below example.com, not example.com itself)' },
  normalizeHostnamePattern,
);

const positiveDuration = scalar(duration.jsonSchema(), (value) => {
  const milliseconds = parseDuration(value);
  if (milliseconds <= 0) throw new ValueError('must be longer than 0');
  return milliseconds;
});

const timeoutFields = {
  // Neither can be turned off: a client or backend that never answers would hold a connection forever.
  clientHelloTimeout: optional(
    positiveDuration,
    'how long a client may take to send its whole ClientHello, or on http listeners its request head (default 10s)',
  ),
  connectTimeout: optional(positiveDuration, 'how long to wait for a backend to accept a connection before trying the next (default 5s)'),
  idleTimeout: optional(duration, 'close a connection with no bytes either way for this long; 0 = never (default 0)'),
  halfCloseTimeout: optional(
    duration,
    "once one side has closed its half (FIN), close the connection when no byte flows for this long, as HAProxy's timeout client-fin; 0 = never (default 60s)",
  ),
  drainTimeout: optional(duration, 'how long shutdown waits for open connections before closing them (default 30s)'),
};

const proxyProtocol = oneOf(['v1', 'v2'] as const);

const backend = scalarOrObject(
  scalar(backendAddress.jsonSchema(), (value) => ({
    address: parseBackendAddress(value),
    weight: undefined as number | undefined,
    proxyProtocol: undefined as 'v1' | 'v2' | undefined,
  })),
  object({
    address: required(
      backendAddress,
      'backend "host:port"; host may be a DNS name (resolved when connecting, cached for its TTL, every address tried) or, on a wildcard route, a template such as "{1}.internal"',
    ),
    weight: optional(integer(0, 1000), 'share of new connections relative to the other backends (default 1; 0 = none, to drain it)'),
    proxyProtocol: optional(proxyProtocol, "send a PROXY protocol header to this backend (overrides the route's)"),
  }),
);

const backends = list(backend, {
  minItems: 1,
  itemName: 'backend',
  description: 'connections are spread across these by weight; a backend that refuses or times out is skipped for the next',
});

const cidr = scalar({ type: 'string', examples: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1'] }, parseCidr);

const accessFields = {
  allow: optional(list(cidr), 'only clients in these ranges are served (default: everyone)'),
  deny: optional(list(cidr), 'clients in these ranges are refused, even when also allowed'),
};

const healthCheck = object(
  {
    interval: optional(positiveDuration, 'time between checks (default 5s)'),
    timeout: optional(positiveDuration, 'a check fails when the TCP connection is not accepted within this (default 2s)'),
    rise: optional(integer(1, 100), 'consecutive successes that bring a backend up (default 2)'),
    fall: optional(integer(1, 100), 'consecutive failures that take it down (default 3)'),
  },
  { description: 'active TCP health checks: a backend is used only while healthy' },
);

const alpnProtocol = scalar({ type: 'string' }, parseAlpnProtocol);
const filePath = string({ minLength: 1 });
const offeredAlpn = optional(list(alpnProtocol, { minItems: 1, itemName: 'protocol' }), 'ALPN protocols offered to clients (default [http/1.1])');

const certificatePair = object({
  cert: required(filePath, 'certificate file (PEM: the certificate, then its intermediates); relative to the config file'),
  key: required(filePath, 'its private key file (PEM); relative to the config file'),
  alpn: offeredAlpn,
});

const terminateTls = byKind({
  scalar: oneOf(['internal'] as const, { description: 'certificates issued by the local CA (see `sni-passthrough trust`)' }),
  mapping: object(
    {
      cert: optional(filePath, 'certificate file (PEM: the certificate, then its intermediates); relative to the config file'),
      key: optional(filePath, 'its private key file (PEM); relative to the config file'),
      internal: optional(boolean(), 'certificates issued by the local CA instead of files'),
      alpn: offeredAlpn,
    },
    { description: 'one certificate and key, or the local CA' },
  ),
  list: list(certificatePair, {
    minItems: 1,
    itemName: 'certificate',
    description: 'several certificates (e.g. RSA and ECDSA), picked by what the client supports',
  }),
});

const backendTls = object(
  {
    ca: optional(filePath, 'CA certificates (PEM) that the backends’ certificates must chain to (default: the system’s)'),
    servername: optional(string({ minLength: 1 }), 'server name sent to the backends and checked in their certificates (default: the client’s SNI)'),
    verify: optional(boolean(), 'check the backends’ certificates (default true)'),
  },
  { description: 'speak TLS to the backends of a terminating route (re-encrypt)' },
);

const routeOptions = {
  backends: optional(backends, 'where matching connections go (required, except on an http listener\'s route that says "redirect")'),
  balance: optional(oneOf(['roundrobin', 'leastconn', 'source'] as const), 'how new connections pick a backend (default roundrobin, weighted)'),
  retries: optional(integer(0, 100), 'backends to try after the first fails (default: every backend once)'),
  maxFails: optional(integer(0, 1000), 'consecutive connect failures that take a backend out for failTimeout; 0 = never (default 3)'),
  failTimeout: optional(duration, 'how long a failed backend is skipped before one connection tries it again (default 10s)'),
  healthCheck: optional(healthCheck, 'active TCP health checks (default: none)'),
  proxyProtocol: optional(proxyProtocol, 'send a PROXY protocol v1 or v2 header with the client address before the ClientHello'),
  ...accessFields,
  tls: optional(
    terminateTls,
    'terminate TLS here and pass the plaintext to the backends: { cert, key, alpn }, a list of such pairs, or "internal" (default: pass the encrypted stream through)',
  ),
  backendTls: optional(backendTls, 'with tls: re-encrypt to the backends'),
  redirect: optional(
    oneOf(['https'] as const),
    'http listeners: answer "308 Permanent Redirect" to https://host/path?query (the request target as sent) instead of passing the request to backends',
  ),
  redirectPort: optional(integer(1, 65535), 'with redirect: the port in the Location (default 443, which is left out)'),
  acmeChallenge: optional(
    list(backend, { minItems: 1, itemName: 'backend' }),
    'http listeners: requests whose path starts with /.well-known/acme-challenge/ (ACME http-01) go to these backends; the rest follows the route',
  ),
};

/**
 * A route passes to backends or redirects, never both; `redirectPort` only
 * with `redirect`. The loader checks these with the listener's protocol in
 * view; the JSON Schema says them for editors. `backends:` written with
 * nothing after it is an empty required key, as before redirects existed.
 */
function routeShape<T>(shape: Shape<T>): Shape<T> {
  return {
    read(value, path) {
      const input = value as Record<string, unknown> | null;
      if (input !== null && typeof input === 'object' && input.backends === null && input.redirect == null) {
        throw new ShapeError([...path, 'backends'], '"backends" is empty', true);
      }
      return shape.read(value, path);
    },
    jsonSchema: () => ({
      ...shape.jsonSchema(),
      oneOf: [{ required: ['backends'] }, { required: ['redirect'] }],
      dependentRequired: { redirectPort: ['redirect'] },
    }),
  };
}

const route = routeShape(
  object({
    hostnames: required(
      list(hostname, { minItems: 1, itemName: 'hostname' }),
      'SNI names (on http listeners, Host names) this route serves: exact names beat wildcards, the longest wildcard wins',
    ),
    alpn: optional(
      list(scalar({ type: 'string' }, parseAlpnProtocol), { minItems: 1, itemName: 'protocol' }),
      'match only clients offering one of these ALPN protocols; beats the same hostname without alpn (tls listeners only)',
    ),
    ...routeOptions,
  }),
);

const defaultRoute = routeShape(
  object(routeOptions, { description: 'used when no route matches, when the ClientHello has no SNI, and for an HTTP request to an IP address' }),
);

const quicLimits = object(
  {
    maxFlows: optional(integer(1, 10_000_000), 'QUIC flows open at once; Initials of new clients beyond it are dropped (default 10000)'),
    maxFlowsPerClient: optional(integer(0, 10_000_000), 'QUIC flows one client address may have open (default 100; 0 = no limit)'),
    maxHelloBytes: optional(
      integer(1200, 1024 * 1024),
      "bytes of a flow's datagrams held until its ClientHello is complete and its backend answers (default 65536)",
    ),
  },
  { description: 'QUIC passthrough with these limits' },
);

const quic = byKind({
  scalar: boolean({ description: 'pass QUIC (HTTP/3) through on UDP at the same address and port, routed by the same rules' }),
  mapping: quicLimits,
});

const listener = object({
  name: optional(string({ minLength: 1 }), 'unique name used in logs and metrics (default: the listen address)'),
  listen: required(listenAddress, 'address to accept connections on: "host:port", "[::1]:port", ":port" or a port'),
  protocol: optional(
    oneOf(['tls', 'http'] as const),
    "what clients speak: tls (routed by the ClientHello's SNI and ALPN, passed through encrypted) or http (plain HTTP/1.x, routed by the Host header) (default tls)",
  ),
  ...timeoutFields,
  acceptProxyProtocol: optional(
    boolean(),
    'expect a PROXY protocol v1/v2 header from an upstream load balancer; its address becomes the client address (default false)',
  ),
  proxyProtocolFrom: optional(
    list(cidr),
    'with acceptProxyProtocol: the only peers (the load balancers) whose PROXY header is trusted; connections from others are closed before a byte is read (default: any peer)',
  ),
  maxConnections: optional(integer(0, 10_000_000), 'open connections at which new clients wait, connected but unread, until one ends (default 0 = no limit)'),
  maxConnectionsPerClient: optional(integer(0, 10_000_000), 'open connections one client address may have; more are closed (default 0 = no limit)'),
  ...accessFields,
  quic: optional(
    quic,
    'tls listeners: also accept QUIC (HTTP/3) on UDP at the same address and port, routed by the ClientHello in its Initial packets and passed through encrypted: true, or limits { maxFlows, maxFlowsPerClient, maxHelloBytes } (default false)',
  ),
  routes: optional(list(route), 'hostname rules, matched by precedence, not by order'),
  default: optional(defaultRoute, 'catch-all for no SNI or no matching route; without it those clients get an unrecognized_name alert'),
});

const admin = object(
  {
    listen: required(listenAddress, 'address of the HTTP admin endpoint, e.g. "127.0.0.1:9900"'),
    allowRemote: optional(boolean(), 'allow binding a non-loopback address; the endpoint has no authentication (default false)'),
  },
  { description: 'HTTP admin endpoint: GET /metrics, /healthz, /readyz, /config; POST /reload (default: off)' },
);

const workers = scalar(
  {
    anyOf: [
      { type: 'integer', minimum: 1, maximum: MAX_WORKERS },
      { enum: ['auto'], description: 'one per CPU the process may use (os.availableParallelism())' },
    ],
  },
  parseWorkers,
);

export const configSchema = object(
  {
    workers: optional(
      workers,
      'worker processes serving the listeners, spread by the kernel; "auto" = one per CPU (default 1: one process, no workers; --workers wins; a change takes effect at restart)',
    ),
    admin: optional(admin, 'HTTP admin endpoint (default: off)'),
    stateDir: optional(
      string({ minLength: 1 }),
      'where the local CA of `tls: internal` routes lives, created 0700 (default $XDG_DATA_HOME/sni-passthrough or ~/.local/share/sni-passthrough; --state-dir wins)',
    ),
    defaults: optional(object(timeoutFields), 'timeouts applied to every listener unless it sets its own'),
    resolvers: optional(
      list(scalar({ type: 'string', examples: ['10.0.0.2', '10.0.0.2:53', '[2001:db8::53]:53'] }, parseResolverAddress), { minItems: 1, itemName: 'resolver' }),
      'DNS servers ("IP" or "IP:port", port 53 by default) that resolve backend names, with answers cached for their TTL, instead of the system resolver (/etc/hosts is then not read; "localhost" is still loopback) (default: the system resolver)',
    ),
    listeners: required(list(listener, { minItems: 1, itemName: 'listener' }), 'ports to accept TLS on, each with its own routes'),
  },
  { description: 'sni-passthrough configuration' },
);

export type ConfigDocument = typeof configSchema extends Shape<infer T> ? T : never;
