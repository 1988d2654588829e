// A small parser for the Prometheus text exposition format (version 0.0.4),
// enough to read back what the admin endpoint's GET /metrics serves: samples
// with labels, `# TYPE` lines, escaped label values, NaN and ±Inf.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** Metric family name → type from its `# TYPE` line. */
  types: Map<string, string>;
}

/** As Prometheus reads it (Go's ParseFloat): NaN and Inf in any letter case (prom-client writes "Nan"). */
function parseValue(text: string): number {
  const lower = text.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`not a sample value: ${JSON.stringify(text)}`);
  return value;
}

/** Parses `{a="x",b="y\"z"}` starting at `start` (the `{`); returns the labels and the index after `}`. */
function parseLabels(line: string, start: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let index = start + 1;
  while (true) {
    while (line[index] === ' ' || line[index] === ',') index++;
    if (line[index] === '}') return { labels, end: index + 1 };
    const nameMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(index));
    if (!nameMatch) throw new Error(`bad label name at ${index}: ${line}`);
    const name = nameMatch[0];
    index += name.length;
    if (line[index] !== '=' || line[index + 1] !== '"') throw new Error(`expected ="…" after label ${name}: ${line}`);
    index += 2;
    let value = '';
    while (line[index] !== '"') {
      if (index >= line.length) throw new Error(`unterminated label value: ${line}`);
      if (line[index] === '\\') {
        const next = line[index + 1];
        value += next === 'n' ? '\n' : next === '\\' ? '\\' : next === '"' ? '"' : `\\${next}`;
        index += 2;
      } else {
        value += line[index];
        index++;
      }
    }
    index++;
    labels[name] = value;
  }
}

/** Parses a whole `GET /metrics` body; throws on a line it cannot read. */
export function parsePrometheus(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const type = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (type) types.set(type[1]!, type[2]!);
      continue;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nameMatch) throw new Error(`bad sample line: ${line}`);
    const name = nameMatch[0];
    let index = name.length;
    let labels: Record<string, string> = {};
    if (line[index] === '{') ({ labels, end: index } = parseLabels(line, index));
    const rest = line.slice(index).trim().split(/\s+/);
    samples.push({ name, labels, value: parseValue(rest[0] ?? '') });
  }
  return { samples, types };
}

function matches(sample: Sample, name: string, labels: Record<string, string>): boolean {
  return sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value);
}

/** Every sample named `name` whose labels include `labels`. */
export function samplesOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return exposition.samples.filter((sample) => matches(sample, name, labels));
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there are none, as for an untouched counter). */
export function sumOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  return samplesOf(exposition, name, labels).reduce((sum, sample) => sum + sample.value, 0);
}
