import type { HostLookup } from '../backends/dial.js';
import type { BackendRegistry } from '../backends/health.js';
import { lazyPool } from '../backends/pool.js';
import { TemplatedPools } from '../backends/templated-pools.js';
import { isHostTemplate } from '../config/values.js';
import type { ListenerConfig, ListenerProtocol, RouteConfig } from '../config/types.js';
import type { PreambleProtocol } from '../pipeline/preamble.js';
import type { ListenerSettings, RouteEntry } from '../pipeline/settings.js';
import type { Target } from '../pipeline/target.js';
import { buildAccessCheck } from '../routing/access-list.js';
import { buildRouteTable } from '../routing/route-table.js';
import { PassthroughTarget, type PoolSource } from '../targets/passthrough.js';
import { RedirectTarget } from '../targets/redirect.js';
import { NO_HTTP_BACKEND_NAME, NO_HTTP_ROUTE, UNRECOGNIZED_BACKEND_NAME, UNRECOGNIZED_NAME } from '../targets/refuse.js';
import { type CertificateSource, TerminateTarget } from '../targets/terminate.js';
import { certificateSetKey, type TlsMaterial } from '../tls/certificates.js';
import { HTTP_PREAMBLE } from './http-preamble.js';
import { TLS_PREAMBLE } from './tls-preamble.js';

/** What settings are built from besides the listener's config: backend states, the generation's certificates, and what resolves backend names. */
export interface SettingsContext {
  registry: BackendRegistry;
  tls: TlsMaterial;
  resolver: HostLookup;
}

/** What sets the listener kinds apart: what their clients send first, and what a client no route serves gets. */
const LISTENER_KINDS: Record<ListenerProtocol, { protocol: PreambleProtocol; noRoute: Target; noBackendName: Target }> = {
  tls: { protocol: TLS_PREAMBLE, noRoute: UNRECOGNIZED_NAME, noBackendName: UNRECOGNIZED_BACKEND_NAME },
  http: { protocol: HTTP_PREAMBLE, noRoute: NO_HTTP_ROUTE, noBackendName: NO_HTTP_BACKEND_NAME },
};

/** Where a route sends a connection: an answer (redirect), its backends as they are, or its backends after terminating TLS. */
function routeTarget(route: RouteConfig, { registry, tls, resolver }: SettingsContext): Target {
  if (route.redirect) return new RedirectTarget(route.redirect);
  let pool: PoolSource = lazyPool(route, registry);
  if (route.backends.some((backend) => isHostTemplate(backend.host))) {
    const templated = new TemplatedPools(route, registry);
    pool = (serverName, pattern) => templated.poolFor(serverName, pattern);
  }
  if (route.tls === null) return new PassthroughTarget(pool, resolver);
  const { certificates } = route.tls;
  const source: CertificateSource =
    certificates === 'internal' ? { issuer: tls.internalCa!, hostnames: route.hostnames } : { context: tls.contexts.get(certificateSetKey(certificates))! };
  const backendTls = route.backendTls && {
    servername: route.backendTls.servername,
    ca: route.backendTls.ca === null ? null : tls.backendCas.get(route.backendTls.ca)!,
    verify: route.backendTls.verify,
  };
  return new TerminateTarget({ pool, resolver, certificates: source, alpn: route.tls.alpn, backendTls });
}

function routeEntry(route: RouteConfig, context: SettingsContext): RouteEntry {
  const { acmeChallenge } = route;
  return {
    hostnames: route.hostnames,
    alpn: route.alpn,
    access: buildAccessCheck(route),
    target: routeTarget(route, context),
    // The certificate manager is balanced and failed over like the route's backends; health checks are for those.
    acmeChallenge:
      acmeChallenge.length > 0
        ? new PassthroughTarget(lazyPool({ ...route, backends: acmeChallenge, healthCheck: null }, context.registry), context.resolver)
        : null,
  };
}

/** Turns a listener's config into what its connections use: route table, targets, access checks. */
export function listenerSettings(config: ListenerConfig, context: SettingsContext): ListenerSettings {
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
      config.routes.map((route) => routeEntry(route, context)),
      config.defaultRoute ? routeEntry(config.defaultRoute, context) : null,
    ),
  };
}
