import { matchRoute } from '../routing/route-table.js';
import { REFUSE_BY_ROUTE_ACCESS_LIST, UNRECOGNIZED_NAME } from '../targets/refuse.js';
import type { ClientRequest } from './preamble.js';
import type { ListenerSettings } from './settings.js';
import type { Target } from './target.js';

export interface Match {
  target: Target;
  /** The pattern that decided ("default" for the default route); null when nothing matched. */
  route: string | null;
}

/**
 * Where a connection goes, from what its preamble said: the route its name and
 * ALPN select (exact name, longest wildcard, default), unless that route's
 * access list refuses the client; no route answers `unrecognized_name`.
 * Pure: it reads the settings and returns a target, nothing else.
 */
export function match(settings: ListenerSettings, request: ClientRequest, clientAddress: string): Match {
  const found = matchRoute(settings.routes, request.serverName, request.alpn);
  if (found === null) return { target: UNRECOGNIZED_NAME, route: null };
  const { route, pattern } = found;
  if (route.access && !route.access(clientAddress)) return { target: REFUSE_BY_ROUTE_ACCESS_LIST, route: pattern };
  return { target: route.target, route: pattern };
}
