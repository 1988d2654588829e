import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, ShapeError, type SourcePosition } from '../errors.js';
import { configSchema, type ConfigDocument } from './schema.js';
import type { Path } from './shape.js';
import { formatAddress, isLoopbackHost } from './values.js';
import type { BackendConfig, ConnectionTimeouts, ListenAddress, ListenerConfig, ProxyConfig, RouteConfig, TerminateTlsConfig } from './types.js';

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
  const context: ResolveContext = { fail, positionOf: (path) => at(locate(document, path, false)), directory: dirname(resolve(file)) };
  return resolveConfig(parsed, context);
}

type Fail = (path: Path, message: string) => never;

/** What resolving needs besides the document's values: how to fail at a path, where a path is, where relative files are. */
interface ResolveContext {
  fail: Fail;
  positionOf(path: Path): SourcePosition;
  /** The config file's directory: relative certificate paths are resolved against it. */
  directory: string;
}

function resolveConfig(parsed: ConfigDocument, context: ResolveContext): ProxyConfig {
  const { fail } = context;
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

    // A hostname may appear in several routes only with disjoint ALPN lists (or once without ALPN).
    const seen = new Map<string, Set<string>>();
    const routes = (entry.routes ?? []).map((route, routeIndex): RouteConfig => {
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
      return { hostnames: route.hostnames, alpn, ...resolveRouteOptions(route, [...path, 'routes', routeIndex], context) };
    });
    if (routes.length === 0 && !entry.default) fail(path, 'listener needs "routes" or a "default" (or both)');
    if (entry.proxyProtocolFrom?.length && !entry.acceptProxyProtocol) {
      fail([...path, 'proxyProtocolFrom'], '"proxyProtocolFrom" lists who may send a PROXY header: it needs "acceptProxyProtocol: true"');
    }

    const { clientHelloTimeout, connectTimeout, idleTimeout, halfCloseTimeout, drainTimeout } = entry;
    return {
      name,
      listen,
      ...defaults,
      ...withoutUndefined({ clientHelloTimeout, connectTimeout, idleTimeout, halfCloseTimeout, drainTimeout }),
      acceptProxyProtocol: entry.acceptProxyProtocol ?? false,
      proxyProtocolFrom: entry.proxyProtocolFrom ?? [],
      maxConnections: entry.maxConnections ?? 0,
      maxConnectionsPerClient: entry.maxConnectionsPerClient ?? 0,
      allow: entry.allow ?? [],
      deny: entry.deny ?? [],
      routes,
      defaultRoute: entry.default ? { hostnames: [], alpn: [], ...resolveRouteOptions(entry.default, [...path, 'default'], context) } : null,
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

const DEFAULT_OFFERED_ALPN = ['http/1.1'];

/** A route's `tls`: which certificates, and what ALPN it offers; errors point into it. */
function resolveTerminateTls(tls: NonNullable<RouteDocument['tls']>, path: Path, context: ResolveContext): TerminateTlsConfig {
  const position = context.positionOf(path);
  const file = (name: string): string => resolve(context.directory, name);
  if (tls === 'internal') return { certificates: 'internal', alpn: DEFAULT_OFFERED_ALPN, position };
  if (Array.isArray(tls)) {
    const offered = tls.filter((pair) => pair.alpn !== undefined).map((pair) => pair.alpn!);
    if (offered.some((alpn) => alpn.join() !== offered[0]!.join())) {
      context.fail(path, 'the certificates of one route must offer the same "alpn" (or give it once)');
    }
    return { certificates: tls.map((pair) => ({ cert: file(pair.cert), key: file(pair.key) })), alpn: offered[0] ?? DEFAULT_OFFERED_ALPN, position };
  }
  const alpn = tls.alpn ?? DEFAULT_OFFERED_ALPN;
  if (tls.internal === true) {
    if (tls.cert !== undefined || tls.key !== undefined) context.fail(path, '"tls" takes either "cert" and "key" or "internal: true", not both');
    return { certificates: 'internal', alpn, position };
  }
  if (tls.cert === undefined || tls.key === undefined) context.fail(path, '"tls" needs "cert" and "key" (PEM files), or "internal: true" for the local CA');
  return { certificates: [{ cert: file(tls.cert!), key: file(tls.key!) }], alpn, position };
}

function resolveRouteOptions(route: RouteDocument, path: Path, context: ResolveContext): Omit<RouteConfig, 'hostnames' | 'alpn'> {
  const healthCheck = route.healthCheck;
  if (route.backendTls && !route.tls) {
    context.fail([...path, 'backendTls'], '"backendTls" re-encrypts what a terminating route decrypted: it needs "tls" on the same route');
  }
  const backendTls = route.backendTls;
  return {
    tls: route.tls ? resolveTerminateTls(route.tls, [...path, 'tls'], context) : null,
    backendTls: backendTls
      ? {
          ca: backendTls.ca === undefined ? null : resolve(context.directory, backendTls.ca),
          servername: backendTls.servername ?? null,
          verify: backendTls.verify ?? true,
          position: context.positionOf([...path, 'backendTls']),
        }
      : null,
    backends: route.backends.map((backend): BackendConfig => {
      const { host, port } = backend.address;
      return {
        address: formatAddress(host, port),
        host,
        port,
        weight: backend.weight ?? 1,
        proxyProtocol: backend.proxyProtocol ?? route.proxyProtocol ?? null,
      };
    }),
    balance: route.balance ?? 'roundrobin',
    retries: route.retries ?? null,
    maxFails: route.maxFails ?? 3,
    failTimeout: route.failTimeout ?? 10_000,
    healthCheck: healthCheck
      ? { interval: healthCheck.interval ?? 5_000, timeout: healthCheck.timeout ?? 2_000, rise: healthCheck.rise ?? 2, fall: healthCheck.fall ?? 3 }
      : null,
    allow: route.allow ?? [],
    deny: route.deny ?? [],
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
