import type { BackendRegistry } from '../backends/health.js';
import type { ListenerConfig, RouteConfig } from '../config/types.js';
import type { ListenerSettings, RouteEntry } from '../pipeline/settings.js';
import { buildAccessCheck } from '../routing/access-list.js';
import { buildRouteTable } from '../routing/route-table.js';
import { PassthroughTarget } from '../targets/passthrough.js';
import { TLS_PREAMBLE } from './tls-preamble.js';

function routeEntry(route: RouteConfig, registry: BackendRegistry): RouteEntry {
  return { hostnames: route.hostnames, alpn: route.alpn, access: buildAccessCheck(route), target: new PassthroughTarget(route, registry) };
}

/** Turns a listener's config into what its connections use: route table, targets, access checks. */
export function listenerSettings(config: ListenerConfig, registry: BackendRegistry): ListenerSettings {
  return {
    listener: config.name,
    protocol: TLS_PREAMBLE,
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
