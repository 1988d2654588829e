import type { BackendRegistry } from '../backends/health.js';
import { lazyPool } from '../backends/pool.js';
import type { ListenerConfig, RouteConfig } from '../config/types.js';
import type { ListenerSettings, RouteEntry } from '../pipeline/settings.js';
import type { Target } from '../pipeline/target.js';
import { buildAccessCheck } from '../routing/access-list.js';
import { buildRouteTable } from '../routing/route-table.js';
import { PassthroughTarget } from '../targets/passthrough.js';
import { type CertificateSource, TerminateTarget } from '../targets/terminate.js';
import { certificateSetKey, type TlsMaterial } from '../tls/certificates.js';
import { TLS_PREAMBLE } from './tls-preamble.js';

/** What settings are built from besides the listener's config: backend states, and the generation's certificates. */
export interface SettingsContext {
  registry: BackendRegistry;
  tls: TlsMaterial;
}

function routeTarget(route: RouteConfig, { registry, tls }: SettingsContext): Target {
  const pool = lazyPool(route, registry);
  if (route.tls === null) return new PassthroughTarget(pool);
  const { certificates } = route.tls;
  const source: CertificateSource =
    certificates === 'internal' ? { issuer: tls.internalCa!, hostnames: route.hostnames } : { context: tls.contexts.get(certificateSetKey(certificates))! };
  const backendTls = route.backendTls && {
    servername: route.backendTls.servername,
    ca: route.backendTls.ca === null ? null : tls.backendCas.get(route.backendTls.ca)!,
    verify: route.backendTls.verify,
  };
  return new TerminateTarget({ pool, certificates: source, alpn: route.tls.alpn, backendTls });
}

function routeEntry(route: RouteConfig, context: SettingsContext): RouteEntry {
  return { hostnames: route.hostnames, alpn: route.alpn, access: buildAccessCheck(route), target: routeTarget(route, context) };
}

/** Turns a listener's config into what its connections use: route table, targets, access checks. */
export function listenerSettings(config: ListenerConfig, context: SettingsContext): ListenerSettings {
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
      config.routes.map((route) => routeEntry(route, context)),
      config.defaultRoute ? routeEntry(config.defaultRoute, context) : null,
    ),
  };
}
