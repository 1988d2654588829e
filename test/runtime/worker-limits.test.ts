import t from 'tap';
import { parseConfig } from '../../lib/config/load.js';
import { shareOf, workerConfig } from '../../lib/runtime/worker-limits.js';

t.test('each worker enforces an even share of a limit, rounded up; 0 stays "no limit"', async (t) => {
  t.equal(shareOf(0, 4), 0);
  t.equal(shareOf(100, 2), 50);
  t.equal(shareOf(101, 2), 51, 'rounded up: the shares add up to at least the limit');
  t.equal(shareOf(3, 4), 1, 'never 0, which would mean no limit');
  t.equal(shareOf(10, 1), 10);
});

t.test("a worker's config: every listener's maxConnections and maxConnectionsPerClient divided, the rest unchanged", async (t) => {
  const config = parseConfig(
    [
      'workers: 4',
      'listeners:',
      '  - { name: a, listen: 8443, maxConnections: 1000, maxConnectionsPerClient: 10, default: { backends: [127.0.0.1:1] } }',
      '  - { name: b, listen: 8444, default: { backends: [127.0.0.1:1] } }',
    ].join('\n'),
    'proxy.yaml',
  );
  const divided = workerConfig(config, 4);
  t.same(
    divided.listeners.map((listener) => [listener.name, listener.maxConnections, listener.maxConnectionsPerClient]),
    [
      ['a', 250, 3],
      ['b', 0, 0],
    ],
  );
  t.same({ ...divided, listeners: [] }, { ...config, listeners: [] }, 'nothing else changes');
  t.equal(config.listeners[0]!.maxConnections, 1000, 'the primary keeps the undivided config (what /config shows)');
  t.equal(workerConfig(config, 1), config, 'one worker: the config as written');
});
