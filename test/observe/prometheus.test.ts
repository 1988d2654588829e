// The metric store and its text format (lib/observe/prometheus.ts): exact
// output for counters, gauges and histograms, escaping, and special values,
// read back with the parser in test/helpers/prometheus.ts as a scraper would.
import t from 'tap';
import { CounterFamily, formatFamilies, GaugeFamily, HistogramFamily } from '../../lib/observe/prometheus.js';
import { parsePrometheus, sumOf } from '../helpers/prometheus.js';

t.test('a counter: one sample per label combination, added up', async (t) => {
  const counter = new CounterFamily('requests_total', 'Requests', ['method', 'code']);
  counter.inc(['GET', '200']);
  counter.inc(['GET', '200'], 4);
  counter.inc(['POST', '500']);
  t.equal(
    formatFamilies([counter]),
    '# HELP requests_total Requests\n# TYPE requests_total counter\nrequests_total{method="GET",code="200"} 5\nrequests_total{method="POST",code="500"} 1\n',
  );
});

t.test('label values and help text are escaped; label values that join alike stay apart', async (t) => {
  const counter = new CounterFamily('odd_total', 'Help with \\ and\na newline', ['name']);
  for (const name of ['quote"d', 'back\\slash', 'new\nline', 'a,b', 'a']) counter.inc([name]);
  const text = formatFamilies([counter]);
  t.match(text, '# HELP odd_total Help with \\\\ and\\na newline\n');
  t.match(text, 'odd_total{name="quote\\"d"} 1');
  t.match(text, 'odd_total{name="back\\\\slash"} 1');
  t.match(text, 'odd_total{name="new\\nline"} 1');
  const { samples } = parsePrometheus(text);
  t.same(
    samples.map((sample) => sample.labels.name),
    ['quote"d', 'back\\slash', 'new\nline', 'a,b', 'a'],
    'each reads back as written',
  );

  const pairs = new CounterFamily('pairs_total', 'Pairs', ['x', 'y']);
  pairs.inc(['a\u0000b', 'c']);
  pairs.inc(['a', 'b\u0000c']);
  t.equal(parsePrometheus(formatFamilies([pairs])).samples.length, 2, 'two series, not one');
});

t.test('a gauge is read when formatted; a family without samples still has HELP and TYPE', async (t) => {
  let current = [{ labels: ['public'], value: 3 }];
  const gauge = new GaugeFamily('open', 'Open now', ['listener'], () => current);
  const empty = new CounterFamily('never_total', 'Never counted');
  t.equal(
    formatFamilies([gauge, empty]),
    '# HELP open Open now\n# TYPE open gauge\nopen{listener="public"} 3\n\n# HELP never_total Never counted\n# TYPE never_total counter\n',
  );
  current = [];
  t.equal(formatFamilies([gauge]), '# HELP open Open now\n# TYPE open gauge\n');
  const unlabelled = new GaugeFamily('special', 'Special values', [], () => [
    { labels: [], value: Number.NaN },
    { labels: [], value: Infinity },
    { labels: [], value: -Infinity },
    { labels: [], value: 0.25 },
  ]);
  t.match(formatFamilies([unlabelled]), /\nspecial NaN\nspecial \+Inf\nspecial -Inf\nspecial 0\.25\n$/);
});

t.test('a histogram: cumulative buckets (a value on a bound counts in it), +Inf, sum and count', async (t) => {
  const histogram = new HistogramFamily('latency_seconds', 'Latency', ['backend'], [0.1, 1]);
  for (const value of [0.05, 0.1, 0.5, 1, 7]) histogram.observe(['b1'], value);
  histogram.observe(['b2'], 0.01);
  const text = formatFamilies([histogram]);
  t.equal(
    text,
    [
      '# HELP latency_seconds Latency',
      '# TYPE latency_seconds histogram',
      'latency_seconds_bucket{backend="b1",le="0.1"} 2',
      'latency_seconds_bucket{backend="b1",le="1"} 4',
      'latency_seconds_bucket{backend="b1",le="+Inf"} 5',
      'latency_seconds_sum{backend="b1"} 8.65',
      'latency_seconds_count{backend="b1"} 5',
      'latency_seconds_bucket{backend="b2",le="0.1"} 1',
      'latency_seconds_bucket{backend="b2",le="1"} 1',
      'latency_seconds_bucket{backend="b2",le="+Inf"} 1',
      'latency_seconds_sum{backend="b2"} 0.01',
      'latency_seconds_count{backend="b2"} 1',
      '',
    ].join('\n'),
  );
  const exposition = parsePrometheus(text);
  t.equal(exposition.types.get('latency_seconds'), 'histogram');
  t.equal(sumOf(exposition, 'latency_seconds_count'), 6);
});
