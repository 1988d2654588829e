import t from 'tap';
import { isPerWorkerFamily, mergeExpositions } from '../../lib/observe/merge-metrics.js';
import { CounterFamily, formatFamilies, GaugeFamily, HistogramFamily } from '../../lib/observe/prometheus.js';
import { parsePrometheus, samplesOf, sumOf } from '../helpers/prometheus.js';

/** One process's metrics, written by the proxy's own store. */
function processText(connections: number, latency: number[], up: boolean, cpu: number): string {
  const accepted = new CounterFamily('sni_passthrough_connections_accepted_total', 'Connections accepted', ['listener']);
  if (connections > 0) accepted.inc(['web'], connections);
  const histogram = new HistogramFamily('sni_passthrough_backend_connect_duration_seconds', 'Connect time', ['backend'], [0.01, 0.1]);
  for (const value of latency) histogram.observe(['127.0.0.1:1'], value);
  const backendUp = new GaugeFamily('sni_passthrough_backend_up', 'Up', ['backend'], () => [{ labels: ['127.0.0.1:1'], value: up ? 1 : 0 }]);
  const processCpu = new GaugeFamily('process_cpu_seconds_total', 'CPU', [], () => [{ labels: [], value: cpu }]);
  return formatFamilies([accepted, histogram, backendUp, processCpu]);
}

t.test('counters and histograms add up across processes; per-process families get a worker label', async (t) => {
  const merged = mergeExpositions(
    [
      { worker: 'primary', text: processText(0, [], true, 0.5) },
      { worker: '1', text: processText(3, [0.005, 0.05], true, 1.25) },
      { worker: '2', text: processText(4, [0.5], false, 2) },
    ],
    isPerWorkerFamily,
  );
  const parsed = parsePrometheus(merged);
  t.equal(sumOf(parsed, 'sni_passthrough_connections_accepted_total', { listener: 'web' }), 7);
  t.equal(samplesOf(parsed, 'sni_passthrough_connections_accepted_total').length, 1, 'one series, summed');
  t.same(
    samplesOf(parsed, 'sni_passthrough_backend_connect_duration_seconds_bucket').map((sample) => [sample.labels.le, sample.value]),
    [
      ['0.01', 1],
      ['0.1', 2],
      ['+Inf', 3],
    ],
    'buckets summed bucket by bucket',
  );
  t.equal(sumOf(parsed, 'sni_passthrough_backend_connect_duration_seconds_count'), 3);
  t.same(
    samplesOf(parsed, 'sni_passthrough_backend_up').map((sample) => [sample.labels.worker, sample.labels.backend, sample.value]),
    [
      ['primary', '127.0.0.1:1', 1],
      ['1', '127.0.0.1:1', 1],
      ['2', '127.0.0.1:1', 0],
    ],
    'backend_up per worker: each has its own passive health',
  );
  t.same(
    samplesOf(parsed, 'process_cpu_seconds_total').map((sample) => [sample.labels.worker, sample.value]),
    [
      ['primary', 0.5],
      ['1', 1.25],
      ['2', 2],
    ],
  );
  t.equal(merged.match(/^# HELP sni_passthrough_connections_accepted_total /gm)?.length, 1, 'HELP once per family');
  t.equal(merged.match(/^# TYPE sni_passthrough_backend_up gauge$/gm)?.length, 1, 'TYPE once per family');
  t.equal(parsed.types.get('sni_passthrough_backend_connect_duration_seconds'), 'histogram');
});

t.test('a family with no samples keeps its HELP and TYPE; special values survive', async (t) => {
  const text = '# HELP a_total A\n# TYPE a_total counter\n\n# HELP b B\n# TYPE b gauge\nb NaN\nb{x="1"} +Inf\n';
  const merged = mergeExpositions([{ worker: '1', text }], () => false);
  t.equal(merged, '# HELP a_total A\n# TYPE a_total counter\n\n# HELP b B\n# TYPE b gauge\nb NaN\nb{x="1"} +Inf\n');
});
