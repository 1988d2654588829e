// BackendState and BackendRegistry (lib/backends/health.ts): passive
// health (consecutive connect failures, failTimeout, one probe), active TCP
// health checks with rise/fall hysteresis against real sockets on loopback,
// and what a registry keeps across configs.
import t from 'tap';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../../lib/config/load.js';
import type { ProxyConfig } from '../../lib/config/types.js';
import { BackendRegistry, BackendState, type HealthChange } from '../../lib/backends/health.js';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { unusedAddress } from '../helpers/backends.js';
import { DnsServer } from '../helpers/dns-server.js';
import { sleep, waitFor } from '../helpers/wait.js';

function recorder(): { events: HealthChange[]; observer: { backendHealthChanged(change: HealthChange): void } } {
  const events: HealthChange[] = [];
  return { events, observer: { backendHealthChanged: (change) => events.push(change) } };
}

/** A TCP server on 127.0.0.1:0 counting the connections it accepts (health checks just connect). */
async function countingServer(): Promise<{ address: string; port: number; connections(): number; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    port,
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A config with one listener whose default route lists `backends`, with an optional health check. */
function configWith(backends: string[], healthCheck?: string): ProxyConfig {
  const lines = ['listeners:', '  - listen: 127.0.0.1:0', '    default:', `      backends: [${backends.join(', ')}]`];
  if (healthCheck) lines.push(`      healthCheck: ${healthCheck}`);
  return parseConfig(`${lines.join('\n')}\n`, 'health.yaml');
}

t.test('BackendState: passive health', async (t) => {
  t.test('a new state is up, idle and available', async (t) => {
    const state = new BackendState('10.0.0.1:443', recorder().observer);
    t.equal(state.address, '10.0.0.1:443');
    t.equal(state.active, 0);
    t.equal(state.failures, 0);
    t.equal(state.downUntil, 0);
    t.equal(state.probing, false);
    t.equal(state.healthy, true);
    t.ok(state.isAvailable(1_000, false));
    t.ok(state.isAvailable(1_000, true));
    t.ok(state.startAttempt(1_000) && state.startAttempt(1_000), 'any number of attempts while up');
    t.equal(state.probing, false, 'an attempt on a backend that is up is no probe');
  });

  t.test('down after maxFails consecutive failures, with one event', async (t) => {
    const { events, observer } = recorder();
    const state = new BackendState('b:1', observer);
    state.connectFailed(100, 3, 1_000);
    state.connectFailed(110, 3, 1_000);
    t.ok(state.isAvailable(120, false), 'two of three: still available');
    t.same(events, []);
    state.connectFailed(120, 3, 1_000);
    t.equal(state.downUntil, 1_120, 'out until failTimeout after the last failure');
    t.same(events, [{ backend: 'b:1', state: 'down', cause: 'connect_failures' }]);
    t.notOk(state.isAvailable(1_119, false), 'skipped before failTimeout');
    t.notOk(state.startAttempt(1_119), 'no attempt before failTimeout');
    state.connectFailed(130, 3, 1_000);
    t.equal(events.length, 1, 'more failures while down: no second event');
  });

  t.test('after failTimeout exactly one connection probes; success brings it up', async (t) => {
    const { events, observer } = recorder();
    const state = new BackendState('b:1', observer);
    for (let failure = 0; failure < 2; failure++) state.connectFailed(0, 2, 500);
    t.ok(state.isAvailable(500, false), 'available at failTimeout');
    t.ok(state.startAttempt(500), 'the first claims the probe');
    t.equal(state.probing, true);
    t.notOk(state.startAttempt(501), 'the second may not');
    t.notOk(state.isAvailable(501, false), 'and it is not offered to new connections meanwhile');
    state.connectSucceeded();
    t.equal(state.downUntil, 0);
    t.equal(state.failures, 0);
    t.equal(state.probing, false);
    t.ok(state.isAvailable(502, false));
    t.same(events, [
      { backend: 'b:1', state: 'down', cause: 'connect_failures' },
      { backend: 'b:1', state: 'up', cause: 'recovered' },
    ]);
  });

  t.test('a failed probe takes it out for another failTimeout at once', async (t) => {
    const { events, observer } = recorder();
    const state = new BackendState('b:1', observer);
    for (let failure = 0; failure < 5; failure++) state.connectFailed(0, 5, 100);
    t.ok(state.startAttempt(100));
    state.connectFailed(150, 5, 100);
    t.equal(state.downUntil, 250, 'failTimeout from the probe’s failure');
    t.equal(state.probing, false, 'the probe is over');
    t.notOk(state.isAvailable(249, false));
    t.ok(state.isAvailable(250, false));
    t.equal(events.length, 1, 'it never came up: no new event');
  });

  t.test('a success resets the failure count; success while up sends no event', async (t) => {
    const { events, observer } = recorder();
    const state = new BackendState('b:1', observer);
    state.connectFailed(0, 2, 100);
    state.connectSucceeded();
    state.connectFailed(1, 2, 100);
    t.equal(state.downUntil, 0, 'not consecutive: still up');
    t.same(events, []);
  });

  t.test('maxFails 0 never takes it out', async (t) => {
    const { events, observer } = recorder();
    const state = new BackendState('b:1', observer);
    for (let failure = 0; failure < 50; failure++) state.connectFailed(failure, 0, 100);
    t.equal(state.downUntil, 0);
    t.ok(state.isAvailable(60, false));
    t.same(events, []);
  });

  t.test('healthy = false makes it unavailable only where health checks are used', async (t) => {
    const state = new BackendState('b:1', recorder().observer);
    state.healthy = false;
    t.notOk(state.isAvailable(0, true));
    t.ok(state.isAvailable(0, false));
  });
});

t.test('BackendState.checkResult: rise/fall hysteresis', async (t) => {
  t.test('down after `fall` consecutive failed checks, up after `rise` consecutive passes', async (t) => {
    const { events, observer } = recorder();
    const state = new BackendState('b:1', observer);
    const counts = { passes: 0, fails: 0 };
    const config = { interval: 1, timeout: 1, rise: 2, fall: 3 };
    state.checkResult(false, counts, config);
    state.checkResult(false, counts, config);
    t.equal(state.healthy, true, 'two of three failed: still healthy');
    state.checkResult(true, counts, config);
    t.same(counts, { passes: 1, fails: 0 }, 'a pass resets the failures');
    state.checkResult(false, counts, config);
    state.checkResult(false, counts, config);
    t.equal(state.healthy, true, 'not three in a row');
    state.checkResult(false, counts, config);
    t.equal(state.healthy, false, 'three in a row: down');
    t.same(events, [{ backend: 'b:1', state: 'down', cause: 'health_check' }]);
    state.checkResult(false, counts, config);
    t.equal(events.length, 1, 'further failures: no new event');

    state.checkResult(true, counts, config);
    t.equal(state.healthy, false, 'one pass of two: still down');
    state.checkResult(false, counts, config);
    t.same(counts, { passes: 0, fails: 1 }, 'a failure resets the passes');
    state.checkResult(true, counts, config);
    t.equal(state.healthy, false);
    state.checkResult(true, counts, config);
    t.equal(state.healthy, true, 'two in a row: up');
    t.same(events[1], { backend: 'b:1', state: 'up', cause: 'health_check' });
    state.checkResult(true, counts, config);
    t.equal(events.length, 2, 'further passes: no new event');
  });

  t.test('rise 1 / fall 1 flip at every change', async (t) => {
    const { events, observer } = recorder();
    const state = new BackendState('b:1', observer);
    const counts = { passes: 0, fails: 0 };
    const config = { interval: 1, timeout: 1, rise: 1, fall: 1 };
    for (const result of [false, true, false, true]) state.checkResult(result, counts, config);
    t.same(
      events.map((event) => event.state),
      ['down', 'up', 'down', 'up'],
    );
  });

  t.test('active and passive health are independent', async (t) => {
    const state = new BackendState('b:1', recorder().observer);
    const counts = { passes: 0, fails: 0 };
    state.checkResult(false, counts, { interval: 1, timeout: 1, rise: 1, fall: 1 });
    state.connectSucceeded();
    t.equal(state.healthy, false, 'a connect success does not override failing checks');
    state.checkResult(true, counts, { interval: 1, timeout: 1, rise: 1, fall: 1 });
    state.connectFailed(0, 1, 1_000);
    t.equal(state.healthy, true, 'a connect failure does not mark the checks failed');
    t.notOk(state.isAvailable(1, true), 'but skips it by passive health');
  });
});

t.test('BackendRegistry', async (t) => {
  t.test('get returns one state per address', async (t) => {
    const registry = new BackendRegistry(recorder().observer);
    t.equal(registry.get('a:1'), registry.get('a:1'));
    t.not(registry.get('a:1'), registry.get('a:2'));
  });

  t.test('sync keeps the states of addresses that stay and forgets the others', async (t) => {
    const registry = new BackendRegistry(recorder().observer);
    t.teardown(() => registry.stop());
    registry.sync(configWith(['127.0.0.1:9001', '127.0.0.1:9002']));
    const staying = registry.get('127.0.0.1:9001');
    const leaving = registry.get('127.0.0.1:9002');
    staying.active = 4;
    staying.failures = 2;
    leaving.active = 7;

    registry.sync(configWith(['127.0.0.1:9001', '127.0.0.1:9003']));
    t.equal(registry.get('127.0.0.1:9001'), staying, 'the same state object');
    t.equal(staying.active, 4, 'open connections kept (leastconn)');
    t.equal(staying.failures, 2, 'failure count kept');
    t.not(registry.get('127.0.0.1:9002'), leaving, 'the removed address was forgotten: a fresh state now');
    t.equal(registry.get('127.0.0.1:9002').active, 0);
    t.same(
      registry
        .health()
        .map((entry) => entry.backend)
        .sort(),
      ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003'],
    );
    registry.sync(configWith(['127.0.0.1:9001']));
    t.same(
      registry.health().map((entry) => entry.backend),
      ['127.0.0.1:9001'],
      'health() lists exactly the backends in the config',
    );
  });

  t.test('health(): up unless failing checks or skipped after failures', async (t) => {
    const registry = new BackendRegistry(recorder().observer);
    registry.sync(configWith(['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003']));
    registry.get('127.0.0.1:9002').connectFailed(performance.now(), 1, 60_000);
    registry.get('127.0.0.1:9003').healthy = false;
    registry.get('127.0.0.1:9001').active = 2;
    t.same(registry.health(), [
      { backend: '127.0.0.1:9001', up: true, drained: false, active: 2 },
      { backend: '127.0.0.1:9002', up: false, drained: false, active: 0 },
      { backend: '127.0.0.1:9003', up: false, drained: false, active: 0 },
    ]);
    registry.get('127.0.0.1:9002').downUntil = performance.now() - 1;
    t.same(registry.health()[1], { backend: '127.0.0.1:9002', up: true, drained: false, active: 0 }, 'failTimeout over: up (it will be probed)');
  });

  t.test('setDrained: kept across syncs while the address stays, forgotten with it; unknown addresses are refused', async (t) => {
    const registry = new BackendRegistry(recorder().observer);
    registry.sync(configWith(['127.0.0.1:9001', '127.0.0.1:9002']));
    t.same(registry.setDrained('127.0.0.1:9002', true), { backend: '127.0.0.1:9002', up: true, drained: true, active: 0 });
    t.equal(registry.get('127.0.0.1:9002').isAvailable(performance.now(), false), false, 'no longer available');
    t.equal(registry.setDrained('127.0.0.1:9999', true), null, 'not in the config');
    t.notOk(
      registry.health().some((entry) => entry.backend === '127.0.0.1:9999'),
      'no state created for an unknown address',
    );

    registry.sync(configWith(['127.0.0.1:9002', '127.0.0.1:9003']));
    t.equal(registry.get('127.0.0.1:9002').drained, true, 'kept across a config that keeps the address');
    registry.sync(configWith(['127.0.0.1:9003']));
    registry.sync(configWith(['127.0.0.1:9002', '127.0.0.1:9003']));
    t.equal(registry.get('127.0.0.1:9002').drained, false, 'removed, then added again: a fresh, undrained state');

    registry.setDrained('127.0.0.1:9003', true);
    t.same(registry.setDrained('127.0.0.1:9003', false), { backend: '127.0.0.1:9003', up: true, drained: false, active: 0 }, 'undrained');
    t.equal(registry.get('127.0.0.1:9003').isAvailable(performance.now(), false), true);
  });

  t.test('health checks against real sockets', async (t) => {
    t.test('a backend that is up stays healthy, and one marked unhealthy comes up after `rise` passes', async (t) => {
      const server = await countingServer();
      const { events, observer } = recorder();
      const registry = new BackendRegistry(observer);
      t.teardown(async () => {
        registry.stop();
        await server.close();
      });
      registry.get(server.address).healthy = false;
      registry.sync(configWith([server.address], '{ interval: 50ms, timeout: 1s, rise: 2, fall: 2 }'));
      await waitFor(() => registry.get(server.address).healthy, 'the backend became healthy', 20_000);
      t.same(events, [{ backend: server.address, state: 'up', cause: 'health_check' }]);
      t.ok(server.connections() >= 2, `checked by connecting (${server.connections()} connections)`);
      const seen = server.connections();
      await waitFor(() => server.connections() >= seen + 3, 'three more checks', 20_000);
      t.equal(registry.get(server.address).healthy, true, 'stays healthy');
      t.equal(events.length, 1, 'no further changes');
      t.same(registry.health(), [{ backend: server.address, up: true, drained: false, active: 0 }]);
    });

    t.test('a backend at an unused address goes down after `fall` checks, and comes back when it listens', async (t) => {
      const address = await unusedAddress();
      const port = Number(address.split(':')[1]);
      const { events, observer } = recorder();
      const registry = new BackendRegistry(observer);
      const revived = net.createServer((socket) => socket.destroy());
      t.teardown(async () => {
        registry.stop();
        if (revived.listening) await new Promise((resolve) => revived.close(resolve));
      });
      registry.sync(configWith([address], '{ interval: 50ms, timeout: 1s, rise: 2, fall: 3 }'));
      t.equal(registry.get(address).healthy, true, 'healthy until checks say otherwise');
      await waitFor(() => !registry.get(address).healthy, 'the backend went down', 20_000);
      t.same(events, [{ backend: address, state: 'down', cause: 'health_check' }]);
      t.same(registry.health(), [{ backend: address, up: false, drained: false, active: 0 }]);

      await new Promise<void>((resolve) => revived.listen(port, '127.0.0.1', resolve));
      await waitFor(() => registry.get(address).healthy, 'the backend came back', 20_000);
      t.same(events[1], { backend: address, state: 'up', cause: 'health_check' });
    });

    t.test('stop() stops the checks', async (t) => {
      const server = await countingServer();
      t.teardown(() => server.close());
      const registry = new BackendRegistry(recorder().observer);
      registry.sync(configWith([server.address], '{ interval: 20ms, timeout: 1s }'));
      await waitFor(() => server.connections() >= 2, 'two checks', 20_000);
      registry.stop();
      await sleep(30);
      const after = server.connections();
      await sleep(200);
      t.equal(server.connections(), after, 'no check in 200 ms after stop() (interval 20 ms)');
    });

    t.test('a reload that drops the healthCheck stops it and marks the backend healthy', async (t) => {
      const server = await countingServer();
      const registry = new BackendRegistry(recorder().observer);
      t.teardown(async () => {
        registry.stop();
        await server.close();
      });
      registry.sync(configWith([server.address], '{ interval: 20ms, timeout: 1s }'));
      await waitFor(() => server.connections() >= 2, 'two checks', 20_000);
      const state = registry.get(server.address);
      state.healthy = false;
      registry.sync(configWith([server.address]));
      t.equal(registry.get(server.address), state, 'state kept');
      t.equal(state.healthy, true, 'no checks: healthy');
      await sleep(30);
      const after = server.connections();
      await sleep(200);
      t.equal(server.connections(), after, 'no more checks');
    });

    t.test('health state and the running check survive a reload that keeps the backend', async (t) => {
      const address = await unusedAddress();
      const { events, observer } = recorder();
      const registry = new BackendRegistry(observer);
      t.teardown(() => registry.stop());
      const check = '{ interval: 50ms, timeout: 1s, rise: 2, fall: 2 }';
      registry.sync(configWith([address], check));
      await waitFor(() => !registry.get(address).healthy, 'the backend went down', 20_000);
      const state = registry.get(address);
      registry.sync(configWith([address, '127.0.0.1:9009'], check));
      t.equal(registry.get(address), state, 'same state');
      t.equal(state.healthy, false, 'still down after the reload, without waiting for `fall` checks again');
      await sleep(200);
      t.equal(events.filter((event) => event.backend === address).length, 1, 'no flapping: one "down" event');
    });

    t.test('removing the backend stops its check', async (t) => {
      const server = await countingServer();
      const registry = new BackendRegistry(recorder().observer);
      t.teardown(async () => {
        registry.stop();
        await server.close();
      });
      registry.sync(configWith([server.address], '{ interval: 20ms, timeout: 1s }'));
      await waitFor(() => server.connections() >= 2, 'two checks', 20_000);
      registry.sync(configWith(['127.0.0.1:9009']));
      await sleep(30);
      const after = server.connections();
      await sleep(200);
      t.equal(server.connections(), after, 'no more checks of the removed backend');
      t.same(
        registry.health().map((entry) => entry.backend),
        ['127.0.0.1:9009'],
      );
    });
  });
});

t.test('health checks resolve names with the proxy’s resolver (so `resolvers` apply), and states of templated routes stay out', async (t) => {
  const dns = await DnsServer.start();
  const server = await countingServer();
  const { events, observer } = recorder();
  const registry = new BackendRegistry(observer, { resolver: new HostResolver([dns.address]) });
  t.teardown(async () => {
    registry.stop();
    await Promise.all([server.close(), dns.close()]);
  });
  dns.set('checked.test', ['127.0.0.1'], 300);
  // Neither name exists for the system resolver: only the test's server can make the first check pass.
  const named = `checked.test:${server.port}`;
  const missing = `missing.test:${server.port}`;
  registry.sync(configWith([named, missing], '{ interval: 50ms, timeout: 5s, rise: 1, fall: 2 }'));
  await waitFor(() => server.connections() >= 2 && !registry.get(missing).healthy, 'checks through the configured server', 30_000);
  t.equal(registry.get(named).healthy, true, 'the name the server knows is checked and healthy');
  t.equal(dns.count('checked.test'), 1, 'asked once: the answer is cached for its TTL across checks');
  t.same(events, [{ backend: missing, state: 'down', cause: 'health_check' }], 'the name it does not know fails its checks');

  const templated = parseConfig(
    `listeners:\n  - listen: 127.0.0.1:0\n    routes:\n      - hostnames: ["*.example.com"]\n        backends: ["{1}.internal:443", "${named}"]\n        healthCheck: { interval: 50ms }\n`,
    'health.yaml',
  );
  registry.sync(templated);
  t.same(
    registry.health().map((entry) => entry.backend),
    [named],
    'a template has no state and no check; the fixed backend beside it is still checked',
  );
});
