import type { BackendConfig, RouteConfig } from '../config/types.js';
import { formatAddress, type HostTemplatePart, isHostTemplate, parseHostTemplate } from '../config/values.js';
import { expandHostTemplate, wildcardLabels } from '../routing/backend-names.js';
import type { BackendRegistry, BackendState } from './health.js';
import { BackendPool } from './pool.js';

/** Pools kept per templated route; past this the least recently used goes (and its backends' passive health with it). */
const MAX_POOLS = 1024;

/**
 * The pools of a route with templated backends, one per set of names its
 * connections fill in: a connection for "app.example.com" on `*.example.com`
 * with `{1}.internal:8443` gets the pool of "app.internal:8443", balanced
 * and failed over like any route's, with passive health per name. Names
 * come from clients, so pools are kept in a bounded least-recently-used map;
 * a name the config also lists shares that backend's state.
 */
export class TemplatedPools {
  private readonly route: RouteConfig;
  private readonly registry: BackendRegistry;
  /** Each backend's template parts, or null for a backend named as is. */
  private readonly templates: ReadonlyArray<HostTemplatePart[] | null>;
  /** Map order is use order: the first key is the least recently used. */
  private readonly pools = new Map<string, BackendPool>();

  constructor(route: RouteConfig, registry: BackendRegistry) {
    this.route = route;
    this.registry = registry;
    this.templates = route.backends.map((backend) => (isHostTemplate(backend.host) ? parseHostTemplate(backend.host) : null));
  }

  /**
   * The pool for a connection to `serverName`, matched by `pattern`; null
   * when the name cannot fill the templates (a `{2}` where `*` matched one
   * label, or a label that is no DNS label): such a connection must be
   * refused, never dialled.
   */
  poolFor(serverName: string | null, pattern: string | null): BackendPool | null {
    if (serverName === null || pattern === null) return null;
    const labels = wildcardLabels(serverName, pattern);
    const hosts: string[] = [];
    for (const [index, backend] of this.route.backends.entries()) {
      const parts = this.templates[index];
      const host = parts ? expandHostTemplate(parts, serverName, labels) : backend.host;
      if (host === null) return null;
      hosts.push(host);
    }
    const key = hosts.join(' ');
    let pool = this.pools.get(key);
    if (pool !== undefined) {
      this.pools.delete(key);
    } else {
      pool = this.build(hosts);
      if (this.pools.size >= MAX_POOLS) this.pools.delete(this.pools.keys().next().value!);
    }
    this.pools.set(key, pool);
    return pool;
  }

  private build(hosts: readonly string[]): BackendPool {
    const templateOf = new Map<string, string>();
    const backends = this.route.backends.map((backend, index): BackendConfig => {
      if (this.templates[index] === null) return backend;
      const host = hosts[index]!;
      const address = formatAddress(host, backend.port);
      templateOf.set(address, backend.address);
      return { ...backend, host, address };
    });
    const states = {
      get: (address: string): BackendState => {
        const template = templateOf.get(address);
        return template === undefined ? this.registry.get(address) : this.registry.stateFor(address, template);
      },
    };
    return new BackendPool({ ...this.route, backends }, states);
  }
}
