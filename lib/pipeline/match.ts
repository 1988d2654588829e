import { matchRoute } from '../routing/route-table.js';
import { REFUSE_BY_ROUTE_ACCESS_LIST } from '../targets/refuse.js';
import type { ClientRequest } from './preamble.js';
import type { ListenerSettings } from './settings.js';
import type { Target } from './target.js';

export interface Match {
  target: Target;
  /** The pattern that decided ("default" for the default route); null when nothing matched. */
  route: string | null;
}

/** Where ACME http-01 validation requests are sent (RFC 8555 section 8.3). */
export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';

/**
 * Where a connection goes, from what its preamble said: the route its name and
 * ALPN select (exact name, longest wildcard, default), unless that route's
 * access list refuses the client; an HTTP request for an ACME challenge goes
 * to the route's challenge target when it has one; no route gets the
 * listener's answer for that (`unrecognized_name`, 404).
 * Pure: it reads the settings and returns a target, nothing else.
 */
export function match(settings: ListenerSettings, request: ClientRequest, clientAddress: string): Match {
  const found = matchRoute(settings.routes, request.serverName, request.alpn);
  if (found === null) return { target: settings.noRoute, route: null };
  const { route, pattern } = found;
  if (route.access && !route.access(clientAddress)) return { target: REFUSE_BY_ROUTE_ACCESS_LIST, route: pattern };
  if (route.acmeChallenge !== null && request.path?.startsWith(ACME_CHALLENGE_PATH)) return { target: route.acmeChallenge, route: pattern };
  return { target: route.target, route: pattern };
}
