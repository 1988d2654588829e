// fanOut (lib/observe/fan-out.ts): one ProxyObserver that forwards every
// event, with its arguments, to each observer in turn (logs, metrics).
import t from 'tap';
import { fanOut } from '../../lib/observe/fan-out.js';
import type { HealthChange } from '../../lib/backends/health.js';
import type { ConnectionRecord } from '../../lib/pipeline/record.js';
import type { ProxyObserver } from '../../lib/pipeline/observer.js';

type Call = [observer: string, event: string, ...args: unknown[]];

/** An observer that appends each call, tagged with `name`, to `calls`. */
function recording(name: string, calls: Call[]): ProxyObserver {
  return {
    connectionAccepted: (...args) => calls.push([name, 'connectionAccepted', ...args]),
    connectionClosed: (...args) => calls.push([name, 'connectionClosed', ...args]),
    backendConnected: (...args) => calls.push([name, 'backendConnected', ...args]),
    backendConnectFailed: (...args) => calls.push([name, 'backendConnectFailed', ...args]),
    backendHealthChanged: (...args) => calls.push([name, 'backendHealthChanged', ...args]),
    listenerError: (...args) => calls.push([name, 'listenerError', ...args]),
    connectionDropped: (...args) => calls.push([name, 'connectionDropped', ...args]),
    datagramDropped: (...args) => calls.push([name, 'datagramDropped', ...args]),
    panicRouting: (...args) => calls.push([name, 'panicRouting', ...args]),
    tlsHandshakeFailed: (...args) => calls.push([name, 'tlsHandshakeFailed', ...args]),
  };
}

const record: ConnectionRecord = {
  listener: 'public',
  client: '192.0.2.1:50000',
  sni: 'app.example.com',
  alpn: ['h2'],
  route: 'app.example.com',
  backend: '127.0.0.1:9443',
  attempts: 1,
  bytesFromClient: 10,
  bytesToClient: 20,
  durationMs: 3.5,
  outcome: 'ok',
  reason: null,
};
const change: HealthChange = { backend: '127.0.0.1:9443', state: 'down', cause: 'connect_failures' };
const error = new Error('accept failed');

/** Sends one of each event through `observer`. */
function sendAll(observer: ProxyObserver): void {
  observer.connectionAccepted('public');
  observer.connectionClosed(record);
  observer.backendConnected('public', '127.0.0.1:9443', 1.25);
  observer.backendConnectFailed('public', '127.0.0.1:9444', 'ECONNREFUSED');
  observer.backendHealthChanged(change);
  observer.listenerError('public', error);
  observer.connectionDropped('public', 'fd_limit');
  observer.panicRouting('public', 'app.example.com');
  observer.datagramDropped('public', 'no_route');
  observer.tlsHandshakeFailed('public', 'app.example.com', 'timeout');
}

t.test('every event reaches every observer, in order, with the same arguments', async (t) => {
  const calls: Call[] = [];
  sendAll(fanOut(recording('logs', calls), recording('metrics', calls)));
  t.same(calls, [
    ['logs', 'connectionAccepted', 'public'],
    ['metrics', 'connectionAccepted', 'public'],
    ['logs', 'connectionClosed', record],
    ['metrics', 'connectionClosed', record],
    ['logs', 'backendConnected', 'public', '127.0.0.1:9443', 1.25],
    ['metrics', 'backendConnected', 'public', '127.0.0.1:9443', 1.25],
    ['logs', 'backendConnectFailed', 'public', '127.0.0.1:9444', 'ECONNREFUSED'],
    ['metrics', 'backendConnectFailed', 'public', '127.0.0.1:9444', 'ECONNREFUSED'],
    ['logs', 'backendHealthChanged', change],
    ['metrics', 'backendHealthChanged', change],
    ['logs', 'listenerError', 'public', error],
    ['metrics', 'listenerError', 'public', error],
    ['logs', 'connectionDropped', 'public', 'fd_limit'],
    ['metrics', 'connectionDropped', 'public', 'fd_limit'],
    ['logs', 'panicRouting', 'public', 'app.example.com'],
    ['metrics', 'panicRouting', 'public', 'app.example.com'],
    ['logs', 'datagramDropped', 'public', 'no_route'],
    ['metrics', 'datagramDropped', 'public', 'no_route'],
    ['logs', 'tlsHandshakeFailed', 'public', 'app.example.com', 'timeout'],
    ['metrics', 'tlsHandshakeFailed', 'public', 'app.example.com', 'timeout'],
  ]);
  t.equal(calls[2]![2], record, 'the same record object, not a copy');
  t.equal(calls[11]![3], error, 'the same error object');
});

t.test('one observer: passed straight through', async (t) => {
  const calls: Call[] = [];
  sendAll(fanOut(recording('only', calls)));
  t.equal(calls.length, 10);
  t.ok(calls.every((call) => call[0] === 'only'));
});

t.test('no observers: every event is a no-op', async (t) => {
  const observer = fanOut();
  t.doesNotThrow(() => sendAll(observer));
});

t.test('three observers, and an observer listed twice gets each event twice', async (t) => {
  const calls: Call[] = [];
  const twice = recording('twice', calls);
  fanOut(recording('a', calls), twice, twice).connectionAccepted('internal');
  t.same(calls, [
    ['a', 'connectionAccepted', 'internal'],
    ['twice', 'connectionAccepted', 'internal'],
    ['twice', 'connectionAccepted', 'internal'],
  ]);
});

t.test('fan-outs nest', async (t) => {
  const calls: Call[] = [];
  fanOut(fanOut(recording('inner1', calls), recording('inner2', calls)), recording('outer', calls)).backendHealthChanged(change);
  t.same(
    calls.map((call) => call[0]),
    ['inner1', 'inner2', 'outer'],
  );
});

t.test('the result implements every ProxyObserver method', async (t) => {
  const observer = fanOut();
  for (const method of [
    'connectionAccepted',
    'connectionClosed',
    'backendConnected',
    'backendConnectFailed',
    'backendHealthChanged',
    'listenerError',
  ] as const) {
    t.type(observer[method], 'function', method);
  }
});
