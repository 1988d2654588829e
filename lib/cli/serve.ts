import { parseBackendAddress, parseListenAddress, normalizeHostnamePattern } from '../config/values.js';
import { SniPassthroughError } from '../errors.js';

/** A `serve` flag that does not say what it must (`--route` without "=", a bad name or address): one line naming the flag. */
export class ServeFlagError extends SniPassthroughError {
  override readonly name = 'ServeFlagError';
  readonly code = 'SNIP_SERVE_FLAG';
}

export interface ServeFlags {
  /** Where HTTPS is served: "host:port". */
  listen: string;
  /** "NAME=HOST:PORT[,HOST:PORT...]": a hostname (or "*.suffix") and its backends. */
  route: string[];
  /** "internal": terminate TLS with certificates from the local CA, backends get plain HTTP. */
  terminate?: string;
  /** Also listen for plain HTTP here and redirect it to HTTPS. */
  http?: string;
}

/** The config a set of `serve` flags means: the same document a YAML file would hold, checked by the same loader. */
export interface ServeConfig {
  listeners: Array<Record<string, unknown>>;
}

function flagError(flag: string, value: string, problem: string): ServeFlagError {
  return new ServeFlagError(`${flag} ${JSON.stringify(value)}: ${problem}`);
}

/** Runs a config value parser on a flag's value, naming the flag in its error. */
function checked<T>(flag: string, value: string, parse: (input: string) => T): T {
  try {
    return parse(value);
  } catch (error) {
    throw flagError(flag, value, (error as Error).message);
  }
}

/**
 * The config `serve`'s flags stand for: an HTTPS listener with one route per
 * `--route` (passed through, or terminated with the local CA's certificates),
 * and with `--http` a plain-HTTP listener redirecting every name to it.
 * Throws `ServeFlagError`; the result still goes through the config loader.
 */
export function serveConfig(flags: ServeFlags): ServeConfig {
  if (flags.route.length === 0) throw new ServeFlagError('serve needs at least one --route NAME=HOST:PORT, e.g. --route app.localhost=127.0.0.1:5173');
  if (flags.terminate !== undefined && flags.terminate !== 'internal') {
    throw flagError('--terminate', flags.terminate, 'the one value is "internal" (certificates from the local CA; the backends get plain HTTP)');
  }
  const listen = checked('--listen', flags.listen, parseListenAddress);
  const seen = new Set<string>();
  const routes = flags.route.map((flag) => {
    const equals = flag.indexOf('=');
    if (equals < 1) throw flagError('--route', flag, 'expected NAME=HOST:PORT, e.g. app.localhost=127.0.0.1:5173');
    const hostname = checked('--route', flag, () => normalizeHostnamePattern(flag.slice(0, equals)));
    if (seen.has(hostname)) throw flagError('--route', flag, `${hostname} is routed twice`);
    seen.add(hostname);
    const backends = flag
      .slice(equals + 1)
      .split(',')
      .map((backend) => {
        checked('--route', flag, () => parseBackendAddress(backend));
        return backend;
      });
    return { hostnames: [hostname], backends, ...(flags.terminate ? { tls: 'internal' } : {}) };
  });
  const https = { name: 'https', listen: flags.listen, routes };
  if (flags.http === undefined) return { listeners: [https] };
  checked('--http', flags.http, parseListenAddress);
  if (listen.port === 0) throw flagError('--listen', flags.listen, 'with --http, give a fixed port: the redirect must name it');
  const redirect = { hostnames: [...seen], redirect: 'https', ...(listen.port === 443 ? {} : { redirectPort: listen.port }) };
  return { listeners: [https, { name: 'http', listen: flags.http, protocol: 'http', routes: [redirect] }] };
}

/** What `serve` tells its user once listening: the URL of each route, where it goes, and what to do for trust. */
export function serveBanner(flags: ServeFlags, config: ServeConfig, bound: Record<string, string>, stateDirectory: string): string {
  const port = (name: string): string => bound[name]!.slice(bound[name]!.lastIndexOf(':') + 1);
  const lines = ['sni-passthrough is serving:'];
  for (const route of config.listeners[0]!.routes as Array<{ hostnames: string[]; backends: string[] }>) {
    const name = route.hostnames[0]!;
    const example = name.startsWith('*.') ? `app${name.slice(1)}` : name;
    lines.push(`  https://${example}:${port('https')}/  ->  ${route.backends.join(', ')}${flags.terminate ? ' (plain HTTP)' : ' (TLS, passed through)'}`);
  }
  if (bound.http) lines.push(`  http://<name>:${port('http')}/  ->  redirected to https`);
  if (flags.route.some((route) => route.split('=')[0]!.endsWith('localhost'))) {
    lines.push('Names under .localhost resolve to this machine in browsers and curl without /etc/hosts (RFC 6761).');
  }
  if (flags.terminate) {
    lines.push(`Certificates come from the local CA in ${stateDirectory}: run \`sni-passthrough trust\` once so browsers and curl trust it.`);
  }
  return `${lines.join('\n')}\n`;
}
