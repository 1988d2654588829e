import { type BackendSummary, type ConfigDiff, diffConfigs, type FieldChange, isEmptyDiff, type ListenerChange, summarizeDiff } from '../config/diff.js';
import { loadConfigFile } from '../config/loader.js';
import type { ProxyConfig } from '../config/types.js';
import { ConfigError, isOwnError, ValueError } from '../errors.js';
import { adminBaseUrl, fetchRunningConfig } from './admin-client.js';
import type { CommandOutput } from './route.js';

const backendText = (backend: BackendSummary): string => `${backend.address} (weight ${backend.weight})`;
const fieldText = (change: FieldChange): string => `${change.field}: ${change.from} -> ${change.to}`;

function listenerLines(change: ListenerChange): string[] {
  const lines = [`~ listener "${change.name}"`];
  const add = (line: string): number => lines.push(`    ${line}`);
  if (change.renamedFrom !== null) add(`renamed from "${change.renamedFrom}" (same address: the socket is kept)`);
  if (change.rebound !== null) add(`rebound: ${change.rebound.from} -> ${change.rebound.to}`);
  for (const setting of change.settings) add(fieldText(setting));
  for (const route of change.routes.added) add(`+ route ${route.route} -> ${route.backends.map(backendText).join(', ') || 'no backends'}`);
  for (const route of change.routes.removed) add(`- route ${route.route}`);
  for (const { hostname, route } of change.hostnames.added) add(`+ hostname ${hostname} in route ${route}`);
  for (const { hostname, route } of change.hostnames.removed) add(`- hostname ${hostname} from route ${route}`);
  for (const { hostname, from, to } of change.hostnames.moved) add(`~ hostname ${hostname} moved: route ${from} -> route ${to}`);
  for (const route of change.routes.changed) {
    add(`~ route ${route.route}`);
    for (const setting of route.settings) add(`    ${fieldText(setting)}`);
    for (const backend of route.backends.added) add(`    + backend ${backendText(backend)}`);
    for (const backend of route.backends.removed) add(`    - backend ${backendText(backend)}`);
    for (const backend of route.backends.changed) add(`    ~ backend ${backend.address}: ${backend.changes.map(fieldText).join(', ')}`);
  }
  return lines;
}

/**
 * What `diff` prints: `from` and `to` name the two sides; then one line per
 * change (+ added, - removed, ~ changed), what happens to open connections
 * and closing listeners, and the one-line summary the reload log also has.
 */
export function renderDiff(diff: ConfigDiff, from: string, to: string): string {
  const lines = [`--- ${from}`, `+++ ${to}`];
  if (isEmptyDiff(diff)) return [...lines, summarizeDiff(diff)].join('\n');
  for (const listener of diff.listeners.added) lines.push(`+ listener "${listener.name}" on ${listener.listen} (${listener.protocol})`);
  for (const listener of diff.listeners.removed) lines.push(`- listener "${listener.name}" on ${listener.listen} (${listener.protocol})`);
  for (const change of diff.listeners.changed) lines.push(...listenerLines(change));
  for (const setting of diff.settings) lines.push(`~ ${fieldText(setting)}`);
  lines.push('', 'open connections: kept; each goes on with the route and backend it was routed to (changes apply to new connections)');
  for (const { listener, listen } of diff.closing) {
    lines.push(`closing: listener "${listener}" on ${listen} stops accepting; its open connections go on until they end`);
  }
  lines.push(`summary: ${summarizeDiff(diff)}`);
  return lines.join('\n');
}

export interface DiffCommandOptions {
  config: string;
  against?: string;
  admin?: string;
  json: boolean;
}

/**
 * `diff`: what applying `--config` would change against `--against` or the
 * running generation (`--admin`). Resolves with the exit status, as
 * diff(1): 0 no differences, 1 differences, 2 trouble (usage, config, admin).
 */
export async function runDiffCommand(options: DiffCommandOptions, output: CommandOutput): Promise<number> {
  try {
    if ((options.against === undefined) === (options.admin === undefined)) throw new ValueError('give either --against OLD.yaml or --admin URL');
    const next = await loadConfigFile(options.config);
    let current: ProxyConfig;
    let from: string;
    if (options.against !== undefined) {
      current = (await loadConfigFile(options.against)).config;
      from = options.against;
    } else {
      const base = adminBaseUrl(options.admin!);
      const running = await fetchRunningConfig(base);
      current = running.config;
      from = `running generation ${running.generation} (${base.origin})`;
    }
    const diff = diffConfigs(current, next.config);
    output.print(options.json ? JSON.stringify(diff, null, 2) : renderDiff(diff, from, options.config));
    return isEmptyDiff(diff) ? 0 : 1;
  } catch (error) {
    if (!isOwnError(error)) throw error;
    output.fail(error instanceof ConfigError ? error.message : `sni-passthrough diff: ${error.message}`);
    return 2;
  }
}
