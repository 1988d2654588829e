// Route lookup at scale: a table of 100,000 routes built with the proxy's own
// route table, and the time of one lookup for names of 2 to 8 labels. A lookup
// probes one map per label, so its time should grow with the labels of the
// name, not with the number of routes.
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { buildRouteTable, matchRoute } from '../lib/routing/route-table.js';

export interface RouteMatchTiming {
  labels: number;
  /** ns per lookup of a name that has an exact route. */
  exactNs: number;
  /** ns per lookup of a name matched by a wildcard two labels from its end (every probe before it misses). */
  wildcardNs: number;
  /** ns per lookup of a name nothing matches (every probe misses, the default route answers). */
  missNs: number;
}

export interface RouteMatchScale {
  routes: number;
  exactRoutes: number;
  wildcardRoutes: number;
  buildMs: number;
  /** Heap the index takes beyond the route objects themselves, per route. */
  tableBytesPerRoute: number | null;
  timings: RouteMatchTiming[];
}

interface BenchRoute {
  hostnames: string[];
  alpn: string[];
}

const MIN_LABELS = 2;
const MAX_LABELS = 8;
const NAMES_PER_KIND = 1024;

/** A name of `labels` labels, unique per `id`, ending in `suffix` (which counts for its own labels). */
function hostname(first: string, labels: number, suffix: string): string {
  const filler = Array.from({ length: labels - 1 - suffix.split('.').length }, (_, index) => `l${index}`);
  return [first, ...filler, suffix].join('.');
}

/** `gc()` when this process can be given it, else null (then the heap figure is left out). */
function collector(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
}

/**
 * ns per call of `lookup`: passes over `names` until `budgetMs` or a count
 * bound, and the median pass, so a GC pause or a preemption does not count.
 */
function timeLookups(names: readonly string[], lookup: (name: string) => unknown, budgetMs: number): number {
  let checksum = 0;
  for (const name of names) checksum += lookup(name) ? 1 : 0; // warm-up
  const passes: number[] = [];
  for (const started = performance.now(); passes.length < 10_000 && performance.now() - started < budgetMs; ) {
    const begin = performance.now();
    for (const name of names) if (lookup(name)) checksum++;
    passes.push(((performance.now() - begin) * 1e6) / names.length);
  }
  if (checksum < 0) throw new Error('unreachable: keeps the lookups from being optimised away');
  return passes.sort((a, b) => a - b)[passes.length >> 1]!;
}

export function measureRouteMatch(routeCount = 100_000, budgetMs = 120): RouteMatchScale {
  const wildcardRoutes = Math.floor(routeCount / 10);
  const exactRoutes = routeCount - wildcardRoutes;
  const routes: BenchRoute[] = [];
  // Exact names spread over 2..8 labels; wildcards "*.wN.test" match anything longer under wN.test.
  for (let index = 0; index < exactRoutes; index++) {
    const labels = MIN_LABELS + (index % (MAX_LABELS - MIN_LABELS + 1));
    routes.push({ hostnames: [hostname(`n${index}`, labels, 'test')], alpn: [] });
  }
  for (let index = 0; index < wildcardRoutes; index++) routes.push({ hostnames: [`*.w${index}.test`], alpn: [] });
  const fallback: BenchRoute = { hostnames: [], alpn: [] };

  const gc = collector();
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const table = buildRouteTable(routes, fallback);
  const buildMs = performance.now() - started;
  gc?.();
  const tableBytesPerRoute = gc ? (process.memoryUsage().heapUsed - heapBefore) / routeCount : null;

  const lookup = (name: string): unknown => matchRoute(table, name);
  const timeAll = (passBudgetMs: number): RouteMatchTiming[] =>
    Array.from({ length: MAX_LABELS - MIN_LABELS + 1 }, (_, offset) => {
      const labels = MIN_LABELS + offset;
      const names = (make: (index: number) => string): string[] => Array.from({ length: NAMES_PER_KIND }, (_, index) => make(index));
      // Exact route number i has MIN_LABELS + i % 7 labels: pick the routes with `labels` labels.
      const exact = names((index) => routes[(index * (MAX_LABELS - MIN_LABELS + 1) + offset) % exactRoutes]!.hostnames[0]!);
      // A wildcard needs one label more than its suffix "wN.test": from 3 labels on.
      const wildcard = labels >= 3 ? names((index) => hostname(`a${index}`, labels, `w${index % wildcardRoutes}.test`)) : null;
      const miss = names((index) => hostname(`m${index}`, labels, 'invalid'));
      return {
        labels,
        exactNs: timeLookups(exact, lookup, passBudgetMs),
        wildcardNs: wildcard ? timeLookups(wildcard, lookup, passBudgetMs) : Number.NaN,
        missNs: timeLookups(miss, lookup, passBudgetMs),
      };
    });
  // A first, shorter run lets the JIT settle and the GC finish with the build; its figures are dropped.
  timeAll(budgetMs / 4);
  gc?.();
  const timings = timeAll(budgetMs);
  return { routes: routeCount, exactRoutes, wildcardRoutes, buildMs, tableBytesPerRoute, timings };
}
