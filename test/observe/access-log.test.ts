// accessLog (lib/observe/access-log.ts): the pino lines written for observer
// events, captured from a stream: one line per closed connection (warn for
// the outcomes an operator must look at), backend down/up, listener errors,
// and rate-limited lines for clients dropped at accept and panic routing.
import t from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { accessLog, type AccessLogOptions, recordFields } from '../../lib/observe/access-log.js';
import type { ConnectionRecord, Outcome } from '../../lib/pipeline/record.js';
import { sleep, waitFor } from '../helpers/wait.js';

type Line = Record<string, unknown> & { level: number; msg: string };

const INFO = 30;
const WARN = 40;
const ERROR = 50;

/** An access log on a pino logger at `level` whose JSON lines are parsed into `lines`. */
function capture(level = 'info', options: AccessLogOptions = {}): { log: ReturnType<typeof accessLog>; lines: Line[] } {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n')) if (text !== '') lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  return { log: accessLog(pino({ level }, stream), options), lines };
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

  const written: string[] = [];
  const withWriter = capture('warn', { writeLine: (level, _fields, msg) => written.push(`${level} ${msg}`) });
  withWriter.log.connectionClosed(record({ outcome: 'ok' }));
  withWriter.log.connectionClosed(record({ outcome: 'backend_error', reason: 'ECONNRESET' }));
  t.same(written, ['40 connection closed'], 'the line writer is not handed the info lines at warn');
});

t.test('a client dropped at the descriptor limit: a warn line that says what to raise', async (t) => {
  const { log, lines } = capture();
  log.connectionDropped('public', 'fd_limit');
  t.equal(lines.length, 1);
  t.match(lines[0], { level: WARN, listener: 'public', reason: 'fd_limit', suppressed: 0 });
  t.match(lines[0]!.msg, /open file limit.*LimitNOFILE/);
});

t.test('panic routing: a warn line with the listener and route', async (t) => {
  const { log, lines } = capture();
  log.panicRouting('public', 'app.example.com');
  t.equal(lines.length, 1);
  t.match(lines[0], { level: WARN, listener: 'public', route: 'app.example.com', suppressed: 0 });
  t.match(lines[0]!.msg, /panic routing/);
});

t.test('storms are rate-limited per listener (and reason or route); a summary line carries the count suppressed', async (t) => {
  // A clock the test moves; the summary timer itself is real (the window is short here).
  let clock = 1_000;
  const WINDOW = 50;
  const { log, lines } = capture('info', { rateLimitMs: WINDOW, now: () => clock });
  for (let index = 0; index < 100; index++) log.connectionDropped('public', 'fd_limit');
  for (let index = 0; index < 3; index++) log.panicRouting('public', 'app.example.com');
  log.panicRouting('public', '*.example.com');
  log.panicRouting('internal', 'app.example.com');
  log.connectionDropped('internal', 'fd_limit');
  t.same(
    lines.map((line) => [line.listener, line.reason ?? line.route, line.suppressed]),
    [
      ['public', 'fd_limit', 0],
      ['public', 'app.example.com', 0],
      ['public', '*.example.com', 0],
      ['internal', 'app.example.com', 0],
      ['internal', 'fd_limit', 0],
    ],
    'the first event of each kind is logged at once, the rest within the window are not',
  );

  clock += WINDOW;
  await waitFor(() => lines.length >= 7, 'the summary lines at the end of the window', 20_000);
  const summaries = lines.slice(5).map((line) => [line.listener, line.reason ?? line.route, line.suppressed]);
  t.same(
    summaries.sort(),
    [
      ['public', 'app.example.com', 2],
      ['public', 'fd_limit', 99],
    ].sort(),
    'one summary per kind that had suppressed events, with their count',
  );
  t.ok(
    lines.slice(5).every((line) => line.level === WARN),
    'at warn',
  );

  // Nothing more is scheduled: without events, no more lines (kinds without suppressed events never got a timer).
  await sleep(WINDOW * 4);
  t.equal(lines.length, 7, 'no further lines without further events');

  // The summary opened a new window: an event inside it is counted, one after it is logged at once.
  log.connectionDropped('public', 'fd_limit');
  t.equal(lines.length, 7, 'within the window that began with the summary: suppressed');
  await waitFor(() => lines.length >= 8, 'the next summary', 20_000);
  t.match(lines[7], { listener: 'public', reason: 'fd_limit', suppressed: 1 });
  clock += WINDOW;
  log.connectionDropped('public', 'fd_limit');
  t.equal(lines.length, 9, 'a window later: logged at once');
  t.match(lines[8], { listener: 'public', reason: 'fd_limit', suppressed: 0 });
});

t.test('with the default window, events a second apart on the clock are still one line', async (t) => {
  let clock = 0;
  const { log, lines } = capture('info', { now: () => clock });
  log.panicRouting('public', 'app.example.com');
  clock += 1_000;
  log.panicRouting('public', 'app.example.com');
  clock += 8_999;
  log.panicRouting('public', 'app.example.com');
  t.equal(lines.length, 1, 'one line within 10 s');
});

t.test('recordFields: the fields of the line, built by hand, parse back to the record', async (t) => {
  const records = [
    record(),
    record({ sni: null, alpn: [], route: null, backend: null, attempts: 0, bytesFromClient: 0, bytesToClient: 0, outcome: 'no_route' }),
    record({ sni: 'we"ird\\name', alpn: ['h"2', '\u00e9'], reason: 'ECONNRESET', durationMs: 0.1, outcome: 'backend_error', listener: 'lístener "x"' }),
  ];
  for (const each of records) t.same(JSON.parse(`{${recordFields(each)}}`), each, `${each.outcome}: parses back`);
});

t.test('with a line writer, connection lines are written by it, at the same levels, with the same fields', async (t) => {
  const written: Array<{ level: number; fields: unknown; msg: string }> = [];
  const { log, lines } = capture('info', { writeLine: (level, fields, msg) => written.push({ level, fields: JSON.parse(`{${fields}}`), msg }) });
  log.connectionClosed(record());
  log.connectionClosed(record({ outcome: 'backend_error', reason: 'ECONNRESET' }));
  t.same(lines, [], 'nothing through pino');
  t.same(written, [
    { level: INFO, fields: record(), msg: 'connection closed' },
    { level: WARN, fields: record({ outcome: 'backend_error', reason: 'ECONNRESET' }), msg: 'connection closed' },
  ]);
});

t.test('a QUIC flow: the same fields plus transport and packets each way, through pino and through the line writer alike', async (t) => {
  const quic = record({ alpn: ['h3'], reason: 'idle', quic: { packetsFromClient: 12, packetsToClient: 40 } });
  const flat = { ...record({ alpn: ['h3'], reason: 'idle' }), transport: 'quic', packetsFromClient: 12, packetsToClient: 40 };
  t.same(JSON.parse(`{${recordFields(quic)}}`), flat, 'recordFields');
  const { log, lines } = capture();
  log.connectionClosed(quic);
  t.match(lines[0], { ...flat, msg: 'connection closed', level: INFO });
  t.notOk('quic' in lines[0]!, 'no nested object: the fields are flat, as in the fast path');
});

t.test('QUIC datagrams dropped: an info line per listener and reason, rate-limited', async (t) => {
  const { log, lines } = capture('info', { rateLimitMs: 60_000 });
  log.datagramDropped('public', 'no_route');
  log.datagramDropped('public', 'no_route');
  log.datagramDropped('public', 'not_quic');
  t.equal(lines.length, 2, 'the second no_route is counted, not written');
  t.match(lines[0], { level: INFO, listener: 'public', transport: 'quic', reason: 'no_route', suppressed: 0 });
  t.match(lines[0]!.msg, /no route serves its name/);
  t.match(lines[1], { reason: 'not_quic' });
});
