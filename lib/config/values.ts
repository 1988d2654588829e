import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import { domainToASCII } from 'node:url';
import { ValueError } from '../errors.js';
import type { ListenAddress, WorkersSetting } from './types.js';

/**
 * Parsers for the scalar values of the config. Each takes what the user wrote
 * and returns the value or throws a `ValueError` whose message can be shown
 * as is after `FILE:LINE:COL:`.
 */

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** Node timers treat longer delays as 1 ms; no timeout here needs more than 24 days. */
const MAX_DURATION_MS = 2_147_483_647;

function checkDurationRange(milliseconds: number, input: unknown): number {
  if (milliseconds > MAX_DURATION_MS) throw new ValueError(`duration ${JSON.stringify(input)} is too long (at most 596h, about 24 days)`);
  return milliseconds;
}
const durationPart = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/** The most worker processes a config may ask for: far past any machine's cores, low enough to catch a typo. */
export const MAX_WORKERS = 1024;

/** `workers`: "auto" or a whole number from 1 to MAX_WORKERS (also from the command line, where it arrives as text). */
export function parseWorkers(input: unknown): WorkersSetting {
  if (input === 'auto') return 'auto';
  const count = typeof input === 'string' && /^\d+$/.test(input.trim()) ? Number(input.trim()) : input;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_WORKERS) {
    throw new ValueError(`invalid workers ${JSON.stringify(input)}: use "auto" (one per CPU) or a number from 1 to ${MAX_WORKERS}`);
  }
  return count;
}

/** How many processes a `workers` setting means on this machine: `auto` is os.availableParallelism(). */
export function resolveWorkers(setting: WorkersSetting, availableParallelism: number): number {
  return setting === 'auto' ? Math.max(1, availableParallelism) : setting;
}

/** "250ms", "10s", "1m30s", "1h", "0" or a number of milliseconds → milliseconds. */
export function parseDuration(input: unknown): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new ValueError(`invalid duration ${input}: must be a non-negative number of milliseconds`);
    return checkDurationRange(Math.round(input), input);
  }
  if (typeof input !== 'string') throw new ValueError('a duration must be a string like "10s" or a number of milliseconds');
  const text = input.trim();
  if (/^\d+$/.test(text)) return checkDurationRange(Number(text), input);
  let total = 0;
  durationPart.lastIndex = 0;
  while (durationPart.lastIndex < text.length) {
    const start = durationPart.lastIndex;
    const match = durationPart.exec(text);
    if (!match || match.index !== start) {
      throw new ValueError(`invalid duration "${input}": use a number with a unit (ms, s, m, h), e.g. "250ms", "10s", "5m"`);
    }
    total += Number(match[1]) * durationUnits[match[2]!]!;
  }
  if (text.length === 0) throw new ValueError('invalid duration "": use e.g. "10s"');
  return checkDurationRange(Math.round(total), input);
}

/** "1h", "10s", "250ms", or "0": the shortest exact spelling, for `check` output and logs. */
export function formatDuration(milliseconds: number): string {
  if (milliseconds === 0) return '0';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (milliseconds % size === 0) return `${milliseconds / size}${unit}`;
  }
  return `${milliseconds}ms`;
}

function parsePort(text: string, input: string, allowZero: boolean): number {
  if (text === '') throw new ValueError(`missing port in "${input}"`);
  if (!/^\d{1,5}$/.test(text)) throw new ValueError(`invalid port in "${input}"`);
  const port = Number(text);
  if (port > 65535 || (port === 0 && !allowZero)) throw new ValueError(`port ${port} in "${input}" is out of range (${allowZero ? 0 : 1}-65535)`);
  return port;
}

/** A URL such as "https://127.0.0.1:22002/" where "host:port" belongs: its authority is what was meant. */
const urlWithScheme = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i;

/** Splits "host:port" / "[v6]:port" / ":port"; returns host '' when absent. */
function splitHostPort(input: string): { host: string; portText: string } {
  const url = urlWithScheme.exec(input);
  if (url) {
    const example = /:\d+$/.test(url[1]!) ? `, e.g. "${url[1]}"` : '';
    throw new ValueError(`"${input}" is a URL: write host:port without a scheme${example}`);
  }
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close < 0 || input[close + 1] !== ':') throw new ValueError(`invalid address "${input}": expected "[IPv6]:port"`);
    const host = input.slice(1, close);
    if (!isIPv6(host)) throw new ValueError(`invalid IPv6 address "${host}" in "${input}"`);
    return { host, portText: input.slice(close + 2) };
  }
  const colon = input.lastIndexOf(':');
  if (colon < 0) throw new ValueError(`invalid address "${input}": expected "host:port"`);
  const host = input.slice(0, colon);
  if (host.includes(':')) throw new ValueError(`invalid address "${input}": write IPv6 addresses in brackets, e.g. "[::1]:8443"`);
  return { host, portText: input.slice(colon + 1) };
}

const hostnameLabel = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** LDH labels (underscores tolerated); the last label is never all digits, so "10.0.0.300" is a bad address, not a name. */
export function isDnsName(name: string): boolean {
  const labels = name.split('.');
  return name.length > 0 && name.length <= 253 && labels.every((label) => hostnameLabel.test(label)) && !/^\d+$/.test(labels[labels.length - 1]!);
}

/** One spelling per IPv6 address ("0:0::1" → "::1") so equal addresses compare equal. */
function canonicalIPv6(address: string): string {
  return new SocketAddress({ address, family: 'ipv6' }).address;
}

/** Lower-cased host, IPv6 in canonical form; throws for anything that is neither an IP address nor a DNS name. */
function canonicalHost(host: string, input: string, what: string): string {
  const lower = host.toLowerCase();
  if (isIPv4(lower)) return lower;
  if (isIPv6(lower)) return canonicalIPv6(lower);
  if (isDnsName(lower)) return lower;
  throw new ValueError(`invalid ${what} "${host}" in "${input}"`);
}

/** A listen address: "host:port", "[::1]:8443", ":8443", "*:8443" or a bare port (number or string). Port 0 picks a free port. */
export function parseListenAddress(input: unknown): ListenAddress {
  if (typeof input === 'number') {
    if (!Number.isInteger(input)) throw new ValueError(`invalid port ${input}`);
    return { host: null, port: parsePort(String(input), String(input), true) };
  }
  if (typeof input !== 'string') throw new ValueError('a listen address must be a string like "127.0.0.1:8443" or a port number');
  if (/^\d+$/.test(input)) return { host: null, port: parsePort(input, input, true) };
  const { host, portText } = splitHostPort(input);
  const port = parsePort(portText, input, true);
  if (host === '' || host === '*') return { host: null, port };
  return { host: canonicalHost(host, input, 'host'), port };
}

/** "host:port" for an address; IPv6 in brackets, all interfaces as ":port". */
export function formatAddress(host: string | null, port: number): string {
  if (host === null) return `:${port}`;
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A backend address: "host:port" where host is an IPv4 address, an IPv6
 * address in brackets or a DNS name, or a template of a DNS name with
 * placeholders ("{sni}:443", "{1}.internal:8443", see `parseHostTemplate`);
 * the port is always a number.
 */
export function parseBackendAddress(input: unknown): { host: string; port: number } {
  if (typeof input !== 'string') throw new ValueError('a backend address must be a string "host:port"');
  if (/[{}]/.test(input)) return parseBackendTemplate(input);
  const { host, portText } = splitHostPort(input);
  if (host === '') throw new ValueError(`backend "${input}" needs a host, e.g. "127.0.0.1${input}"`);
  const port = parsePort(portText, input, false);
  return { host: canonicalHost(host, input, 'backend host'), port };
}

function parseBackendTemplate(input: string): { host: string; port: number } {
  const colon = input.lastIndexOf(':');
  const brace = input.lastIndexOf('}');
  if (colon < 0) throw new ValueError(`backend template "${input}" needs a port after the name, e.g. "${input}:443"`);
  if (colon < brace) throw new ValueError(`the port of backend template "${input}" must be a number: only the host takes placeholders`);
  const host = input.slice(0, colon).toLowerCase();
  parseHostTemplate(host, input);
  return { host, port: parsePort(input.slice(colon + 1), input, false) };
}

/**
 * One part of a backend host template: literal text, or a placeholder: 0 for
 * `{sni}` (the whole name the client asked for), N for `{N}` (the Nth label,
 * from the left, of those the route's `*` matched).
 */
export type HostTemplatePart = string | number;

/** Placeholders past the labels a DNS name can have (127) could never be filled. */
const MAX_LABEL_PLACEHOLDER = 127;

/** Whether a backend host is a template (has placeholders) rather than a name or address to dial as written. */
export function isHostTemplate(host: string): boolean {
  return host.includes('{');
}

/**
 * A backend host template ("{1}.internal", "{sni}", "app-{1}.{2}.svc") as its
 * parts; throws `ValueError` for an unknown or unclosed placeholder, or for a
 * template that cannot make a DNS name whatever fills it (e.g. "{1}..x").
 * `input` is what the config said, for messages.
 */
export function parseHostTemplate(host: string, input: string = host): HostTemplatePart[] {
  const parts: HostTemplatePart[] = [];
  let sample = '';
  let rest = host;
  while (rest.length > 0) {
    const open = rest.indexOf('{');
    const close = rest.indexOf('}');
    if (close >= 0 && (open < 0 || close < open)) throw new ValueError(`"}" without "{" in backend template "${input}"`);
    if (open < 0) {
      parts.push(rest);
      sample += rest;
      break;
    }
    if (open > 0) {
      parts.push(rest.slice(0, open));
      sample += rest.slice(0, open);
    }
    if (close < 0) throw new ValueError(`unclosed "{" in backend template "${input}"`);
    const name = rest.slice(open + 1, close);
    const label = /^[1-9]\d{0,2}$/.test(name) ? Number(name) : 0;
    if (name !== 'sni' && (label === 0 || label > MAX_LABEL_PLACEHOLDER)) {
      throw new ValueError(
        `unknown placeholder "{${name}}" in backend template "${input}": use {sni} (the name the client asked for) or {1}, {2}, ... (the labels "*" matched)`,
      );
    }
    parts.push(label);
    // Any label fills a placeholder: the template must make a DNS name for the simplest.
    sample += label === 0 ? 'a.a' : 'a';
    rest = rest.slice(close + 1);
  }
  if (!isDnsName(sample))
    throw new ValueError(`backend template "${input}" does not make a DNS name (placeholders fill whole labels or parts of them, e.g. "{1}.internal")`);
  return parts;
}

/**
 * A hostname pattern from a route: an exact name or `*.suffix`. Lower-cased,
 * one trailing dot removed, Unicode converted to its punycode (ASCII) form so
 * it compares equal to what clients put in the SNI.
 */
export function normalizeHostnamePattern(input: unknown): string {
  if (typeof input !== 'string') throw new ValueError('a hostname must be a string');
  const trimmed = input.trim().replace(/\.$/, '');
  if (trimmed === '*') throw new ValueError('"*" is not a hostname: put a catch-all backend under the listener\'s "default"');
  const wildcard = trimmed.startsWith('*.');
  const name = wildcard ? trimmed.slice(2) : trimmed;
  if (name.includes('*')) throw new ValueError(`invalid hostname "${input}": "*" is only allowed as the whole first label, as in "*.example.com"`);
  const ascii = /^[\x21-\x7e]*$/.test(name) ? name.toLowerCase() : domainToASCII(name);
  if (!isDnsName(ascii)) throw new ValueError(`invalid hostname "${input}"`);
  return wildcard ? `*.${ascii}` : ascii;
}

/** A CIDR ("10.0.0.0/8", "2001:db8::/32") or a single address, with its prefix length and IPv6 in canonical form (host bits are kept: they do not change what matches). */
export function parseCidr(input: unknown): string {
  if (typeof input !== 'string') throw new ValueError('an address range must be a string like "10.0.0.0/8" or "::1"');
  const [address = '', prefixText, extra] = input.trim().split('/');
  if (extra !== undefined) throw new ValueError(`invalid address range "${input}"`);
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0;
  if (family === 0) throw new ValueError(`invalid address range "${input}": "${address}" is not an IPv4 or IPv6 address`);
  const maxPrefix = family === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) throw new ValueError(`invalid prefix length in "${input}"`);
  const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
  if (prefix > maxPrefix) throw new ValueError(`prefix length /${prefix} in "${input}" is too long for IPv${family} (max /${maxPrefix})`);
  return `${family === 4 ? address : canonicalIPv6(address)}/${prefix}`;
}

/** An ALPN protocol name as sent on the wire ("h2", "http/1.1", "acme-tls/1"): 1 to 255 printable ASCII bytes. */
export function parseAlpnProtocol(input: unknown): string {
  if (typeof input !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(input)) {
    throw new ValueError(`invalid ALPN protocol ${JSON.stringify(input)}: expected a name like "h2", "http/1.1" or "acme-tls/1"`);
  }
  return input;
}

/**
 * A DNS server for `resolvers`: "IP", "IP:port", "[IPv6]:port" (port 53 when
 * not given), in the "host:port" form node:dns `setServers` takes. A name
 * would need resolving itself, so only addresses.
 */
export function parseResolverAddress(input: unknown): string {
  if (typeof input !== 'string') throw new ValueError('a resolver must be a string "IP" or "IP:port"');
  if (isIPv4(input) || isIPv6(input)) return formatAddress(isIPv6(input) ? canonicalIPv6(input) : input, 53);
  const notAnAddress = new ValueError(`resolver "${input}" must be an IP address (a name would need resolving itself), e.g. "10.0.0.2:53"`);
  if (!input.includes(':')) throw notAnAddress;
  const { host, portText } = splitHostPort(input);
  if (!isIPv4(host) && !isIPv6(host)) throw notAnAddress;
  return formatAddress(isIPv6(host) ? canonicalIPv6(host) : host, parsePort(portText, input, false));
}

/** Whether a listen host is loopback only ("localhost", 127.0.0.0/8, ::1); all interfaces (null) is not. */
export function isLoopbackHost(host: string | null): boolean {
  if (host === null) return false;
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.')) || /^::ffff:127\./.test(host);
}

/**
 * How long a QUIC flow lives without a datagram either way: the listener's
 * `idleTimeout`, or 60 s where that is 0 (never). A QUIC connection's close
 * is encrypted, so silence is the only end the proxy sees; QUIC's own idle
 * timeout (30 s by default in ngtcp2 and Chromium) still applies end to end.
 */
export const DEFAULT_QUIC_IDLE_TIMEOUT = 60_000;

export function quicIdleTimeout(listener: { idleTimeout: number }): number {
  return listener.idleTimeout > 0 ? listener.idleTimeout : DEFAULT_QUIC_IDLE_TIMEOUT;
}
