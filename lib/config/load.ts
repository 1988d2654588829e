import { readFile } from 'node:fs/promises';
import { isMap, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, ShapeError, type SourcePosition } from '../errors.js';
import { configSchema, type ConfigDocument } from './schema.js';
import type { Path } from './shape.js';
import { formatAddress, isLoopbackHost } from './values.js';
import type { BackendConfig, ConnectionTimeouts, ListenAddress, ListenerConfig, ListenerProtocol, ProxyConfig, RouteConfig } from './types.js';

export const DEFAULT_TIMEOUTS: ConnectionTimeouts = {
  clientHelloTimeout: 10_000,
  connectTimeout: 5_000,
  idleTimeout: 0,
  halfCloseTimeout: 60_000,
  drainTimeout: 30_000,
};

/** A loaded config with the text it came from (for hashing and for `check`). */
export interface LoadedConfig {
  file: string;
  text: string;
  config: ProxyConfig;
}

/** Reads and validates a config file; throws `ConfigError`. */
export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new ConfigError(file, null, `cannot read config: ${reason}`);
  }
  return { file, text, config: parseConfig(text, file) };
}

/** Parses and validates config text; every error names the line and column of the offending YAML node. */
export function parseConfig(text: string, file: string): ProxyConfig {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourcePosition => lineCounter.linePos(offset);
  const syntaxError = document.errors[0];
  if (syntaxError) {
    const message =
      syntaxError.code === 'MULTIPLE_DOCS'
        ? 'the config must be a single YAML document (remove the second "---")'
        : syntaxError.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(file, at(syntaxError.pos[0]), message);
  }
  if (document.contents === null) throw new ConfigError(file, { line: 1, col: 1 }, 'the config is empty: it needs a "listeners" list');

  const fail = (path: Path, message: string, onKey = false): never => {
    throw new ConfigError(file, at(locate(document, path, onKey)), message);
  };
  let parsed: ConfigDocument;
  try {
    parsed = configSchema.read(document.toJS({ maxAliasCount: 100 }), []);
  } catch (error) {
    if (error instanceof ShapeError) fail(error.path, error.message, error.onKey);
    throw error;
  }
  return resolveConfig(parsed, fail);
}

type Fail = (path: Path, message: string) => never;

function resolveConfig(parsed: ConfigDocument, fail: Fail): ProxyConfig {
  const defaults = { ...DEFAULT_TIMEOUTS, ...withoutUndefined(parsed.defaults ?? {}) };
  const names = new Map<string, number>();
  const addresses: ListenAddress[] = [];

  const listeners = parsed.listeners.map((entry, index): ListenerConfig => {
    const path = ['listeners', index];
    const listen = entry.listen;
    const name = entry.name ?? formatAddress(listen.host, listen.port);
    if (listen.port !== 0) {
      const clash = findAddressClash(addresses, listen);
      if (clash >= 0) fail([...path, 'listen'], `listen address ${formatAddress(listen.host, listen.port)} is already used by listener ${clash + 1}`);
    }
    addresses.push(listen);
    if (names.has(name))
      fail([...path, entry.name === undefined ? 'listen' : 'name'], `duplicate listener name "${name}" (also listener ${names.get(name)! + 1})`);
    names.set(name, index);
    const protocol = entry.protocol ?? 'tls';

    // A hostname may appear in several routes only with disjoint ALPN lists (or once without ALPN).
    const seen = new Map<string, Set<string>>();
    const routes = (entry.routes ?? []).map((route, routeIndex): RouteConfig => {
      checkRouteForProtocol(route, [...path, 'routes', routeIndex], protocol, fail);
      const alpn = route.alpn ?? [];
      route.hostnames.forEach((hostname, hostnameIndex) => {
        const claimed = seen.get(hostname) ?? new Set<string>();
        const keys = alpn.length === 0 ? [''] : alpn;
        const clash = keys.find((key) => claimed.has(key));
        if (clash !== undefined) {
          const detail = clash === '' ? '' : ` with ALPN "${clash}"`;
          fail([...path, 'routes', routeIndex, 'hostnames', hostnameIndex], `hostname "${hostname}"${detail} appears more than once in this listener`);
        }
        for (const key of keys) claimed.add(key);
        seen.set(hostname, claimed);
      });
      return { hostnames: route.hostnames, alpn, ...resolveRouteOptions(route) };
    });
    if (routes.length === 0 && !entry.default) fail(path, 'listener needs "routes" or a "default" (or both)');
    if (entry.default) checkRouteForProtocol(entry.default, [...path, 'default'], protocol, fail);
    if (entry.proxyProtocolFrom?.length && !entry.acceptProxyProtocol) {
      fail([...path, 'proxyProtocolFrom'], '"proxyProtocolFrom" lists who may send a PROXY header: it needs "acceptProxyProtocol: true"');
    }

    const { clientHelloTimeout, connectTimeout, idleTimeout, halfCloseTimeout, drainTimeout } = entry;
    return {
      name,
      listen,
      protocol,
      ...defaults,
      ...withoutUndefined({ clientHelloTimeout, connectTimeout, idleTimeout, halfCloseTimeout, drainTimeout }),
      acceptProxyProtocol: entry.acceptProxyProtocol ?? false,
      proxyProtocolFrom: entry.proxyProtocolFrom ?? [],
      maxConnections: entry.maxConnections ?? 0,
      maxConnectionsPerClient: entry.maxConnectionsPerClient ?? 0,
      allow: entry.allow ?? [],
      deny: entry.deny ?? [],
      routes,
      defaultRoute: entry.default ? { hostnames: [], alpn: [], ...resolveRouteOptions(entry.default) } : null,
    };
  });
  const admin = parsed.admin ? { listen: parsed.admin.listen, allowRemote: parsed.admin.allowRemote ?? false } : null;
  if (admin && !admin.allowRemote && !isLoopbackHost(admin.listen.host)) {
    fail(
      ['admin', 'listen'],
      `admin endpoint on ${formatAddress(admin.listen.host, admin.listen.port)} is not loopback: it has no authentication, so set "allowRemote: true" to expose it`,
    );
  }
  if (admin && admin.listen.port !== 0) {
    const clash = findAddressClash(addresses, admin.listen);
    if (clash >= 0) fail(['admin', 'listen'], `admin address ${formatAddress(admin.listen.host, admin.listen.port)} is already used by listener ${clash + 1}`);
  }
  return { listeners, admin };
}

const anyAddress = new Set([null, '0.0.0.0', '::']);

/** Index of an address that would collide with `listen` (same port, and the same host or either on all interfaces), else -1. */
function findAddressClash(addresses: readonly ListenAddress[], listen: ListenAddress): number {
  return addresses.findIndex(
    (other) => other.port === listen.port && (other.host === listen.host || anyAddress.has(other.host) || anyAddress.has(listen.host)),
  );
}

type RouteDocument = NonNullable<ConfigDocument['listeners'][number]['default']>;

/**
 * The route keys that belong to one listener protocol: a route passes to
 * `backends` or answers with a `redirect` (http only), and says nothing its
 * listener cannot act on (ALPN or TLS on http; HTTP paths and answers on tls).
 */
function checkRouteForProtocol(route: RouteDocument & { alpn?: unknown; tls?: unknown }, path: Path, protocol: ListenerProtocol, fail: Fail): void {
  if (protocol === 'http') {
    if (route.alpn !== undefined) fail([...path, 'alpn'], '"alpn" is a TLS setting: an http listener routes by the Host header only');
    if (route.tls !== undefined) fail([...path, 'tls'], '"tls" terminates TLS: an http listener\'s clients speak plain HTTP');
  } else {
    const httpOnly = (['redirect', 'redirectPort', 'acmeChallenge'] as const).find((key) => route[key] !== undefined);
    if (httpOnly === 'acmeChallenge') {
      fail(
        [...path, httpOnly],
        '"acmeChallenge" routes plain-HTTP requests by path: it needs "protocol: http" on the listener (for TLS-ALPN-01, add a route with "alpn: [acme-tls/1]")',
      );
    }
    if (httpOnly !== undefined) fail([...path, httpOnly], `"${httpOnly}" answers plain HTTP: it needs "protocol: http" on the listener`);
  }
  if (route.redirectPort !== undefined && route.redirect === undefined)
    fail([...path, 'redirectPort'], '"redirectPort" is the port of a redirect: it needs "redirect: https"');
  if (route.redirect !== undefined && route.backends !== undefined) {
    fail([...path, 'redirect'], 'a route either redirects or passes to backends: remove "redirect" or "backends"');
  }
  if (route.redirect === undefined && route.backends === undefined) {
    fail(path, protocol === 'http' ? 'missing required key "backends" (or "redirect: https")' : 'missing required key "backends"');
  }
}

type BackendDocument = NonNullable<RouteDocument['backends']>[number];

function resolveBackend(backend: BackendDocument, routeProxyProtocol: BackendConfig['proxyProtocol'] | undefined): BackendConfig {
  const { host, port } = backend.address;
  return {
    address: formatAddress(host, port),
    host,
    port,
    weight: backend.weight ?? 1,
    proxyProtocol: backend.proxyProtocol ?? routeProxyProtocol ?? null,
  };
}

function resolveRouteOptions(route: RouteDocument): Omit<RouteConfig, 'hostnames' | 'alpn'> {
  const healthCheck = route.healthCheck;
  return {
    backends: (route.backends ?? []).map((backend) => resolveBackend(backend, route.proxyProtocol)),
    balance: route.balance ?? 'roundrobin',
    retries: route.retries ?? null,
    maxFails: route.maxFails ?? 3,
    failTimeout: route.failTimeout ?? 10_000,
    healthCheck: healthCheck
      ? { interval: healthCheck.interval ?? 5_000, timeout: healthCheck.timeout ?? 2_000, rise: healthCheck.rise ?? 2, fall: healthCheck.fall ?? 3 }
      : null,
    allow: route.allow ?? [],
    deny: route.deny ?? [],
    redirect: route.redirect ? { scheme: route.redirect, port: route.redirectPort ?? 443 } : null,
    // The certificate manager speaks no PROXY protocol unless its own entry says so: the route's setting is for its backends.
    acmeChallenge: (route.acmeChallenge ?? []).map((backend) => resolveBackend(backend, undefined)),
  };
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}

/** The source offset of the node at `path` (or of its key), else of its nearest existing ancestor. */
function locate(document: Document, path: Path, onKey: boolean): number {
  if (onKey && path.length > 0) {
    const parent = document.getIn(path.slice(0, -1), true);
    // Keys as toJS() spelled them: a null key (`~:`) became "".
    const key = String(path[path.length - 1]);
    const pair = isMap(parent) ? parent.items.find((item) => isScalar(item.key) && String(item.key.value ?? '') === key) : undefined;
    if (pair && isScalar(pair.key) && pair.key.range) return pair.key.range[0];
  }
  for (let depth = path.length; depth >= 0; depth--) {
    const node = document.getIn(path.slice(0, depth), true) as Node | undefined;
    if (node?.range) return node.range[0];
  }
  return 0;
}
