import { constructFromEvents, EVENT_ID, parseEvents, YAMLException, type Event } from 'js-yaml';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type { Alias, Document, Node } from 'yaml';
import { ConfigError, ShapeError, type SourcePosition } from '../errors.js';
import { configSchema, type ConfigDocument } from './schema.js';
import type { Path } from './shape.js';
import { formatAddress, isHostTemplate, isLoopbackHost, parseHostTemplate } from './values.js';
import type {
  BackendConfig,
  ConnectionTimeouts,
  ListenAddress,
  ListenerConfig,
  ListenerProtocol,
  ProxyConfig,
  QuicConfig,
  RouteConfig,
  TerminateTlsConfig,
} from './types.js';

export const DEFAULT_TIMEOUTS: ConnectionTimeouts = {
  clientHelloTimeout: 10_000,
  connectTimeout: 5_000,
  idleTimeout: 0,
  halfCloseTimeout: 60_000,
  drainTimeout: 30_000,
};

const requireModule = createRequire(import.meta.url);
let yamlModule: typeof import('yaml') | null = null;
/** `yaml`, loaded when first needed: the fast path never needs it, and loading it costs a loader thread about 5 MiB of RSS. */
function yaml(): typeof import('yaml') {
  yamlModule ??= requireModule('yaml') as typeof import('yaml');
  return yamlModule;
}

/** Collections nested deeper than this are refused (a config needs 8); deep nesting costs parsers their stack. */
export const MAX_NESTING_DEPTH = 64;
/** Values that aliases may bring in, counted as if written out: an alias bomb expands exponentially. */
export const MAX_ALIASED_NODES = 100_000;

/**
 * Parses and validates config text; every error names the line and column
 * of the offending YAML node.
 *
 * Two parsers: js-yaml reads a plain document (no anchors, aliases, tags or
 * directives) about ten times faster than `yaml`, which matters for configs
 * of 100,000 routes. Anything else, and any text that fails, is read again by
 * `yaml`, which keeps the position of every node and explains the problem;
 * its verdict is the one that counts, so the fast path can only save time.
 */
export function parseConfig(text: string, file: string): ProxyConfig {
  return parsePlainConfig(text) ?? parseConfigPrecisely(text, file);
}

/** A failure found by the fast path: the precise path finds it again and says where. */
class FastPathFailure extends Error {}

const fastFail: Fail = () => {
  throw new FastPathFailure();
};

/** The config from plain YAML through js-yaml, or null when the text needs (or fails) the precise path. */
export function parsePlainConfig(text: string): ProxyConfig | null {
  let events: Event[];
  try {
    events = parseEvents(text, { maxDepth: MAX_NESTING_DEPTH });
  } catch {
    return null;
  }
  if (!isPlainDocument(events)) return null;
  try {
    const [value] = constructFromEvents(events, { source: text, maxAliases: 0 });
    // No positions here: a config whose certificates (read later) may need one to point at goes the precise way.
    return resolveConfig(configSchema.read(value, []), { fail: fastFail, positionOf: () => fastFail([], ''), pathOf: () => fastFail([], '') });
  } catch (error) {
    if (error instanceof FastPathFailure || error instanceof ShapeError || error instanceof YAMLException) return null;
    throw error;
  }
}

/** One document without directives, and no node with an anchor, alias or tag. */
function isPlainDocument(events: readonly Event[]): boolean {
  let documents = 0;
  for (const event of events) {
    switch (event.type) {
      case EVENT_ID.DOCUMENT:
        if (++documents > 1 || event.directives.length > 0) return false;
        break;
      case EVENT_ID.ALIAS:
        return false;
      case EVENT_ID.SEQUENCE:
      case EVENT_ID.MAPPING:
      case EVENT_ID.SCALAR:
        if (event.anchorStart >= 0 || event.tagStart >= 0) return false;
        break;
    }
  }
  return documents === 1;
}

/**
 * The config through `yaml`, which keeps every node's position: the verdict
 * that counts, with each error at FILE:LINE:COL. Throws `ConfigError`.
 */
export function parseConfigPrecisely(text: string, file: string): ProxyConfig {
  // Nesting first: `yaml` composes recursively, and would report running out of stack somewhere inside, after seconds.
  const tooDeep = findExcessiveNesting(text);
  if (tooDeep) throw new ConfigError(file, tooDeep, `nesting deeper than ${MAX_NESTING_DEPTH} levels`, 'SNIP_CONFIG_SYNTAX');
  const { LineCounter, parseDocument } = yaml();
  const lineCounter = new LineCounter();
  const at = (offset: number): SourcePosition => lineCounter.linePos(offset);
  const syntaxError = (offset: number, message: string): ConfigError => new ConfigError(file, at(offset), message, 'SNIP_CONFIG_SYNTAX');
  // logLevel "error": yaml's warnings (a collection as a key) would be printed, a second line after ours.
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  const firstError = document.errors[0];
  if (firstError) throw syntaxError(firstError.pos[0], describeYamlError(firstError.code, firstError.message));
  if (document.contents === null) throw new ConfigError(file, { line: 1, col: 1 }, 'the config is empty: it needs a "listeners" list');
  const badAlias = checkAliases(document);
  if (badAlias) throw syntaxError(badAlias.offset, badAlias.message);

  const fail = (path: Path, message: string, options: FailOptions = {}): never => {
    const detail = options.firstAt ? `${message} (first at ${formatPosition(at(locate(document, options.firstAt, false)))})` : message;
    throw new ConfigError(file, at(locate(document, path, options.onKey ?? false)), detail);
  };
  let parsed: ConfigDocument;
  try {
    // Aliases were counted above, with their expansion, and each points at an anchor before it.
    parsed = configSchema.read(document.toJS({ maxAliasCount: -1 }), []);
  } catch (error) {
    if (error instanceof ShapeError) return fail(error.path, error.message, { onKey: error.onKey });
    throw error;
  }
  const directory = dirname(resolve(file));
  const context: ResolveContext = { fail, positionOf: (path) => at(locate(document, path, false)), pathOf: (name) => resolve(directory, name) };
  return resolveConfig(parsed, context);
}

function formatPosition(position: SourcePosition): string {
  return `${position.line}:${position.col}`;
}

/** Where nesting first goes past MAX_NESTING_DEPTH, per js-yaml (which counts without recursing), else null. */
function findExcessiveNesting(text: string): SourcePosition | null {
  try {
    parseEvents(text, { maxDepth: MAX_NESTING_DEPTH });
  } catch (error) {
    if (error instanceof YAMLException && error.reason.startsWith('nesting exceeded maxDepth') && error.mark) {
      return { line: error.mark.line + 1, col: error.mark.column + 1 };
    }
  }
  return null;
}

/** `yaml`'s message without its own position (the error's prefix has it), on one line. */
function describeYamlError(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return 'the config must be a single YAML document (remove the second "---")';
  if (message.startsWith('Maximum call stack size exceeded')) return `nesting deeper than ${MAX_NESTING_DEPTH} levels`;
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/**
 * Every alias must follow its anchor and not sit inside it, and all aliases
 * together may bring in at most MAX_ALIASED_NODES values, counted as if
 * written out (so an alias bomb is refused where it goes off, before it is
 * expanded). The first problem, with its offset, else null.
 */
function checkAliases(document: Document): { offset: number; message: string } | null {
  const { isAlias, isCollection, isPair, visit } = yaml();
  const anchors = new Map<string, Node>();
  // What each alias brings in, set when it is visited: an anchored node is visited whole before any alias to it.
  const aliasSizes = new Map<Alias, number>();
  const collectionSizes = new Map<unknown, number>();
  const sizeOf = (node: unknown): number => {
    if (isAlias(node)) return aliasSizes.get(node) ?? 1;
    if (isPair(node)) return sizeOf(node.key) + sizeOf(node.value);
    if (!isCollection(node)) return 1;
    let size = collectionSizes.get(node);
    if (size === undefined) {
      size = 1;
      for (const item of node.items) size = Math.min(size + sizeOf(item), MAX_ALIASED_NODES + 1);
      collectionSizes.set(node, size);
    }
    return size;
  };
  let aliased = 0;
  let problem: { offset: number; message: string } | null = null;
  visit(document, {
    Node(_key, node, path) {
      if (!isAlias(node)) {
        if (node.anchor) anchors.set(node.anchor, node);
        return undefined;
      }
      const target = anchors.get(node.source);
      const offset = node.range?.[0] ?? 0;
      if (!target) problem = { offset, message: unresolvedAlias(node) };
      else if (path.includes(target)) problem = { offset, message: `alias *${node.source} is inside the node it refers to` };
      else {
        aliasSizes.set(node, sizeOf(target));
        aliased += aliasSizes.get(node)!;
        if (aliased > MAX_ALIASED_NODES)
          problem = { offset, message: `aliases bring in more than ${MAX_ALIASED_NODES} values (an alias bomb?): write them out instead` };
      }
      return problem ? visit.BREAK : undefined;
    },
  });
  return problem;
}

/** `*.example.com` unquoted is the likeliest way to get here: YAML reads the `*` as an alias. */
function unresolvedAlias(alias: Alias): string {
  const written = `*${alias.source}`;
  if (alias.source.startsWith('.')) return `${written} must be quoted: an unquoted "*" starts a YAML alias; write "${written}"`;
  return `unknown alias ${written}: no anchor &${alias.source} before it (to write a value starting with "*", quote it)`;
}

interface FailOptions {
  /** Point at the key of the last path element instead of its value (unknown keys). */
  onKey?: boolean;
  /** Where the first of two clashing values is, for the message. */
  firstAt?: Path;
}

type Fail = (path: Path, message: string, options?: FailOptions) => never;

/** Empty lists, shared by every value that has none: a config of 100,000 routes would otherwise hold 300,000 of them. */
const none: never[] = [];

/** What resolving needs besides the document's values: how to fail at a path, where a path is, where relative files are. */
interface ResolveContext {
  fail: Fail;
  positionOf(path: Path): SourcePosition;
  /** A file path as written, made absolute: relative ones are relative to the config file's directory. */
  pathOf(name: string): string;
}

function resolveConfig(parsed: ConfigDocument, context: ResolveContext): ProxyConfig {
  const { fail } = context;
  const defaults = { ...DEFAULT_TIMEOUTS, ...withoutUndefined(parsed.defaults ?? {}) };
  const names = new Map<string, number>();
  const addresses: ListenAddress[] = [];
  const backends = new Map<string, BackendConfig>();

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

    const routeDocuments = entry.routes ?? [];
    const clash = findHostnameClash(routeDocuments);
    if (clash) {
      const detail = clash.alpn === '' ? '' : ` with ALPN "${clash.alpn}"`;
      fail([...path, 'routes', ...clash.at], `hostname "${clash.hostname}"${detail} appears more than once in this listener`, {
        firstAt: [...path, 'routes', ...clash.firstAt],
      });
    }
    const routes = routeDocuments.map((route, routeIndex): RouteConfig => {
      checkRouteForProtocol(route, [...path, 'routes', routeIndex], protocol, fail);
      checkBackendTemplates(route, route.hostnames, [...path, 'routes', routeIndex], fail);
      return { hostnames: route.hostnames, alpn: route.alpn ?? none, ...resolveRouteOptions(route, [...path, 'routes', routeIndex], context, backends) };
    });
    if (routes.length === 0 && !entry.default) fail(path, 'listener needs "routes" or a "default" (or both)');
    if (entry.default) {
      checkRouteForProtocol(entry.default, [...path, 'default'], protocol, fail);
      checkBackendTemplates(entry.default, null, [...path, 'default'], fail);
    }
    if (entry.quic !== undefined && entry.quic !== false && protocol === 'http') {
      fail([...path, 'quic'], '"quic" routes QUIC by the TLS ClientHello in its Initial packets: it needs a tls listener, not "protocol: http"');
    }
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
      proxyProtocolFrom: entry.proxyProtocolFrom ?? none,
      maxConnections: entry.maxConnections ?? 0,
      maxConnectionsPerClient: entry.maxConnectionsPerClient ?? 0,
      allow: entry.allow ?? none,
      deny: entry.deny ?? none,
      routes,
      defaultRoute: entry.default ? { hostnames: none, alpn: none, ...resolveRouteOptions(entry.default, [...path, 'default'], context, backends) } : null,
      quic: resolveQuic(entry.quic),
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
  const stateDir = parsed.stateDir === undefined ? null : context.pathOf(parsed.stateDir);
  return { workers: parsed.workers ?? 1, listeners, admin, stateDir, resolvers: parsed.resolvers ?? none };
}

export const DEFAULT_QUIC: QuicConfig = { maxFlows: 10_000, maxFlowsPerClient: 100, maxHelloBytes: 64 * 1024 };

/** `quic: true` is the defaults; a mapping overrides some of them; absent or false: no QUIC. */
function resolveQuic(quic: ConfigDocument['listeners'][number]['quic']): QuicConfig | null {
  if (quic === undefined || quic === false) return null;
  if (quic === true) return DEFAULT_QUIC;
  // byKind has no list form here, so what is left is the mapping.
  return { ...DEFAULT_QUIC, ...withoutUndefined(quic as Partial<QuicConfig>) };
}

type RouteDocument = NonNullable<ConfigDocument['listeners'][number]['routes']>[number];

/**
 * What a hostname claims in a listener: itself, or itself for each of the
 * route's ALPN protocols ("h2 app.example.com": names have no spaces).
 */
function claimKeys(hostname: string, alpn: readonly string[] | undefined): readonly string[] {
  return alpn === undefined ? [hostname] : alpn.map((protocol) => `${protocol} ${hostname}`);
}

/**
 * A hostname may appear in several routes of a listener only with disjoint
 * ALPN lists (or once without ALPN). The first hostname that breaks this,
 * and where it was claimed first (paths below the listener's "routes").
 */
function findHostnameClash(routes: readonly RouteDocument[]): { hostname: string; alpn: string; at: Path; firstAt: Path } | null {
  const claimed = new Set<string>();
  for (const [routeIndex, route] of routes.entries()) {
    for (const [hostnameIndex, hostname] of route.hostnames.entries()) {
      const keys = claimKeys(hostname, route.alpn);
      const clash = keys.findIndex((key) => claimed.has(key));
      if (clash >= 0) {
        return { hostname, alpn: route.alpn?.[clash] ?? '', at: [routeIndex, 'hostnames', hostnameIndex], firstAt: firstClaim(routes, keys[clash]!) };
      }
      for (const key of keys) claimed.add(key);
    }
  }
  return null;
}

/** Where `key` was claimed first (looked for only once a clash is found). */
function firstClaim(routes: readonly RouteDocument[], key: string): Path {
  for (const [routeIndex, route] of routes.entries()) {
    const hostnameIndex = route.hostnames.findIndex((hostname) => claimKeys(hostname, route.alpn).includes(key));
    if (hostnameIndex >= 0) return [routeIndex, 'hostnames', hostnameIndex];
  }
  return [];
}

const anyAddress = new Set([null, '0.0.0.0', '::']);

/** Index of an address that would collide with `listen` (same port, and the same host or either on all interfaces), else -1. */
function findAddressClash(addresses: readonly ListenAddress[], listen: ListenAddress): number {
  return addresses.findIndex(
    (other) => other.port === listen.port && (other.host === listen.host || anyAddress.has(other.host) || anyAddress.has(listen.host)),
  );
}

type RouteOptionsDocument = NonNullable<ConfigDocument['listeners'][number]['default']>;

const DEFAULT_OFFERED_ALPN = ['http/1.1'];

/** A route's `tls`: which certificates, and what ALPN it offers; errors point into it. */
function resolveTerminateTls(tls: NonNullable<RouteOptionsDocument['tls']>, path: Path, context: ResolveContext): TerminateTlsConfig {
  const position = context.positionOf(path);
  const file = (name: string): string => context.pathOf(name);
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

/**
 * The route keys that belong to one listener protocol: a route passes to
 * `backends` or answers with a `redirect` (http only), and says nothing its
 * listener cannot act on (ALPN or TLS on http; HTTP paths and answers on tls).
 */
function checkRouteForProtocol(route: RouteOptionsDocument & { alpn?: unknown; tls?: unknown }, path: Path, protocol: ListenerProtocol, fail: Fail): void {
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

type BackendDocument = NonNullable<RouteOptionsDocument['backends']>[number];

/**
 * Templated backends take their names only from what the route matched, so
 * that no client can pick a backend the config does not describe: none on
 * the default route (it matches any name, or none); `{1}`, `{2}`, ... (labels
 * of the wildcard) only where every hostname of the route is a wildcard;
 * `{sni}` anywhere else (on an exact name it is that name). Not on
 * acmeChallenge (the certificate manager is one fixed service), and an
 * active health check needs at least one backend it can check.
 * `hostnames` null: the default route.
 */
function checkBackendTemplates(route: RouteOptionsDocument, hostnames: readonly string[] | null, path: Path, fail: Fail): void {
  const backends = route.backends ?? none;
  backends.forEach((backend, index) => {
    const { host } = backend.address;
    if (!isHostTemplate(host)) return;
    const at = [...path, 'backends', index];
    if (hostnames === null) {
      fail(at, `backend template "${host}" takes the name a route matched: the default route matches any name (or none), so it cannot use one`);
    }
    const label = parseHostTemplate(host).find((part) => typeof part === 'number' && part > 0);
    const exact = label === undefined ? undefined : hostnames!.find((hostname) => !hostname.startsWith('*.'));
    if (exact !== undefined) {
      fail(
        at,
        `backend template "${host}" uses {${label}}, a label matched by "*": every hostname of its route must be a wildcard, and "${exact}" is not (use {sni} for the whole name)`,
      );
    }
  });
  (route.acmeChallenge ?? none).forEach((backend, index) => {
    if (isHostTemplate(backend.address.host))
      fail([...path, 'acmeChallenge', index], 'acmeChallenge backends cannot be templates: name the certificate manager');
  });
  if (route.healthCheck && backends.length > 0 && backends.every((backend) => isHostTemplate(backend.address.host))) {
    fail(
      [...path, 'healthCheck'],
      '"healthCheck" has nothing to check: templated backends are named per connection (they get passive health: "maxFails", "failTimeout")',
    );
  }
}

/** `backends` interns equal backends: routes that share them share one object (and one copy when sent between threads). */
function resolveBackend(
  backend: BackendDocument,
  routeProxyProtocol: BackendConfig['proxyProtocol'] | undefined,
  backends: Map<string, BackendConfig>,
): BackendConfig {
  const { host, port } = backend.address;
  const resolved: BackendConfig = {
    address: formatAddress(host, port),
    host,
    port,
    weight: backend.weight ?? 1,
    proxyProtocol: backend.proxyProtocol ?? routeProxyProtocol ?? null,
  };
  const key = `${resolved.address} ${resolved.weight} ${resolved.proxyProtocol}`;
  const known = backends.get(key);
  if (known) return known;
  backends.set(key, resolved);
  return resolved;
}

function resolveRouteOptions(
  route: RouteOptionsDocument,
  path: Path,
  context: ResolveContext,
  backends: Map<string, BackendConfig>,
): Omit<RouteConfig, 'hostnames' | 'alpn'> {
  const healthCheck = route.healthCheck;
  if (route.backendTls && !route.tls) {
    context.fail([...path, 'backendTls'], '"backendTls" re-encrypts what a terminating route decrypted: it needs "tls" on the same route');
  }
  const backendTls = route.backendTls;
  return {
    tls: route.tls ? resolveTerminateTls(route.tls, [...path, 'tls'], context) : null,
    backendTls: backendTls
      ? {
          ca: backendTls.ca === undefined ? null : context.pathOf(backendTls.ca),
          servername: backendTls.servername ?? null,
          verify: backendTls.verify ?? true,
          position: context.positionOf([...path, 'backendTls']),
        }
      : null,
    backends: (route.backends ?? none).map((backend) => resolveBackend(backend, route.proxyProtocol, backends)),
    balance: route.balance ?? 'roundrobin',
    retries: route.retries ?? null,
    maxFails: route.maxFails ?? 3,
    failTimeout: route.failTimeout ?? 10_000,
    healthCheck: healthCheck
      ? { interval: healthCheck.interval ?? 5_000, timeout: healthCheck.timeout ?? 2_000, rise: healthCheck.rise ?? 2, fall: healthCheck.fall ?? 3 }
      : null,
    allow: route.allow ?? none,
    deny: route.deny ?? none,
    redirect: route.redirect ? { scheme: route.redirect, port: route.redirectPort ?? 443 } : null,
    // The certificate manager speaks no PROXY protocol unless its own entry says so: the route's setting is for its backends.
    acmeChallenge: (route.acmeChallenge ?? none).map((backend) => resolveBackend(backend, undefined, backends)),
  };
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}

/** The source offset of the node at `path` (or of its key), else of its nearest existing ancestor. */
function locate(document: Document, path: Path, onKey: boolean): number {
  const { isMap, isScalar } = yaml();
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
