import type { AccessLists, BackendConfig, BalanceMode, ListenerConfig, ListenerProtocol, RouteConfig } from '../config/types.js';
import { formatAddress } from '../config/values.js';
import { buildAccessCheck } from './access-list.js';
import { buildRouteTable, matchRoute } from './route-table.js';

/** One route pattern that matches the name: the route's index in the listener (null: the default route), the pattern, the route's ALPN condition. */
export interface Candidate {
  route: number | null;
  pattern: string;
  alpn: string[];
}

/** How the winning route was chosen (the precedence rule that decided). */
export type MatchRule = 'exact' | 'wildcard' | 'default' | 'none';

/**
 * What an allow/deny list makes of the client: `allowed` null when the lists
 * depend on the client address and none was given.
 */
export type AccessVerdict = { lists: false } | { lists: true; allow: string[]; deny: string[]; allowed: boolean | null };

/** Where the connection ends: served by a route, or refused (the codes of the connection log's `reason`/`outcome`). */
export type RouteResult = 'routed' | 'listener_access_list' | 'route_access_list' | 'no_route';

export type TargetKind = 'passthrough' | 'terminate' | 'redirect';

export interface RouteTargetSummary {
  kind: TargetKind;
  /** terminate: where the certificates come from ('internal': the local CA; else the certificate files). */
  certificates: 'internal' | string[] | null;
  /** terminate: whether the proxy re-encrypts to the backends. */
  backendTls: boolean;
  /** redirect: the https port in the Location. */
  redirectPort: number | null;
  balance: BalanceMode;
  backends: Array<Pick<BackendConfig, 'address' | 'weight' | 'proxyProtocol'>>;
  /** HTTP listeners: where ACME http-01 challenge requests go instead (empty: they follow the route). */
  acmeChallenge: string[];
}

/** Why a connection for a name would go where it goes on one listener: the structured answer of `sni-passthrough route`. */
export interface RouteExplanation {
  listener: string;
  listen: string;
  protocol: ListenerProtocol;
  serverName: string | null;
  /** The ALPN protocols matched on (always empty for plain-HTTP listeners: their clients send none). */
  alpn: string[];
  client: string | null;
  listenerAccess: AccessVerdict;
  rule: MatchRule;
  /** Every pattern that matches, best first: the first won (exact, then the longest wildcard, then default). */
  candidates: Candidate[];
  /** Patterns that match the name but only for ALPN protocols the client does not offer. */
  skippedForAlpn: Candidate[];
  routeAccess: AccessVerdict;
  result: RouteResult;
  /** What the client gets when not routed: the answer on the wire, or a bare close. */
  answer: string | null;
  target: RouteTargetSummary | null;
}

export interface RouteQuery {
  /** Lower-case, without a trailing dot, as the ClientHello parser returns it; null: no SNI (no Host). */
  serverName: string | null;
  alpn: readonly string[];
  client: string | null;
}

/** A route as the table indexes it, with its place in the listener so candidates can name it. */
interface IndexedRoute {
  index: number | null;
  hostnames: readonly string[];
  alpn: readonly string[];
}

const NO_ROUTE_ANSWER: Record<ListenerProtocol, string> = {
  tls: 'the client gets a fatal unrecognized_name alert',
  http: 'the client gets 404 Not Found',
};
/** Access lists refuse without a word: a refused client learns nothing about the routes. */
const REFUSED_ANSWER = 'the connection is closed without an answer';

function accessVerdict(lists: AccessLists, client: string | null): AccessVerdict {
  const check = buildAccessCheck(lists);
  if (check === null) return { lists: false };
  return { lists: true, allow: lists.allow, deny: lists.deny, allowed: client === null ? null : check(client) };
}

/**
 * Every route pattern that matches, in the order the route table prefers
 * them: the table is asked again with each winner taken out, so the order is
 * the matcher's own, never a second copy of its rules. Bounded by the number
 * of patterns (each step removes one).
 */
function candidatesFor(routes: readonly IndexedRoute[], fallback: IndexedRoute | null, serverName: string | null, alpn: readonly string[]): Candidate[] {
  const removed = new Set<string>();
  const candidates: Candidate[] = [];
  const patterns = routes.reduce((sum, route) => sum + route.hostnames.length, 0);
  for (let step = 0; step <= patterns; step++) {
    const remaining = routes.map((route) => ({ ...route, hostnames: route.hostnames.filter((pattern) => !removed.has(`${route.index} ${pattern}`)) }));
    const found = matchRoute(buildRouteTable(remaining, fallback), serverName, alpn);
    if (found === null) break;
    candidates.push({ route: found.route.index, pattern: found.pattern, alpn: [...found.route.alpn] });
    if (found.route === fallback) break;
    removed.add(`${found.route.index} ${found.pattern}`);
  }
  return candidates;
}

function sameCandidate(a: Candidate, b: Candidate): boolean {
  return a.route === b.route && a.pattern === b.pattern;
}

function targetSummary(route: RouteConfig): RouteTargetSummary {
  const kind: TargetKind = route.redirect ? 'redirect' : route.tls ? 'terminate' : 'passthrough';
  const certificates = route.tls === null ? null : route.tls.certificates === 'internal' ? 'internal' : route.tls.certificates.map((files) => files.cert);
  return {
    kind,
    certificates,
    backendTls: route.backendTls !== null,
    redirectPort: route.redirect?.port ?? null,
    balance: route.balance,
    backends: route.backends.map(({ address, weight, proxyProtocol }) => ({ address, weight, proxyProtocol })),
    acmeChallenge: route.acmeChallenge.map((backend) => backend.address),
  };
}

/**
 * Where a connection for `query` goes on `listener`, and why, in the order a
 * connection meets the checks: the listener's allow/deny (before a byte is
 * read), the route table (exact name, longest wildcard, default; ALPN within
 * a pattern), the route's allow/deny, then the route's target. Pure.
 */
export function explainRoute(listener: ListenerConfig, query: RouteQuery): RouteExplanation {
  const alpn = listener.protocol === 'http' ? [] : [...query.alpn];
  const routes: IndexedRoute[] = listener.routes.map((route, index) => ({ index, hostnames: route.hostnames, alpn: route.alpn }));
  const fallback: IndexedRoute | null = listener.defaultRoute ? { index: null, hostnames: [], alpn: [] } : null;
  const candidates = candidatesFor(routes, fallback, query.serverName, alpn);
  // Offering every protocol the listener's routes name shows the patterns that were passed over for ALPN alone.
  const everyProtocol = [...new Set([...alpn, ...listener.routes.flatMap((route) => route.alpn)])];
  const skippedForAlpn =
    everyProtocol.length === alpn.length
      ? []
      : candidatesFor(routes, fallback, query.serverName, everyProtocol).filter(
          (candidate) => candidate.alpn.length > 0 && !candidates.some((other) => sameCandidate(other, candidate)),
        );

  const winner = candidates[0] ?? null;
  const route = winner === null ? null : winner.route === null ? listener.defaultRoute! : listener.routes[winner.route]!;
  const rule: MatchRule = winner === null ? 'none' : winner.route === null ? 'default' : winner.pattern.startsWith('*.') ? 'wildcard' : 'exact';
  const listenerAccess = accessVerdict(listener, query.client);
  const routeAccess: AccessVerdict = route === null ? { lists: false } : accessVerdict(route, query.client);
  const result: RouteResult =
    listenerAccess.lists && listenerAccess.allowed === false
      ? 'listener_access_list'
      : route === null
        ? 'no_route'
        : routeAccess.lists && routeAccess.allowed === false
          ? 'route_access_list'
          : 'routed';
  return {
    listener: listener.name,
    listen: formatAddress(listener.listen.host, listener.listen.port),
    protocol: listener.protocol,
    serverName: query.serverName,
    alpn,
    client: query.client,
    listenerAccess,
    rule,
    candidates,
    skippedForAlpn,
    routeAccess,
    result,
    answer: result === 'routed' ? null : result === 'no_route' ? NO_ROUTE_ANSWER[listener.protocol] : REFUSED_ANSWER,
    target: route === null ? null : targetSummary(route),
  };
}
