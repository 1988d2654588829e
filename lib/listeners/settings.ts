import type { BackendRegistry } from '../backends/health.js';
import type { ListenerConfig, ListenerProtocol, RouteConfig } from '../config/types.js';
import type { PreambleProtocol } from '../pipeline/preamble.js';
import type { ListenerSettings, RouteEntry } from '../pipeline/settings.js';
import type { Target } from '../pipeline/target.js';
import { buildAccessCheck } from '../routing/access-list.js';
import { buildRouteTable } from '../routing/route-table.js';
import { PassthroughTarget } from '../targets/passthrough.js';
import { RedirectTarget } from '../targets/redirect.js';
import { NO_HTTP_ROUTE, UNRECOGNIZED_NAME } from '../targets/refuse.js';
import { HTTP_PREAMBLE } from './http-preamble.js';
import { TLS_PREAMBLE } from './tls-preamble.js';

/** What sets the listener kinds apart: what their clients send first, and what a client no route serves gets. */
const LISTENER_KINDS: Record<ListenerProtocol, { protocol: PreambleProtocol; noRoute: Target }> = {
  tls: { protocol: TLS_PREAMBLE, noRoute: UNRECOGNIZED_NAME },
  http: { protocol: HTTP_PREAMBLE, noRoute: NO_HTTP_ROUTE },
};

function routeEntry(route: RouteConfig, registry: BackendRegistry): RouteEntry {
  return {
    hostnames: route.hostnames,
    alpn: route.alpn,
    access: buildAccessCheck(route),
    target: route.redirect ? new RedirectTarget(route.redirect) : new PassthroughTarget(route, registry),
    // The certificate manager is balanced and failed over like the route's backends; health checks are for those.
    acmeChallenge: route.acmeChallenge.length > 0 ? new PassthroughTarget({ ...route, backends: route.acmeChallenge, healthCheck: null }, registry) : null,
  };
}

/** Turns a listener's config into what its connections use: route table, targets, access checks. */
export function listenerSettings(config: ListenerConfig, registry: BackendRegistry): ListenerSettings {
  return {
    listener: config.name,
    ...LISTENER_KINDS[config.protocol],
    clientHelloTimeout: config.clientHelloTimeout,
    connectTimeout: config.connectTimeout,
    idleTimeout: config.idleTimeout,
    halfCloseTimeout: config.halfCloseTimeout,
    acceptProxyProtocol: config.acceptProxyProtocol,
    trustedProxies: buildAccessCheck({ allow: config.proxyProtocolFrom, deny: [] }),
    access: buildAccessCheck(config),
    routes: buildRouteTable(
      config.routes.map((route) => routeEntry(route, registry)),
      config.defaultRoute ? routeEntry(config.defaultRoute, registry) : null,
    ),
  };
}
