/** The route chosen for a connection and the pattern that chose it ("default" for the default route). */
export interface RouteMatch<Route> {
  route: Route;
  pattern: string;
}

/**
 * A listener's routes indexed for lookup by SNI: exact names in one map,
 * wildcards by their suffix in another, so a lookup costs one probe per label
 * of the name, whatever the number of routes.
 */
export interface RouteTable<Route> {
  exact: Map<string, RouteMatch<Route>>;
  wildcard: Map<string, RouteMatch<Route>>;
  fallback: RouteMatch<Route> | null;
}

/** Indexes routes by their hostname patterns (already normalized and unique, as the config loader guarantees). */
export function buildRouteTable<Route extends { hostnames: readonly string[] }>(routes: readonly Route[], defaultRoute: Route | null): RouteTable<Route> {
  const exact = new Map<string, RouteMatch<Route>>();
  const wildcard = new Map<string, RouteMatch<Route>>();
  for (const route of routes) {
    for (const pattern of route.hostnames) {
      if (pattern.startsWith('*.')) wildcard.set(pattern.slice(2), { route, pattern });
      else exact.set(pattern, { route, pattern });
    }
  }
  return { exact, wildcard, fallback: defaultRoute ? { route: defaultRoute, pattern: 'default' } : null };
}

/**
 * Precedence: an exact name, then the longest wildcard suffix (`*.example.com`
 * matches names with at least one more label, never `example.com` itself),
 * then the default route. `serverName` is already lower-case without a
 * trailing dot (as the ClientHello parser returns it).
 */
export function matchRoute<Route>(table: RouteTable<Route>, serverName: string | null): RouteMatch<Route> | null {
  if (serverName === null || serverName === '') return table.fallback;
  const exact = table.exact.get(serverName);
  if (exact) return exact;
  if (table.wildcard.size > 0) {
    for (let dot = serverName.indexOf('.'); dot >= 0; dot = serverName.indexOf('.', dot + 1)) {
      const match = table.wildcard.get(serverName.slice(dot + 1));
      if (match) return match;
    }
  }
  return table.fallback;
}
