import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { loadConfigFile } from '../config/loader.js';
import type { ProxyConfig } from '../config/types.js';
import { parseAlpnProtocol } from '../config/values.js';
import { ConfigError, isOwnError, ValueError } from '../errors.js';
import { adminBaseUrl, fetchBackendHealth, fetchRunningConfig } from './admin-client.js';
import type { AccessVerdict, Candidate, RouteExplanation, RouteQuery, RouteTargetSummary } from '../routing/explain.js';
import { explainRoute } from '../routing/explain.js';

/** Health of a backend as the running proxy reports it; 'unknown': the running config has no such backend. */
export type BackendHealth = 'up' | 'down' | 'unknown';

/** What `route` prints with `--json`: the question, then one explanation per listener (backends with `health` when `--admin` gave it). */
export interface RouteReport {
  query: RouteQuery;
  listeners: Array<RouteExplanation & { health: Record<string, BackendHealth> | null }>;
}

/**
 * The HOSTNAME argument as a client would send it: lower-case, without a
 * trailing dot, Unicode in its punycode form; '' stands for a client that
 * sends no server name.
 */
export function normalizeQueryName(input: string): string | null {
  const trimmed = input.trim().replace(/\.$/, '');
  if (trimmed === '') return null;
  const ascii = /^[\x21-\x7e]*$/.test(trimmed) ? trimmed.toLowerCase() : domainToASCII(trimmed);
  if (ascii === '' || ascii.includes('*')) throw new ValueError(`"${input}" is not a server name a client can send`);
  return ascii;
}

/** `--alpn h2,http/1.1` (repeatable) → the protocols, checked as the config checks them. */
export function parseAlpnList(values: readonly string[]): string[] {
  return values.flatMap((value) => value.split(',')).map((protocol) => parseAlpnProtocol(protocol.trim()));
}

/** Explains `query` on every listener of `config`, or on the one named (`ValueError` when there is none by that name). */
export function routeReport(config: ProxyConfig, query: RouteQuery, listenerName: string | null, health: Map<string, boolean> | null): RouteReport {
  const listeners = listenerName === null ? config.listeners : config.listeners.filter((listener) => listener.name === listenerName);
  if (listeners.length === 0) {
    const names = config.listeners.map((listener) => `"${listener.name}"`).join(', ');
    throw new ValueError(listenerName === null ? 'the config has no listeners' : `no listener "${listenerName}" (the config has ${names})`);
  }
  return {
    query,
    listeners: listeners.map((listener) => {
      const explanation = explainRoute(listener, query);
      const addresses = [...(explanation.target?.backends.map((backend) => backend.address) ?? []), ...(explanation.target?.acmeChallenge ?? [])];
      const healthOf = (address: string): BackendHealth => {
        const up = health?.get(address);
        return up === undefined ? 'unknown' : up ? 'up' : 'down';
      };
      return { ...explanation, health: health === null ? null : Object.fromEntries(addresses.map((address) => [address, healthOf(address)])) };
    }),
  };
}

/** Exit status of `route`: 0 when some listener would serve the connection from a route, 1 when none would. */
export function routeExitCode(report: RouteReport): number {
  return report.listeners.some((listener) => listener.result === 'routed') ? 0 : 1;
}

function candidateLabel(candidate: Candidate): string {
  if (candidate.route === null) return 'default';
  return candidate.alpn.length > 0 ? `${candidate.pattern} [alpn ${candidate.alpn.join(', ')}]` : candidate.pattern;
}

function ruleLine(explanation: RouteExplanation): string {
  const winner = explanation.candidates[0]!;
  const byAlpn = winner.alpn.length > 0 ? `; limited to ALPN ${winner.alpn.join(', ')}, which the client offers` : '';
  if (explanation.rule === 'exact') return `exact name${byAlpn}`;
  if (explanation.rule === 'wildcard') return `longest matching wildcard${byAlpn}`;
  return explanation.serverName === null ? 'default route: the client sent no server name' : 'default route: no hostname of a route matches';
}

function listsText(verdict: AccessVerdict & { lists: true }): string {
  return [verdict.allow.length > 0 ? `allow ${verdict.allow.join(' ')}` : '', verdict.deny.length > 0 ? `deny ${verdict.deny.join(' ')}` : '']
    .filter(Boolean)
    .join(' ');
}

function accessLine(explanation: RouteExplanation): string {
  const parts: string[] = [];
  for (const [where, verdict] of [
    ['listener', explanation.listenerAccess],
    ['route', explanation.routeAccess],
  ] as const) {
    if (!verdict.lists) continue;
    const client = explanation.client ?? 'the client';
    const decision = verdict.allowed === null ? 'depends on the client address (give --client)' : `${client} ${verdict.allowed ? 'allowed' : 'refused'}`;
    parts.push(`${where} ${listsText(verdict)}: ${decision}`);
  }
  return parts.length === 0 ? 'any client (no allow/deny lists)' : parts.join('; ');
}

function targetText(target: RouteTargetSummary): string {
  if (target.kind === 'redirect') return `redirect to https${target.redirectPort === 443 ? '' : ` port ${target.redirectPort}`}`;
  if (target.kind === 'passthrough') return 'passthrough (TLS is not decrypted)';
  const certificates = target.certificates === 'internal' ? 'a certificate from the local CA' : `${(target.certificates as string[]).join(', ')}`;
  return `terminate with ${certificates}, then ${target.backendTls ? 'TLS' : 'plain TCP'} to the backends`;
}

function backendLines(report: RouteReport['listeners'][number], target: RouteTargetSummary): string[] {
  const health = (address: string): string =>
    report.health === null ? '' : `  ${report.health[address] === 'unknown' ? 'unknown (not in the running config)' : report.health[address]}`;
  const width = Math.max(0, ...target.backends.map((backend) => backend.address.length), ...target.acmeChallenge.map((address) => address.length));
  const lines = target.backends.map(
    (backend) =>
      `${backend.address.padEnd(width)}  weight ${backend.weight}${backend.proxyProtocol ? `  PROXY ${backend.proxyProtocol}` : ''}${health(backend.address)}`,
  );
  const out = lines.length === 0 ? [] : [`  backends: ${target.balance}`, ...lines.map((line) => `            ${line}`)];
  if (target.acmeChallenge.length > 0) {
    out.push(`  acmeChallenge: ${target.acmeChallenge.map((address) => `${address}${health(address)}`).join(', ')}`);
  }
  return out;
}

function renderListener(report: RouteReport['listeners'][number]): string[] {
  const lines = [`listener "${report.listener}" on ${report.listen} (${report.protocol === 'http' ? 'plain HTTP' : 'TLS'})`];
  const winner = report.candidates[0];
  if (winner === undefined) {
    lines.push(`  route:    none: ${report.serverName === null ? 'no server name' : 'no hostname of a route matches'}, and there is no default route`);
  } else {
    lines.push(`  route:    ${candidateLabel(winner)}`, `  rule:     ${ruleLine(report)}`);
    if (report.candidates.length > 1) lines.push(`  outranks: ${report.candidates.slice(1).map(candidateLabel).join(', ')}`);
  }
  for (const skipped of report.skippedForAlpn) lines.push(`  skipped:  ${candidateLabel(skipped)}: the client offers none of its ALPN protocols`);
  lines.push(`  access:   ${accessLine(report)}`);
  if (report.result !== 'routed') {
    lines.push(`  result:   refused (${report.result}): ${report.answer}`);
    return lines;
  }
  const target = report.target!;
  lines.push(`  result:   ${targetText(target)}`, ...backendLines(report, target));
  return lines;
}

/** What `route` prints: one block per listener. */
export function renderRouteReport(report: RouteReport): string {
  const { serverName, alpn, client } = report.query;
  const asked = [serverName ?? '(no server name)', alpn.length > 0 ? `ALPN ${alpn.join(', ')}` : '', client ? `client ${client}` : '']
    .filter(Boolean)
    .join(', ');
  return [`route for ${asked}`, ...report.listeners.flatMap((listener) => ['', ...renderListener(listener)])].join('\n');
}

export interface RouteCommandOptions {
  config?: string;
  alpn: string[];
  client?: string;
  listener?: string;
  admin?: string;
  json: boolean;
}

/** Where output goes: lines for stdout, and the one line of an error on stderr. */
export interface CommandOutput {
  print(text: string): void;
  fail(line: string): void;
}

/**
 * `route`: explains HOSTNAME on the config file (or, with only `--admin`, on
 * the running config), with live backend health when `--admin` is given.
 * Resolves with the exit status: 0 routed, 1 not routed, 2 usage or config error.
 */
export async function runRouteCommand(hostname: string, options: RouteCommandOptions, output: CommandOutput): Promise<number> {
  try {
    if (options.config === undefined && options.admin === undefined) throw new ValueError('give --config FILE, --admin URL, or both');
    if (options.client !== undefined && isIP(options.client) === 0) throw new ValueError(`--client ${options.client}: not an IP address`);
    const query: RouteQuery = { serverName: normalizeQueryName(hostname), alpn: parseAlpnList(options.alpn), client: options.client ?? null };
    const admin = options.admin === undefined ? null : adminBaseUrl(options.admin);
    const config = options.config === undefined ? (await fetchRunningConfig(admin!)).config : (await loadConfigFile(options.config)).config;
    const health = admin === null ? null : await fetchBackendHealth(admin);
    const report = routeReport(config, query, options.listener ?? null, health);
    output.print(options.json ? JSON.stringify(report, null, 2) : renderRouteReport(report));
    return routeExitCode(report);
  } catch (error) {
    if (!isOwnError(error)) throw error;
    output.fail(error instanceof ConfigError ? error.message : `sni-passthrough route: ${error.message}`);
    return 2;
  }
}
