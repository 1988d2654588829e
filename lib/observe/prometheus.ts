/**
 * A small metric store and its Prometheus text format (version 0.0.4): the
 * proxy counts from the moment it starts, whether or not an admin endpoint
 * exists yet, without loading a metrics library it may never need.
 */

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type LabelValues = readonly string[];

/** One metric family as it is written out: its samples are produced when scraped. */
export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  /** Sample lines without the trailing newline. */
  samples(): string[];
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(names: readonly string[], values: LabelValues): string {
  if (names.length === 0) return '';
  return `{${names.map((name, index) => `${name}="${escapeLabelValue(values[index]!)}"`).join(',')}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

interface SeriesEntry<T> {
  labels: LabelValues;
  value: T;
}

/**
 * A value per combination of label values (given in the order of
 * `labelNames`), found through one map per label: counting on the hot path
 * builds no key string and allocates nothing once a combination exists.
 */
class Series<T> {
  private readonly root = new Map<string, unknown>();
  private readonly entries: Array<SeriesEntry<T>> = [];
  private readonly create: () => T;

  constructor(create: () => T) {
    this.create = create;
  }

  get(labels: LabelValues): T {
    let level = this.root;
    const last = labels.length - 1;
    for (let index = 0; index < last; index++) {
      let next = level.get(labels[index]!) as Map<string, unknown> | undefined;
      if (next === undefined) level.set(labels[index]!, (next = new Map()));
      level = next;
    }
    const key = last < 0 ? '' : labels[last]!;
    let entry = level.get(key) as SeriesEntry<T> | undefined;
    if (entry === undefined) {
      entry = { labels: [...labels], value: this.create() };
      level.set(key, entry);
      this.entries.push(entry);
    }
    return entry.value;
  }

  [Symbol.iterator](): Iterator<SeriesEntry<T>> {
    return this.entries[Symbol.iterator]();
  }
}

export class CounterFamily implements Family {
  readonly type = 'counter';
  private readonly series = new Series<{ value: number }>(() => ({ value: 0 }));

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {}

  inc(labels: LabelValues, by = 1): void {
    this.series.get(labels).value += by;
  }

  samples(): string[] {
    return [...this.series].map(({ labels, value }) => `${this.name}${formatLabels(this.labelNames, labels)} ${formatValue(value.value)}`);
  }
}

/** A gauge whose values are read when scraped (from the running proxy), never tracked on the hot path. */
export class GaugeFamily implements Family {
  readonly type = 'gauge';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly read: () => Iterable<{ labels: LabelValues; value: number }>,
  ) {}

  samples(): string[] {
    return [...this.read()].map(({ labels, value }) => `${this.name}${formatLabels(this.labelNames, labels)} ${formatValue(value)}`);
  }
}

export class HistogramFamily implements Family {
  readonly type = 'histogram';
  private readonly series = new Series<{ counts: number[]; sum: number; count: number }>(() => ({
    counts: new Array<number>(this.buckets.length).fill(0),
    sum: 0,
    count: 0,
  }));

  /** `buckets`: upper bounds, ascending; +Inf is implied. */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly buckets: readonly number[],
  ) {}

  observe(labels: LabelValues, value: number): void {
    const entry = this.series.get(labels);
    const bucket = this.buckets.findIndex((bound) => value <= bound);
    if (bucket !== -1) entry.counts[bucket]!++;
    entry.sum += value;
    entry.count++;
  }

  samples(): string[] {
    const lines: string[] = [];
    const names = [...this.labelNames, 'le'];
    for (const { labels, value } of this.series) {
      let cumulative = 0;
      for (const [index, bound] of this.buckets.entries()) {
        cumulative += value.counts[index]!;
        lines.push(`${this.name}_bucket${formatLabels(names, [...labels, formatValue(bound)])} ${cumulative}`);
      }
      lines.push(`${this.name}_bucket${formatLabels(names, [...labels, '+Inf'])} ${value.count}`);
      lines.push(`${this.name}_sum${formatLabels(this.labelNames, labels)} ${formatValue(value.sum)}`);
      lines.push(`${this.name}_count${formatLabels(this.labelNames, labels)} ${value.count}`);
    }
    return lines;
  }
}

/** The text format of `families`: HELP and TYPE for each, even one without samples yet. */
export function formatFamilies(families: readonly Family[]): string {
  return families
    .map((family) =>
      [
        `# HELP ${family.name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`,
        `# TYPE ${family.name} ${family.type}`,
        ...family.samples(),
        '',
      ].join('\n'),
    )
    .join('\n');
}
