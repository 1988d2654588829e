import type { BackendConfig, ListenerConfig, ProxyConfig, RouteConfig } from './types.js';
import { formatAddress, formatDuration } from './values.js';

function describeBackends(backends: readonly BackendConfig[]): string {
  return backends.map((backend) => (backend.weight === 1 ? backend.address : `${backend.address} (weight ${backend.weight})`)).join(', ');
}

function describeRoute(label: string, route: RouteConfig): string {
  return `    ${label} -> ${describeBackends(route.backends)}`;
}

function describeListener(listener: ListenerConfig): string[] {
  const timeouts = [
    `clientHelloTimeout ${formatDuration(listener.clientHelloTimeout)}`,
    `connectTimeout ${formatDuration(listener.connectTimeout)}`,
    `idleTimeout ${listener.idleTimeout === 0 ? 'off' : formatDuration(listener.idleTimeout)}`,
    `drainTimeout ${formatDuration(listener.drainTimeout)}`,
  ];
  return [
    `listener "${listener.name}" on ${formatAddress(listener.listen.host, listener.listen.port)}`,
    `    ${timeouts.join(', ')}`,
    ...listener.routes.map((route) => describeRoute(route.hostnames.join(', '), route)),
    listener.defaultRoute ? describeRoute('default', listener.defaultRoute) : '    default -> (none: unrecognized_name alert)',
  ];
}

/** What `check` prints: the listeners and routes a config would run, as a human reads them. */
export function describeConfig(config: ProxyConfig): string {
  return config.listeners.flatMap(describeListener).join('\n');
}
