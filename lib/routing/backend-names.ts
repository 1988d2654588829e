import { type HostTemplatePart, isDnsName } from '../config/values.js';

/**
 * Backend names made from what a client asked for (templated backends):
 * only from the name a route matched, and only when the result is a plain
 * DNS name. Pure: the connection's name and route pattern in, a name out.
 */

/**
 * The labels a wildcard pattern's `*` matched, from the left:
 * "a.b.example.com" by "*.example.com" → ["a", "b"]. Empty for an exact
 * pattern (or a name the pattern does not match).
 */
export function wildcardLabels(serverName: string, pattern: string): string[] {
  if (!pattern.startsWith('*.')) return [];
  const suffix = pattern.slice(1);
  if (serverName.length <= suffix.length || !serverName.endsWith(suffix)) return [];
  return serverName.slice(0, serverName.length - suffix.length).split('.');
}

/**
 * A last label that the system resolver reads as (part of) an IPv4 address:
 * getaddrinfo falls back to inet_aton, which takes "0x7f.1" or "0x7f000001"
 * for 127.0.0.1. Dialled as a name, it would reach an address no route names.
 */
const numericLabel = /^(0x[0-9a-f]*|[0-9]+)$/;

/**
 * A template's parts filled in: `{sni}` (0) with `serverName`, `{N}` with the
 * Nth of `labels`. Null when a placeholder has no label (a `{2}` where `*`
 * matched one), or when the name or the result is not a plain DNS name:
 * labels from a ClientHello may hold any printable ASCII (":", "/", "%",
 * "@"), and none of that may reach a resolver or a dial.
 */
export function expandHostTemplate(parts: readonly HostTemplatePart[], serverName: string, labels: readonly string[]): string | null {
  // The whole name, not only the labels used: a backend is never chosen for a name no DNS name could be.
  if (!isDnsName(serverName)) return null;
  let host = '';
  for (const part of parts) {
    if (typeof part === 'string') host += part;
    else if (part === 0) host += serverName;
    else {
      const label = labels[part - 1];
      if (label === undefined) return null;
      host += label;
    }
  }
  if (!isDnsName(host)) return null;
  return numericLabel.test(host.slice(host.lastIndexOf('.') + 1)) ? null : host;
}
