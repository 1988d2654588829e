import { list, object, optional, required, scalar, scalarOrObject, integer, string, type Shape } from './shape.js';
import { normalizeHostnamePattern, parseBackendAddress, parseDuration, parseListenAddress } from './values.js';

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

const backendAddress = scalar({ type: 'string', examples: ['127.0.0.1:9443', 'app.internal:443', '[::1]:9443'] }, parseBackendAddress);

const hostname = scalar(
  { type: 'string', description: 'an exact hostname or a wildcard "*.example.com" (any name below example.com, not example.com itself)' },
  normalizeHostnamePattern,
);

const timeoutFields = {
  clientHelloTimeout: optional(duration, 'how long a client may take to send its whole ClientHello (default 10s)'),
  connectTimeout: optional(duration, 'how long to wait for a backend to accept a connection before trying the next (default 5s)'),
  idleTimeout: optional(duration, 'close a connection with no bytes either way for this long; 0 = never (default 0)'),
  drainTimeout: optional(duration, 'how long shutdown waits for open connections before closing them (default 30s)'),
};

const backend = scalarOrObject(
  scalar(backendAddress.jsonSchema(), (value) => ({ address: parseBackendAddress(value), weight: undefined as number | undefined })),
  object({
    address: required(backendAddress, 'backend "host:port"; host may be a DNS name'),
    weight: optional(integer(0, 1000), 'share of new connections relative to the other backends (default 1; 0 = none)'),
  }),
);

const backends = list(backend, { minItems: 1, description: 'connections are spread across these by weight; a backend that refuses or times out is skipped for the next' });

const route = object({
  hostnames: required(list(hostname, { minItems: 1 }), 'SNI names this route serves: exact names beat wildcards, the longest wildcard wins'),
  backends: required(backends, 'where matching connections go'),
});

const defaultRoute = object(
  { backends: required(backends, 'where connections without SNI or without a matching route go') },
  { description: 'used when the ClientHello has no SNI or no route matches' },
);

const listener = object({
  name: optional(string({ minLength: 1 }), 'unique name used in logs and metrics (default: the listen address)'),
  listen: required(listenAddress, 'address to accept TLS connections on: "host:port", "[::1]:port", ":port" or a port'),
  ...timeoutFields,
  routes: optional(list(route), 'hostname rules, matched by precedence, not by order'),
  default: optional(defaultRoute, 'catch-all for no SNI or no matching route; without it those clients get an unrecognized_name alert'),
});

export const configSchema = object(
  {
    defaults: optional(object(timeoutFields), 'timeouts applied to every listener unless it sets its own'),
    listeners: required(list(listener, { minItems: 1 }), 'ports to accept TLS on, each with its own routes'),
  },
  { description: 'sni-passthrough configuration' },
);

export type ConfigDocument = typeof configSchema extends Shape<infer T> ? T : never;
