import type { BackendConfig, ListenerConfig, ProxyConfig, RouteConfig } from './types.js';
import { formatAddress, formatDuration, quicIdleTimeout } from './values.js';

function describeBackend(backend: BackendConfig): string {
  const notes = [backend.weight === 1 ? '' : `weight ${backend.weight}`, backend.proxyProtocol ? `PROXY ${backend.proxyProtocol}` : ''].filter(Boolean);
  return notes.length === 0 ? backend.address : `${backend.address} (${notes.join(', ')})`;
}

function describeRoute(label: string, route: RouteConfig): string[] {
  const alpn = route.alpn.length > 0 ? ` [alpn ${route.alpn.join(', ')}]` : '';
  // A route that only redirects dials nothing: its balancing and health settings would say nothing.
  const dials = route.backends.length > 0 || route.acmeChallenge.length > 0;
  const options = [
    dials ? route.balance : '',
    !dials || route.retries === null ? '' : `retries ${route.retries}`,
    !dials ? '' : route.maxFails === 0 ? 'passive health off' : `maxFails ${route.maxFails}/${formatDuration(route.failTimeout)}`,
    route.healthCheck && route.backends.length > 0 ? `health check every ${formatDuration(route.healthCheck.interval)}` : '',
    route.allow.length > 0 ? `allow ${route.allow.join(' ')}` : '',
    route.deny.length > 0 ? `deny ${route.deny.join(' ')}` : '',
  ].filter(Boolean);
  const destination = route.redirect
    ? `redirect to https${route.redirect.port === 443 ? '' : ` port ${route.redirect.port}`}`
    : route.backends.map(describeBackend).join(', ');
  return [
    `    ${label}${alpn} -> ${destination}`,
    ...(route.acmeChallenge.length > 0 ? [`        acmeChallenge -> ${route.acmeChallenge.map(describeBackend).join(', ')}`] : []),
    ...(options.length > 0 ? [`        ${options.join(', ')}`] : []),
  ];
}

function describeListener(listener: ListenerConfig): string[] {
  const settings = [
    `clientHelloTimeout ${formatDuration(listener.clientHelloTimeout)}`,
    `connectTimeout ${formatDuration(listener.connectTimeout)}`,
    `idleTimeout ${listener.idleTimeout === 0 ? 'off' : formatDuration(listener.idleTimeout)}`,
    `halfCloseTimeout ${listener.halfCloseTimeout === 0 ? 'off' : formatDuration(listener.halfCloseTimeout)}`,
    `drainTimeout ${formatDuration(listener.drainTimeout)}`,
    listener.acceptProxyProtocol ? `accepts PROXY protocol${listener.proxyProtocolFrom.length > 0 ? ` from ${listener.proxyProtocolFrom.join(' ')}` : ''}` : '',
    listener.maxConnections > 0 ? `maxConnections ${listener.maxConnections}` : '',
    listener.maxConnectionsPerClient > 0 ? `maxConnectionsPerClient ${listener.maxConnectionsPerClient}` : '',
    listener.allow.length > 0 ? `allow ${listener.allow.join(' ')}` : '',
    listener.deny.length > 0 ? `deny ${listener.deny.join(' ')}` : '',
  ].filter(Boolean);
  const quic = listener.quic
    ? [
        `    QUIC on UDP too: maxFlows ${listener.quic.maxFlows}, maxFlowsPerClient ${listener.quic.maxFlowsPerClient || 'off'}, maxHelloBytes ${listener.quic.maxHelloBytes}, flow idleTimeout ${formatDuration(quicIdleTimeout(listener))}`,
      ]
    : [];
  const noRoute = listener.protocol === 'http' ? '404 Not Found' : 'unrecognized_name alert';
  return [
    `listener "${listener.name}" on ${formatAddress(listener.listen.host, listener.listen.port)}${listener.protocol === 'http' ? ' (plain HTTP)' : ''}`,
    `    ${settings.join(', ')}`,
    ...quic,
    ...listener.routes.flatMap((route) => describeRoute(route.hostnames.join(', '), route)),
    ...(listener.defaultRoute ? describeRoute('default', listener.defaultRoute) : [`    default -> (none: ${noRoute})`]),
  ];
}

/** What `check` prints: the listeners and routes a config would run, as a human reads them. */
export function describeConfig(config: ProxyConfig): string {
  const admin = config.admin
    ? [`admin endpoint on ${formatAddress(config.admin.listen.host, config.admin.listen.port)}${config.admin.allowRemote ? ' (remote access allowed)' : ''}`]
    : [];
  const workers = config.workers === 1 ? [] : [`workers: ${config.workers === 'auto' ? 'auto (one per CPU)' : config.workers}`];
  const resolvers = config.resolvers.length > 0 ? [`backend names resolved by ${config.resolvers.join(', ')} (answers kept for their TTL)`] : [];
  return [...workers, ...config.listeners.flatMap(describeListener), ...resolvers, ...admin].join('\n');
}
