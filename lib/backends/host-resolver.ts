import dns from 'node:dns';
import { type DnsCacheOptions, DnsCache, type DnsQuery } from './dns-cache.js';
import type { HostLookup, LookupCallback } from './dial.js';

/**
 * How long the system resolver's answers are kept: getaddrinfo does not say
 * a TTL, so a short fixed one. Long enough that a busy route does not ask
 * the resolver once per connection (each lookup takes one of libuv's four
 * threads), short enough that a changed record is followed within seconds.
 */
export const SYSTEM_ANSWER_TTL_SECONDS = 5;

/** Per try, and tries per server: the dial's connectTimeout bounds a connection's wait anyway. */
const RESOLVER_OPTIONS = { timeout: 2_000, tries: 2 };

/** The system resolver (getaddrinfo: /etc/hosts, nsswitch, search domains), in its own order. */
function systemQuery(): DnsQuery {
  return (name, callback) => {
    dns.lookup(name, { all: true, verbatim: true }, (error, addresses) => {
      if (error) callback(error.code ?? 'ENOTFOUND', null);
      else callback(null, { addresses: addresses.map((entry) => entry.address), ttl: SYSTEM_ANSWER_TTL_SECONDS });
    });
  };
}

type Records = dns.RecordWithTtl[];

/**
 * A and AAAA queries to `servers`, asked together: IPv4 addresses first,
 * then IPv6, kept for the lowest TTL among them. One family's failure does
 * not matter while the other has addresses; when both fail, "no such name"
 * wins only if both say so (a server failure is kept for less time).
 */
function serverQuery(servers: readonly string[]): DnsQuery {
  const resolver = new dns.Resolver(RESOLVER_OPTIONS);
  resolver.setServers(servers);
  return (name, callback) => {
    const results: Array<{ error: string | null; records: Records }> = [];
    const done = (error: NodeJS.ErrnoException | null, records: Records, index: number): void => {
      results[index] = { error: error ? (error.code ?? 'ESERVFAIL') : null, records: error ? [] : records };
      if (results[0] === undefined || results[1] === undefined) return;
      const records4 = results[0].records;
      const records6 = results[1].records;
      if (records4.length + records6.length > 0) {
        const all = [...records4, ...records6];
        callback(null, { addresses: all.map((record) => record.address), ttl: Math.min(...all.map((record) => record.ttl)) });
        return;
      }
      const errors = [results[0].error ?? 'ENODATA', results[1].error ?? 'ENODATA'];
      const serverError = errors.find((code) => code !== 'ENOTFOUND' && code !== 'ENODATA');
      callback(serverError ?? (errors.includes('ENOTFOUND') ? 'ENOTFOUND' : 'ENODATA'), null);
    };
    resolver.resolve4(name, { ttl: true }, (error, records) => done(error, records, 0));
    resolver.resolve6(name, { ttl: true }, (error, records) => done(error, records, 1));
  };
}

/** RFC 6761 section 6.3: "localhost" and names below it are loopback, and are not sent to DNS servers. */
function isLocalhost(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost');
}

const LOOPBACK: readonly string[] = ['127.0.0.1', '::1'];

function answerLoopback(callback: LookupCallback): void {
  callback(null, LOOPBACK);
}

/**
 * Resolves backend names for dials and health checks, through a `DnsCache`:
 * - without `resolvers` (the default) the system resolver (getaddrinfo, so
 *   /etc/hosts and search domains work as for any program), its answers kept
 *   `SYSTEM_ANSWER_TTL_SECONDS`;
 * - with `resolvers`, A and AAAA queries to those servers, answers kept for
 *   their TTL; /etc/hosts is not read (as nginx's `resolver`), but
 *   "localhost" stays loopback.
 * Kept across reloads; a reload that changes the servers starts an empty cache.
 */
export class HostResolver implements HostLookup {
  private servers: string | null = null;
  private cache: DnsCache;
  private readonly cacheOptions: Omit<DnsCacheOptions, 'query'>;

  /** `cacheOptions`: the cache's bounds and clock (tests). */
  constructor(servers: readonly string[] = [], cacheOptions: Omit<DnsCacheOptions, 'query'> = {}) {
    this.cacheOptions = cacheOptions;
    this.cache = this.newCache(servers);
  }

  /** Sends later lookups to `servers` (empty: the system resolver); a change starts an empty cache. */
  useServers(servers: readonly string[]): void {
    if (servers.join() !== this.servers) this.cache = this.newCache(servers);
  }

  lookup(name: string, callback: LookupCallback): void {
    if (this.servers !== '' && isLocalhost(name)) process.nextTick(answerLoopback, callback);
    else this.cache.lookup(name, callback);
  }

  private newCache(servers: readonly string[]): DnsCache {
    this.servers = servers.join();
    return new DnsCache({ ...this.cacheOptions, query: servers.length > 0 ? serverQuery(servers) : systemQuery() });
  }
}
