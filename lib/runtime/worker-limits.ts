import type { ListenerConfig, ProxyConfig } from '../config/types.js';

/** `limit` (0: none) shared by `workers` processes: each enforces its even share, rounded up so the shares add up to at least the limit. */
export function shareOf(limit: number, workers: number): number {
  return limit === 0 ? 0 : Math.ceil(limit / workers);
}

/**
 * The config one of `workers` worker processes runs: each listener's
 * `maxConnections` and `maxConnectionsPerClient` divided evenly. Workers
 * share nothing per connection (counting across them would cost a message
 * per connection), and the kernel spreads connections evenly, so even shares
 * keep the totals; the README says what that means for a single client.
 */
export function workerConfig(config: ProxyConfig, workers: number): ProxyConfig {
  if (workers === 1) return config;
  const divide = (listener: ListenerConfig): ListenerConfig => ({
    ...listener,
    maxConnections: shareOf(listener.maxConnections, workers),
    maxConnectionsPerClient: shareOf(listener.maxConnectionsPerClient, workers),
  });
  return { ...config, listeners: config.listeners.map(divide) };
}
