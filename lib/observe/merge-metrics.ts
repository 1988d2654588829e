/** One process's Prometheus text and the `worker` label value its per-process samples get. */
export interface Exposition {
  worker: string;
  text: string;
}

interface MergedFamily {
  header: string[];
  series: Map<string, number>;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** `name{a="b"}` → `name{worker="1",a="b"}`; `name` → `name{worker="1"}`. */
function withWorker(series: string, worker: string): string {
  const brace = series.indexOf('{');
  const label = `worker="${worker}"`;
  if (brace === -1) return `${series}{${label}}`;
  return `${series.slice(0, brace + 1)}${label}${series[brace + 1] === '}' ? '' : ','}${series.slice(brace + 1)}`;
}

/**
 * The primary's and every worker's metrics as one Prometheus text: each
 * family's HELP and TYPE once, and samples of the same series summed
 * (connections, bytes, histogram buckets add up across processes). Families
 * for which `perWorker` is true keep each process's samples apart under a
 * `worker` label instead, where a sum would mean nothing (CPU, memory, a
 * backend one worker skips after failures while another still uses it).
 */
export function mergeExpositions(sources: readonly Exposition[], perWorker: (family: string) => boolean): string {
  const families = new Map<string, MergedFamily>();
  for (const { worker, text } of sources) {
    let family: MergedFamily | null = null;
    let labelled = false;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('#')) {
        const [, kind, name] = line.split(' ', 3);
        if ((kind !== 'HELP' && kind !== 'TYPE') || name === undefined) continue;
        family = families.get(name) ?? null;
        if (family === null) families.set(name, (family = { header: [], series: new Map() }));
        labelled = perWorker(name);
        if (family.header.length < 2 && !family.header.some((seen) => seen.startsWith(`# ${kind} `))) family.header.push(line);
        continue;
      }
      if (family === null) continue;
      const space = line.lastIndexOf(' ');
      const series = labelled ? withWorker(line.slice(0, space), worker) : line.slice(0, space);
      family.series.set(series, (family.series.get(series) ?? 0) + parseValue(line.slice(space + 1)));
    }
  }
  const blocks: string[] = [];
  for (const { header, series } of families.values()) {
    blocks.push([...header, ...[...series].map(([name, value]) => `${name} ${formatValue(value)}`), ''].join('\n'));
  }
  return blocks.join('\n');
}

/** Per process: prom-client's process and Node.js metrics, and whether a backend takes connections (passive health is each worker's own). */
export function isPerWorkerFamily(name: string): boolean {
  return name.startsWith('process_') || name.startsWith('nodejs_') || name === 'sni_passthrough_backend_up';
}
