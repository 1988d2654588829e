import type { BackendConfig, ListenerConfig, ProxyConfig, RouteConfig } from './types.js';
import { formatAddress, formatDuration } from './values.js';

function describeBackend(backend: BackendConfig): string {
  const notes = [backend.weight === 1 ? '' : `weight ${backend.weight}`, backend.proxyProtocol ? `PROXY ${backend.proxyProtocol}` : ''].filter(Boolean);
  return notes.length === 0 ? backend.address : `${backend.address} (${notes.join(', ')})`;
}

function describeRoute(label: string, route: RouteConfig): string[] {
  const alpn = route.alpn.length > 0 ? ` [alpn ${route.alpn.join(', ')}]` : '';
  const options = [
    route.balance,
    route.retries === null ? '' : `retries ${route.retries}`,
    route.maxFails === 0 ? 'passive health off' : `maxFails ${route.maxFails}/${formatDuration(route.failTimeout)}`,
    route.healthCheck ? `health check every ${formatDuration(route.healthCheck.interval)}` : '',
    route.allow.length > 0 ? `allow ${route.allow.join(' ')}` : '',
    route.deny.length > 0 ? `deny ${route.deny.join(' ')}` : '',
  ].filter(Boolean);
  return [`    ${label}${alpn} -> ${route.backends.map(describeBackend).join(', ')}`, `        ${options.join(', ')}`];
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
  return [
    `listener "${listener.name}" on ${formatAddress(listener.listen.host, listener.listen.port)}`,
    `    ${settings.join(', ')}`,
    ...listener.routes.flatMap((route) => describeRoute(route.hostnames.join(', '), route)),
    ...(listener.defaultRoute ? describeRoute('default', listener.defaultRoute) : ['    default -> (none: unrecognized_name alert)']),
  ];
}

/** What `check` prints: the listeners and routes a config would run, as a human reads them. */
export function describeConfig(config: ProxyConfig): string {
  const admin = config.admin
    ? [`admin endpoint on ${formatAddress(config.admin.listen.host, config.admin.listen.port)}${config.admin.allowRemote ? ' (remote access allowed)' : ''}`]
    : [];
  return [...config.listeners.flatMap(describeListener), ...admin].join('\n');
}
