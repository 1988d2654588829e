import type { BackendConfig, ListenerConfig, ProxyConfig, RouteConfig } from './types.js';
import { formatAddress, formatDuration } from './values.js';

/** One setting that differs, both values as `check` would print them. */
export interface FieldChange {
  field: string;
  from: string;
  to: string;
}

export interface BackendSummary {
  address: string;
  weight: number;
}

export interface BackendChanges {
  added: BackendSummary[];
  removed: BackendSummary[];
  /** Backends in both, with their weight or PROXY protocol changed. */
  changed: Array<{ address: string; changes: FieldChange[] }>;
}

/** A route added or removed whole: its label, hostnames and backends. */
export interface RouteSummary {
  route: string;
  hostnames: string[];
  backends: BackendSummary[];
}

/** A route in both configs whose settings or backends differ (its hostnames are in `hostnames`). */
export interface RouteChange {
  route: string;
  settings: FieldChange[];
  backends: BackendChanges;
}

export interface HostnameChange {
  hostname: string;
  route: string;
}

export interface HostnameMove {
  hostname: string;
  from: string;
  to: string;
}

/** A listener in both configs (by name, or by its socket when renamed) and what differs in it. */
export interface ListenerChange {
  name: string;
  /** Renamed on the same address: the socket is kept. */
  renamedFrom: string | null;
  /** A new address: bound anew; the old socket stops accepting. */
  rebound: { from: string; to: string } | null;
  settings: FieldChange[];
  routes: { added: RouteSummary[]; removed: RouteSummary[]; changed: RouteChange[] };
  /**
   * Hostnames gained or lost by routes present in both configs, and hostnames
   * that now go to another route; those of routes added or removed whole are
   * in `routes`.
   */
  hostnames: { added: HostnameChange[]; removed: HostnameChange[]; moved: HostnameMove[] };
}

export interface ListenerSummary {
  name: string;
  listen: string;
  protocol: string;
}

/**
 * What applying `next` over `current` changes, in the terms an operator
 * reviews a reload in. Plain data: it is printed by `diff`, logged with
 * `config reloaded`, and serialized as is.
 */
export interface ConfigDiff {
  listeners: { added: ListenerSummary[]; removed: ListenerSummary[]; changed: ListenerChange[] };
  /**
   * Listening sockets the reload closes (removed listeners, the old address
   * of rebound ones): they stop accepting; their open connections go on
   * until they end. Every other open connection is kept as it is.
   */
  closing: Array<{ listener: string; listen: string }>;
  /** The admin endpoint and `stateDir`. */
  settings: FieldChange[];
}

/**
 * Which listening socket a listener uses: the supervisor keeps a socket across
 * configs while this stays the same. A port-0 listener (any free port) is
 * identified by name as well, since its address says nothing.
 */
export function listenerSocketKey(config: ListenerConfig): string {
  const address = formatAddress(config.listen.host, config.listen.port);
  return config.listen.port === 0 ? `${config.name}@${address}` : address;
}

const list = (values: readonly string[]): string => (values.length === 0 ? 'none' : values.join(' '));
const milliseconds = (value: number): string => (value === 0 ? 'off' : formatDuration(value));

/** Each compared setting and how its value is printed. */
type Fields<T> = ReadonlyArray<[keyof T & string, (value: T) => string]>;

const LISTENER_FIELDS: Fields<ListenerConfig> = [
  ['protocol', (l) => l.protocol],
  ['clientHelloTimeout', (l) => milliseconds(l.clientHelloTimeout)],
  ['connectTimeout', (l) => milliseconds(l.connectTimeout)],
  ['idleTimeout', (l) => milliseconds(l.idleTimeout)],
  ['halfCloseTimeout', (l) => milliseconds(l.halfCloseTimeout)],
  ['drainTimeout', (l) => milliseconds(l.drainTimeout)],
  ['acceptProxyProtocol', (l) => String(l.acceptProxyProtocol)],
  ['proxyProtocolFrom', (l) => list(l.proxyProtocolFrom)],
  ['maxConnections', (l) => (l.maxConnections === 0 ? 'unlimited' : String(l.maxConnections))],
  ['maxConnectionsPerClient', (l) => (l.maxConnectionsPerClient === 0 ? 'unlimited' : String(l.maxConnectionsPerClient))],
  ['allow', (l) => list(l.allow)],
  ['deny', (l) => list(l.deny)],
];

const ROUTE_FIELDS: Fields<RouteConfig> = [
  ['alpn', (r) => (r.alpn.length === 0 ? 'any' : r.alpn.join(' '))],
  ['balance', (r) => r.balance],
  ['retries', (r) => (r.retries === null ? 'each backend once' : String(r.retries))],
  ['maxFails', (r) => (r.maxFails === 0 ? 'off' : String(r.maxFails))],
  ['failTimeout', (r) => milliseconds(r.failTimeout)],
  [
    'healthCheck',
    ({ healthCheck: h }) => (h === null ? 'off' : `every ${formatDuration(h.interval)}, timeout ${formatDuration(h.timeout)}, rise ${h.rise}, fall ${h.fall}`),
  ],
  [
    'tls',
    ({ tls }) =>
      tls === null
        ? 'passthrough'
        : `terminate with ${tls.certificates === 'internal' ? 'internal' : tls.certificates.map((files) => files.cert).join(' ')}${tls.alpn.length > 0 ? `, alpn ${tls.alpn.join(' ')}` : ''}`,
  ],
  [
    'backendTls',
    ({ backendTls: b }) => (b === null ? 'off' : `ca ${b.ca ?? 'system'}, servername ${b.servername ?? "client's"}${b.verify ? '' : ', verify off'}`),
  ],
  ['redirect', (r) => (r.redirect === null ? 'off' : `https port ${r.redirect.port}`)],
  ['allow', (r) => list(r.allow)],
  ['deny', (r) => list(r.deny)],
  ['acmeChallenge', (r) => list(r.acmeChallenge.map((backend) => backend.address))],
];

const BACKEND_FIELDS: Fields<BackendConfig> = [
  ['weight', (b) => String(b.weight)],
  ['proxyProtocol', (b) => b.proxyProtocol ?? 'off'],
];

function fieldChanges<T>(fields: Fields<T>, current: T, next: T): FieldChange[] {
  const changes: FieldChange[] = [];
  for (const [field, show] of fields) {
    const from = show(current);
    const to = show(next);
    if (from !== to) changes.push({ field, from, to });
  }
  return changes;
}

/** How a route is named in a diff: its hostnames (the first three) in brackets and its ALPN condition, or "default". */
export function routeLabel(route: RouteConfig, isDefault: boolean): string {
  if (isDefault) return 'default';
  const shown = route.hostnames.slice(0, 3).join(', ');
  const more = route.hostnames.length > 3 ? ` +${route.hostnames.length - 3} more` : '';
  return `[${shown}${more}]${route.alpn.length > 0 ? ` alpn ${route.alpn.join(', ')}` : ''}`;
}

const backendSummary = ({ address, weight }: BackendConfig): BackendSummary => ({ address, weight });

function diffBackends(current: readonly BackendConfig[], next: readonly BackendConfig[]): BackendChanges {
  const before = new Map(current.map((backend) => [backend.address, backend]));
  const after = new Map(next.map((backend) => [backend.address, backend]));
  const changes: BackendChanges = { added: [], removed: [], changed: [] };
  for (const backend of next) {
    const old = before.get(backend.address);
    if (old === undefined) changes.added.push(backendSummary(backend));
    else {
      const fields = fieldChanges(BACKEND_FIELDS, old, backend);
      if (fields.length > 0) changes.changed.push({ address: backend.address, changes: fields });
    }
  }
  for (const backend of current) if (!after.has(backend.address)) changes.removed.push(backendSummary(backend));
  return changes;
}

/**
 * Pairs the routes of two versions of a listener: a route is the same route
 * when it keeps at least one hostname; routes with the same ALPN condition
 * pair first, then those sharing the most hostnames. Returns old index → new index.
 */
function pairRoutes(current: readonly RouteConfig[], next: readonly RouteConfig[]): Map<number, number> {
  // Indexed by hostname, so a config of 100,000 routes is paired in one pass, not by comparing every two routes.
  const routesOf = new Map<string, number[]>();
  for (const [to, route] of next.entries()) {
    for (const pattern of route.hostnames) {
      const routes = routesOf.get(pattern);
      if (routes === undefined) routesOf.set(pattern, [to]);
      else routes.push(to);
    }
  }
  const candidates: Array<{ from: number; to: number; sameAlpn: boolean; shared: number }> = [];
  for (const [from, old] of current.entries()) {
    const shared = new Map<number, number>();
    for (const pattern of old.hostnames) for (const to of routesOf.get(pattern) ?? []) shared.set(to, (shared.get(to) ?? 0) + 1);
    const alpn = old.alpn.join(' ');
    for (const [to, count] of shared) candidates.push({ from, to, sameAlpn: next[to]!.alpn.join(' ') === alpn, shared: count });
  }
  // A name's routes for different ALPN protocols are told apart by their ALPN first: each pairs with its twin.
  candidates.sort((a, b) => Number(b.sameAlpn) - Number(a.sameAlpn) || b.shared - a.shared || a.from - b.from || a.to - b.to);
  const pairs = new Map<number, number>();
  const taken = new Set<number>();
  for (const { from, to } of candidates) {
    if (pairs.has(from) || taken.has(to)) continue;
    pairs.set(from, to);
    taken.add(to);
  }
  return pairs;
}

/** A hostname leaving a route (old index) or joining one (new index). */
interface HostnameEnd {
  hostname: string;
  route: number;
}

function diffListener(current: ListenerConfig, next: ListenerConfig): ListenerChange {
  const pairs = pairRoutes(current.routes, next.routes);
  const pairedNew = new Map([...pairs].map(([from, to]) => [to, from]));
  const newLabel = (index: number): string => routeLabel(next.routes[index]!, false);
  // An old route still there is named as it is now.
  const oldLabel = (index: number): string => (pairs.has(index) ? newLabel(pairs.get(index)!) : routeLabel(current.routes[index]!, false));

  const departures: HostnameEnd[] = [];
  for (const [index, route] of current.routes.entries()) {
    const kept = pairs.has(index) ? new Set(next.routes[pairs.get(index)!]!.hostnames) : new Set<string>();
    for (const hostname of route.hostnames) if (!kept.has(hostname)) departures.push({ hostname, route: index });
  }
  const arrivals: HostnameEnd[] = [];
  for (const [index, route] of next.routes.entries()) {
    const had = pairedNew.has(index) ? new Set(current.routes[pairedNew.get(index)!]!.hostnames) : new Set<string>();
    for (const hostname of route.hostnames) if (!had.has(hostname)) arrivals.push({ hostname, route: index });
  }

  const hostnames: ListenerChange['hostnames'] = { added: [], removed: [], moved: [] };
  const sameAlpn = (departure: HostnameEnd, arrival: HostnameEnd): boolean =>
    current.routes[departure.route]!.alpn.join(' ') === next.routes[arrival.route]!.alpn.join(' ');
  const unmatched = new Set(arrivals);
  const arrivalsOf = new Map<string, HostnameEnd[]>();
  for (const arrival of arrivals) {
    const same = arrivalsOf.get(arrival.hostname);
    if (same === undefined) arrivalsOf.set(arrival.hostname, [arrival]);
    else same.push(arrival);
  }
  for (const departure of departures) {
    const matching = (arrivalsOf.get(departure.hostname) ?? []).filter((arrival) => unmatched.has(arrival));
    const arrival = matching.find((candidate) => sameAlpn(departure, candidate)) ?? matching[0];
    if (arrival !== undefined) {
      unmatched.delete(arrival);
      hostnames.moved.push({ hostname: departure.hostname, from: oldLabel(departure.route), to: newLabel(arrival.route) });
    } else if (pairs.has(departure.route)) {
      hostnames.removed.push({ hostname: departure.hostname, route: oldLabel(departure.route) });
    }
  }
  for (const arrival of unmatched) if (pairedNew.has(arrival.route)) hostnames.added.push({ hostname: arrival.hostname, route: newLabel(arrival.route) });

  const routes: ListenerChange['routes'] = { added: [], removed: [], changed: [] };
  const summary = (route: RouteConfig, isDefault: boolean): RouteSummary => ({
    route: routeLabel(route, isDefault),
    hostnames: route.hostnames,
    backends: route.backends.map(backendSummary),
  });
  const compare = (old: RouteConfig, route: RouteConfig, isDefault: boolean): void => {
    const settings = fieldChanges(ROUTE_FIELDS, old, route);
    const backends = diffBackends(old.backends, route.backends);
    if (settings.length + backends.added.length + backends.removed.length + backends.changed.length > 0) {
      routes.changed.push({ route: routeLabel(route, isDefault), settings, backends });
    }
  };
  for (const [index, route] of next.routes.entries()) {
    const old = pairedNew.get(index);
    if (old === undefined) routes.added.push(summary(route, false));
    else compare(current.routes[old]!, route, false);
  }
  for (const [index, route] of current.routes.entries()) if (!pairs.has(index)) routes.removed.push(summary(route, false));
  if (current.defaultRoute && next.defaultRoute) compare(current.defaultRoute, next.defaultRoute, true);
  else if (next.defaultRoute) routes.added.push(summary(next.defaultRoute, true));
  else if (current.defaultRoute) routes.removed.push(summary(current.defaultRoute, true));

  const from = formatAddress(current.listen.host, current.listen.port);
  const to = formatAddress(next.listen.host, next.listen.port);
  return {
    name: next.name,
    renamedFrom: current.name === next.name ? null : current.name,
    rebound: listenerSocketKey(current) === listenerSocketKey(next) ? null : { from, to },
    settings: fieldChanges(LISTENER_FIELDS, current, next),
    routes,
    hostnames,
  };
}

function isUnchanged(change: ListenerChange): boolean {
  const { settings, routes, hostnames } = change;
  return (
    change.renamedFrom === null &&
    change.rebound === null &&
    settings.length + routes.added.length + routes.removed.length + routes.changed.length === 0 &&
    hostnames.added.length + hostnames.removed.length + hostnames.moved.length === 0
  );
}

const listenerSummary = (listener: ListenerConfig): ListenerSummary => ({
  name: listener.name,
  listen: formatAddress(listener.listen.host, listener.listen.port),
  protocol: listener.protocol,
});

/**
 * What changes from `current` to `next`. Listeners are the same listener by
 * name, or by their socket when renamed on the same address; routes are the
 * same route while they keep a hostname; backends by address. `closing`
 * follows the supervisor's rule (a socket stays while its address does).
 * Pure.
 */
export function diffConfigs(current: ProxyConfig, next: ProxyConfig): ConfigDiff {
  const byName = new Map(current.listeners.map((listener) => [listener.name, listener]));
  const nextNames = new Set(next.listeners.map((listener) => listener.name));
  const bySocket = new Map(current.listeners.filter((listener) => !nextNames.has(listener.name)).map((listener) => [listenerSocketKey(listener), listener]));
  const diff: ConfigDiff = { listeners: { added: [], removed: [], changed: [] }, closing: [], settings: [] };
  const paired = new Set<ListenerConfig>();
  for (const listener of next.listeners) {
    // Renamed on the same address: the same socket, under a new name.
    const old = byName.get(listener.name) ?? bySocket.get(listenerSocketKey(listener)) ?? null;
    if (old === null || paired.has(old)) {
      diff.listeners.added.push(listenerSummary(listener));
      continue;
    }
    paired.add(old);
    const change = diffListener(old, listener);
    if (!isUnchanged(change)) diff.listeners.changed.push(change);
  }
  for (const listener of current.listeners) if (!paired.has(listener)) diff.listeners.removed.push(listenerSummary(listener));

  const nextSockets = new Set(next.listeners.map(listenerSocketKey));
  for (const listener of current.listeners) {
    if (!nextSockets.has(listenerSocketKey(listener)))
      diff.closing.push({ listener: listener.name, listen: formatAddress(listener.listen.host, listener.listen.port) });
  }

  const admin = (config: ProxyConfig): string =>
    config.admin === null ? 'off' : `${formatAddress(config.admin.listen.host, config.admin.listen.port)}${config.admin.allowRemote ? ', allowRemote' : ''}`;
  diff.settings = fieldChanges<ProxyConfig>(
    [
      ['admin', admin],
      ['stateDir', (config) => config.stateDir ?? 'default'],
    ],
    current,
    next,
  );
  return diff;
}

/** Whether applying the config would change nothing that runs (formatting and comments aside). */
export function isEmptyDiff(diff: ConfigDiff): boolean {
  return diff.listeners.added.length + diff.listeners.removed.length + diff.listeners.changed.length + diff.settings.length === 0;
}

/** One line for the reload log and the end of `diff`: how many of each kind of change ("2 routes added, 1 hostname moved"). */
export function summarizeDiff(diff: ConfigDiff): string {
  const changed = diff.listeners.changed;
  const inListeners = (pick: (change: ListenerChange) => number): number => changed.reduce((sum, change) => sum + pick(change), 0);
  const inBackends = (pick: (changes: BackendChanges) => number): number =>
    inListeners((change) => change.routes.changed.reduce((sum, route) => sum + pick(route.backends), 0));
  const counts: Array<[number, string, string]> = [
    [diff.listeners.added.length, 'listener', 'added'],
    [diff.listeners.removed.length, 'listener', 'removed'],
    [changed.filter((change) => change.rebound !== null).length, 'listener', 'rebound'],
    [changed.filter((change) => change.renamedFrom !== null).length, 'listener', 'renamed'],
    [inListeners((change) => change.settings.length), 'listener setting', 'changed'],
    [inListeners((change) => change.routes.added.length), 'route', 'added'],
    [inListeners((change) => change.routes.removed.length), 'route', 'removed'],
    [inListeners((change) => change.routes.changed.reduce((sum, route) => sum + route.settings.length, 0)), 'route setting', 'changed'],
    [inListeners((change) => change.hostnames.added.length), 'hostname', 'added'],
    [inListeners((change) => change.hostnames.removed.length), 'hostname', 'removed'],
    [inListeners((change) => change.hostnames.moved.length), 'hostname', 'moved'],
    [inBackends((changes) => changes.added.length), 'backend', 'added'],
    [inBackends((changes) => changes.removed.length), 'backend', 'removed'],
    [inBackends((changes) => changes.changed.length), 'backend', 'changed'],
    [diff.settings.length, 'global setting', 'changed'],
  ];
  const parts = counts.filter(([n]) => n > 0).map(([n, noun, verb]) => `${n} ${noun}${n === 1 ? '' : 's'} ${verb}`);
  return parts.length === 0 ? 'no change to listeners, routes or backends' : parts.join(', ');
}

/**
 * The diff for a log line: every list cut to `max` entries and a last entry
 * saying how many were left out, and what did not change (empty lists, null)
 * left out, so a reload that replaces thousands of routes still logs one
 * line of bounded size and a small change a short one.
 */
export function abridgeDiff(value: unknown, max = 20): unknown {
  if (Array.isArray(value)) {
    const kept = value.slice(0, max).map((item) => abridgeDiff(item, max));
    return value.length > max ? [...kept, `... ${value.length - max} more`] : kept;
  }
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value).map(([key, item]) => [key, abridgeDiff(item, max)] as const);
  return Object.fromEntries(entries.filter(([, item]) => item !== null && !(Array.isArray(item) && item.length === 0) && !isEmptyObject(item)));
}

function isEmptyObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 0;
}
