// accessLog (lib/observe/access-log.ts): the pino lines written for observer
// events, captured from a stream: one line per closed connection (warn for
// the outcomes an operator must look at), backend down/up, listener errors.
import t from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { accessLog } from '../../lib/observe/access-log.js';
import type { ConnectionRecord, Outcome } from '../../lib/pipeline/record.js';

type Line = Record<string, unknown> & { level: number; msg: string };

const INFO = 30;
const WARN = 40;
const ERROR = 50;

/** An access log on a pino logger at `level` whose JSON lines are parsed into `lines`. */
function capture(level = 'info'): { log: ReturnType<typeof accessLog>; lines: Line[] } {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n')) if (text !== '') lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  return { log: accessLog(pino({ level }, stream)), lines };
}

function record(overrides: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    listener: 'public',
    client: '203.0.113.9:51234',
    sni: 'app.example.com',
    alpn: ['h2', 'http/1.1'],
    route: 'app.example.com',
    backend: '10.0.0.11:443',
    attempts: 1,
    bytesFromClient: 1893,
    bytesToClient: 52311,
    durationMs: 812.4,
    outcome: 'ok',
    reason: null,
    ...overrides,
  };
}

t.test('one line per closed connection, with every field of the record', async (t) => {
  const { log, lines } = capture();
  log.connectionClosed(record());
  t.equal(lines.length, 1);
  const line = lines[0]!;
  t.equal(line.msg, 'connection closed');
  t.equal(line.level, INFO);
  t.match(line, {
    listener: 'public',
    client: '203.0.113.9:51234',
    sni: 'app.example.com',
    alpn: ['h2', 'http/1.1'],
    route: 'app.example.com',
    backend: '10.0.0.11:443',
    attempts: 1,
    bytesFromClient: 1893,
    bytesToClient: 52311,
    durationMs: 812.4,
    outcome: 'ok',
    reason: null,
  });
  t.type(line.time, 'number', 'timestamped');

  log.connectionClosed(record({ sni: null, route: null, backend: null, alpn: [], outcome: 'bad_hello', reason: 'not_tls' }));
  t.equal(lines.length, 2, 'and one more for the next');
  t.match(lines[1], { sni: null, route: null, backend: null, outcome: 'bad_hello', reason: 'not_tls' }, 'nulls are kept, not dropped');
});

t.test('warn level for backend_unreachable and backend_error, info for the rest', async (t) => {
  const outcomes: Outcome[] = [
    'ok',
    'no_route',
    'bad_hello',
    'hello_timeout',
    'bad_proxy_header',
    'denied',
    'client_limit',
    'client_closed',
    'backend_unreachable',
    'idle_timeout',
    'client_error',
    'backend_error',
    'shutdown',
  ];
  const { log, lines } = capture();
  for (const outcome of outcomes) log.connectionClosed(record({ outcome }));
  t.equal(lines.length, outcomes.length, 'one line each');
  for (const [index, outcome] of outcomes.entries()) {
    const expected = outcome === 'backend_unreachable' || outcome === 'backend_error' ? WARN : INFO;
    t.equal(lines[index]!.level, expected, `${outcome}: level ${expected}`);
    t.equal(lines[index]!.outcome, outcome);
    t.equal(lines[index]!.msg, 'connection closed');
  }
});

t.test('other connection events write nothing', async (t) => {
  const { log, lines } = capture('trace');
  log.connectionAccepted('public');
  log.backendConnected('public', '10.0.0.11:443', 1.2);
  log.backendConnectFailed('public', '10.0.0.11:443', 'ECONNREFUSED');
  t.same(lines, []);
});

t.test('backend down (warn) and backend up (info), with the cause', async (t) => {
  const { log, lines } = capture();
  log.backendHealthChanged({ backend: '10.0.0.11:443', state: 'down', cause: 'connect_failures' });
  log.backendHealthChanged({ backend: '10.0.0.11:443', state: 'up', cause: 'recovered' });
  log.backendHealthChanged({ backend: '10.0.0.12:443', state: 'down', cause: 'health_check' });
  log.backendHealthChanged({ backend: '10.0.0.12:443', state: 'up', cause: 'health_check' });
  t.equal(lines.length, 4);
  t.match(lines[0], { level: WARN, msg: 'backend down', backend: '10.0.0.11:443', state: 'down', cause: 'connect_failures' });
  t.match(lines[1], { level: INFO, msg: 'backend up', backend: '10.0.0.11:443', state: 'up', cause: 'recovered' });
  t.match(lines[2], { level: WARN, msg: 'backend down', backend: '10.0.0.12:443', cause: 'health_check' });
  t.match(lines[3], { level: INFO, msg: 'backend up', backend: '10.0.0.12:443', cause: 'health_check' });
});

t.test('listener errors at error level with the error serialized', async (t) => {
  const { log, lines } = capture();
  const error = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
  log.listenerError('public', error);
  t.equal(lines.length, 1);
  t.match(lines[0], { level: ERROR, msg: 'listener error', listener: 'public', err: { type: 'Error', message: 'accept EMFILE', code: 'EMFILE' } });
  t.match((lines[0]!.err as { stack: string }).stack, /accept EMFILE/);
});

t.test('the logger’s level applies', async (t) => {
  const { log, lines } = capture('warn');
  log.connectionClosed(record({ outcome: 'ok' }));
  log.connectionClosed(record({ outcome: 'backend_unreachable', reason: 'ECONNREFUSED' }));
  log.backendHealthChanged({ backend: '10.0.0.11:443', state: 'up', cause: 'recovered' });
  log.backendHealthChanged({ backend: '10.0.0.11:443', state: 'down', cause: 'connect_failures' });
  t.same(
    lines.map((line) => `${line.level} ${line.msg} ${String(line.outcome ?? line.state)}`),
    ['40 connection closed backend_unreachable', '40 backend down down'],
    'at warn, only the warn lines',
  );
  const silent = capture('silent');
  silent.log.connectionClosed(record({ outcome: 'backend_error' }));
  t.same(silent.lines, [], 'silent: nothing');
});
