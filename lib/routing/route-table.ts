/** The route chosen for a connection and the pattern that chose it ("default" for the default route). */
export interface RouteMatch<Route> {
  route: Route;
  pattern: string;
}

/** The routes of a hostname pattern some of which are limited to ALPN protocols: those are tried first. */
interface AlpnRoutes<Route> {
  byAlpn: Array<{ alpn: readonly string[]; match: RouteMatch<Route> }>;
  plain: RouteMatch<Route> | null;
}

/** A pattern's one route (the usual case: one object per hostname), or its routes by ALPN. */
type PatternRoutes<Route> = RouteMatch<Route> | AlpnRoutes<Route>;

/**
 * A listener's routes indexed for lookup by SNI: exact names in one map,
 * wildcards by their suffix in another, so a lookup costs one probe per label
 * of the name, whatever the number of routes.
 */
export interface RouteTable<Route> {
  exact: Map<string, PatternRoutes<Route>>;
  wildcard: Map<string, PatternRoutes<Route>>;
  fallback: RouteMatch<Route> | null;
}

function isAlpnRoutes<Route>(entry: PatternRoutes<Route>): entry is AlpnRoutes<Route> {
  return 'byAlpn' in entry;
}

/** Indexes routes by their hostname patterns (normalized, and unique per ALPN set, as the config loader guarantees). */
export function buildRouteTable<Route extends { hostnames: readonly string[]; alpn: readonly string[] }>(
  routes: readonly Route[],
  defaultRoute: Route | null,
): RouteTable<Route> {
  const exact = new Map<string, PatternRoutes<Route>>();
  const wildcard = new Map<string, PatternRoutes<Route>>();
  for (const route of routes) {
    for (const pattern of route.hostnames) {
      const isWildcard = pattern.startsWith('*.');
      const map = isWildcard ? wildcard : exact;
      const key = isWildcard ? pattern.slice(2) : pattern;
      const match = { route, pattern };
      const entry = map.get(key);
      if (entry === undefined && route.alpn.length === 0) {
        map.set(key, match);
        continue;
      }
      const routesOfPattern: AlpnRoutes<Route> = entry === undefined ? { byAlpn: [], plain: null } : isAlpnRoutes(entry) ? entry : { byAlpn: [], plain: entry };
      if (route.alpn.length > 0) routesOfPattern.byAlpn.push({ alpn: route.alpn, match });
      else routesOfPattern.plain = match;
      map.set(key, routesOfPattern);
    }
  }
  return { exact, wildcard, fallback: defaultRoute ? { route: defaultRoute, pattern: 'default' } : null };
}

function pick<Route>(entry: PatternRoutes<Route> | undefined, alpn: readonly string[]): RouteMatch<Route> | null {
  if (entry === undefined) return null;
  if (!isAlpnRoutes(entry)) return entry;
  if (alpn.length > 0) {
    for (const candidate of entry.byAlpn) {
      if (candidate.alpn.some((protocol) => alpn.includes(protocol))) return candidate.match;
    }
  }
  return entry.plain;
}

/**
 * Precedence: an exact name, then the longest wildcard suffix (`*.example.com`
 * matches names with at least one more label, never `example.com` itself),
 * then the default route. Within one pattern, a route limited to ALPN
 * protocols the client offers beats the pattern's route without ALPN; a
 * pattern whose routes all need ALPN the client does not offer does not match.
 * `serverName` is already lower-case without a trailing dot (as the
 * ClientHello parser returns it).
 */
export function matchRoute<Route>(table: RouteTable<Route>, serverName: string | null, alpn: readonly string[] = []): RouteMatch<Route> | null {
  if (serverName === null || serverName === '') return table.fallback;
  const exact = pick(table.exact.get(serverName), alpn);
  if (exact) return exact;
  if (table.wildcard.size > 0) {
    for (let dot = serverName.indexOf('.'); dot >= 0; dot = serverName.indexOf('.', dot + 1)) {
      const match = pick(table.wildcard.get(serverName.slice(dot + 1)), alpn);
      if (match) return match;
    }
  }
  return table.fallback;
}
