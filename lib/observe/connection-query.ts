import { AdminRequestError } from '../errors.js';
import type { ConnectionSnapshot } from '../pipeline/record.js';

/** Which open connections an admin request is about; every field given must match. */
export interface ConnectionFilter {
  id?: number;
  listener?: string;
  /** An exact server name, or `*.suffix` for every name under it (as route patterns read). */
  sni?: string;
  backend?: string;
  /** The route pattern that matched, as in the access log ("default" for the default route). */
  route?: string;
}

export interface ConnectionQuery {
  filter: ConnectionFilter;
  /** Connections per page. */
  limit: number;
  /** The cursor: only connections with a greater id (0: from the first). */
  after: number;
}

/** One page of `GET /connections`. */
export interface ConnectionPage {
  /** Open connections matching the filter, over all pages. */
  total: number;
  limit: number;
  /** This page, oldest first (by id). */
  connections: ConnectionSnapshot[];
  /** The `after` value for the next page; null on the last. */
  next: number | null;
  /** Connections matching the filter by listener and route (all pages; by listener, then route), for `status`. */
  routes: Array<{ listener: string; route: string | null; open: number }>;
}

export const DEFAULT_PAGE_SIZE = 100;
/** A page is built and serialized in one turn of the event loop: it stays small whatever the number of connections. */
export const MAX_PAGE_SIZE = 1000;
/** An operator's reason goes into every closed connection's log line: a sentence, not a document. */
export const MAX_REASON_LENGTH = 200;

const FILTER_KEYS = ['id', 'listener', 'sni', 'backend', 'route'] as const;

/** A non-negative integer parameter, or an error naming it. */
function integer(name: string, text: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d{1,16}$/.test(text) || Number(text) > max) throw new AdminRequestError(`${name} must be an integer from 0 to ${max}, got "${text}"`);
  return Number(text);
}

/**
 * Reads `params` strictly: a parameter not in `allowed`, or one given twice,
 * is an error rather than ignored, so a mistyped filter never widens what a
 * close request closes.
 */
function readParams(params: URLSearchParams, allowed: readonly string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const [name, value] of params) {
    if (!allowed.includes(name)) throw new AdminRequestError(`unknown parameter "${name}" (known: ${allowed.join(', ')})`);
    if (values.has(name)) throw new AdminRequestError(`parameter "${name}" given more than once`);
    values.set(name, value);
  }
  return values;
}

function filterOf(values: Map<string, string>): ConnectionFilter {
  const filter: ConnectionFilter = {};
  const id = values.get('id');
  if (id !== undefined) filter.id = integer('id', id);
  for (const key of ['listener', 'backend', 'route'] as const) {
    const value = values.get(key);
    if (value !== undefined) filter[key] = value;
  }
  const sni = values.get('sni');
  // Server names are compared as the ClientHello parser returns them: lower case, no trailing dot.
  if (sni !== undefined) filter.sni = sni.toLowerCase().replace(/\.$/, '');
  return filter;
}

/** `GET /connections?listener=&sni=&backend=&route=&id=&limit=&after=`. Throws `AdminRequestError`. */
export function parseConnectionQuery(params: URLSearchParams): ConnectionQuery {
  const values = readParams(params, [...FILTER_KEYS, 'limit', 'after']);
  const limit = values.get('limit');
  const after = values.get('after');
  return {
    filter: filterOf(values),
    limit: limit === undefined ? DEFAULT_PAGE_SIZE : integer('limit', limit, MAX_PAGE_SIZE),
    after: after === undefined ? 0 : integer('after', after),
  };
}

/**
 * `POST /connections/close?listener=&sni=&backend=&route=&id=&reason=`: at
 * least one filter (closing everything takes a restart, not a typo) and a
 * reason. Throws `AdminRequestError`.
 */
export function parseCloseRequest(params: URLSearchParams): { filter: ConnectionFilter; reason: string } {
  const values = readParams(params, [...FILTER_KEYS, 'reason']);
  const reason = values.get('reason')?.trim() ?? '';
  if (reason === '') throw new AdminRequestError('a reason is required (?reason=...): it is written to the log line of every connection closed');
  if (reason.length > MAX_REASON_LENGTH) throw new AdminRequestError(`reason is longer than ${MAX_REASON_LENGTH} characters`);
  const filter = filterOf(values);
  if (Object.keys(filter).length === 0) throw new AdminRequestError(`give at least one filter (${FILTER_KEYS.join(', ')})`);
  return { filter, reason };
}

function sniMatches(pattern: string, sni: string | null): boolean {
  if (sni === null) return false;
  if (!pattern.startsWith('*.')) return sni === pattern;
  // As a wildcard route reads it: at least one more label, never the suffix itself.
  return sni.length > pattern.length - 1 && sni.endsWith(pattern.slice(1));
}

export function matchesFilter(connection: ConnectionSnapshot, filter: ConnectionFilter): boolean {
  return (
    (filter.id === undefined || connection.id === filter.id) &&
    (filter.listener === undefined || connection.listener === filter.listener) &&
    (filter.backend === undefined || connection.backend === filter.backend) &&
    (filter.route === undefined || connection.route === filter.route) &&
    (filter.sni === undefined || sniMatches(filter.sni, connection.sni))
  );
}

/** The page `query` asks for from the connections that match its filter (`matching`, in any order). */
export function connectionPage(matching: readonly ConnectionSnapshot[], { limit, after }: ConnectionQuery): ConnectionPage {
  const counts = new Map<string, { listener: string; route: string | null; open: number }>();
  const later: ConnectionSnapshot[] = [];
  for (const connection of matching) {
    const key = `${connection.listener}\n${connection.route ?? ''}`;
    const count = counts.get(key);
    if (count) count.open++;
    else counts.set(key, { listener: connection.listener, route: connection.route, open: 1 });
    if (connection.id > after) later.push(connection);
  }
  later.sort((a, b) => a.id - b.id);
  const connections = later.slice(0, limit);
  const last = connections.at(-1);
  return {
    total: matching.length,
    limit,
    connections,
    next: later.length > limit && last !== undefined ? last.id : null,
    routes: [...counts.values()].sort((a, b) => a.listener.localeCompare(b.listener) || (a.route ?? '').localeCompare(b.route ?? '')),
  };
}
