// PreambleReader (lib/pipeline/preamble.ts) on one end of a real TCP
// connection inside this process: what it reports to its host for each kind
// of preamble, and that it only peeks (every byte is handed on).
import type net from 'node:net';
import t, { type Test } from 'tap';
import type { ProxiedAddresses } from '../../lib/net/proxy-protocol.js';
import { encodeProxyV1, encodeProxyV2 } from '../../lib/net/proxy-protocol.js';
import { TLS_PREAMBLE } from '../../lib/listeners/tls-preamble.js';
import { type Preamble, type PreambleHost, type PreambleProtocol, PreambleReader } from '../../lib/pipeline/preamble.js';
import type { Outcome } from '../../lib/pipeline/record.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record, wrapInRecords } from '../helpers/client-hello-fixtures.js';
import { writeInPieces } from '../helpers/raw-client.js';
import { socketPair } from '../helpers/socket-pair.js';
import { guard, sleep } from '../helpers/wait.js';

const HELLO = record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName: 'App.Example.COM.', alpn: ['h2', 'http/1.1'] }));
const ADDRESSES: ProxiedAddresses = { source: { address: '203.0.113.9', port: 51234 }, destination: { address: '192.0.2.1', port: 443 } };

/** A host that records what the reader reports; `admit` decides what identifyClient answers. */
class RecordingHost implements PreambleHost {
  readonly client: net.Socket;
  identified: Array<{ addresses: ProxiedAddresses | null; headerBytes: number }> = [];
  preamble: Preamble | null = null;
  finished: { outcome: Outcome; reason: string | null } | null = null;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    client: net.Socket,
    private readonly admit = true,
  ) {
    this.client = client;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  identifyClient(addresses: ProxiedAddresses | null, headerBytes: number): boolean {
    this.identified.push({ addresses, headerBytes });
    if (!this.admit) this.finish('denied', 'listener_access_list');
    return this.admit;
  }

  preambleRead(preamble: Preamble): void {
    this.preamble = preamble;
    this.resolveDone();
  }

  finish(outcome: Outcome, reason: string | null): void {
    this.finished = { outcome, reason };
    this.reader?.stop();
    this.resolveDone();
  }

  answered: Buffer | null = null;

  respondAndClose(bytes: Buffer, outcome: Outcome, reason: string | null): void {
    this.answered = bytes;
    this.finish(outcome, reason);
  }

  reader: PreambleReader | null = null;

  /** Resolves when the reader has reported its result. */
  result(): Promise<void> {
    return guard(this.done, 30_000, 'the reader reported');
  }
}

async function reading(
  t: Test,
  options: { proxyHeader?: boolean; timeout?: number; admit?: boolean; protocol?: PreambleProtocol } = {},
): Promise<{ host: RecordingHost; peer: net.Socket }> {
  const { accepted, peer } = await socketPair();
  t.teardown(() => {
    accepted.destroy();
    peer.destroy();
  });
  accepted.on('error', () => {});
  const host = new RecordingHost(accepted, options.admit ?? true);
  host.reader = new PreambleReader(host, options.protocol ?? TLS_PREAMBLE, options.proxyHeader ?? false, options.timeout ?? 10_000);
  return { host, peer };
}

t.test('a hello in one write: its name and ALPN, and every byte read', async (t) => {
  const { host, peer } = await reading(t);
  const early = Buffer.from('early application data');
  peer.write(Buffer.concat([HELLO, early]));
  await host.result();
  t.same(host.preamble?.request, { serverName: 'app.example.com', alpn: ['h2', 'http/1.1'], path: null });
  t.equal(host.preamble?.offset, 0);
  t.ok(host.preamble?.bytes.equals(Buffer.concat([HELLO, early])), 'the preamble holds the hello and what came with it');
  t.equal(host.finished, null);
});

t.test('a hello a byte at a time, split over many records: the same result', async (t) => {
  const { host, peer } = await reading(t);
  const hello = wrapInRecords(buildClientHello({ serverName: 'split.example.com' }), 7);
  await writeInPieces(peer, hello, 1);
  await host.result();
  t.equal(host.preamble?.request.serverName, 'split.example.com');
  t.ok(host.preamble?.bytes.equals(hello), 'every byte kept, in order');
});

for (const [version, encode] of [
  ['v1', () => encodeProxyV1(ADDRESSES)],
  ['v2', () => encodeProxyV2(ADDRESSES, null)],
] as const) {
  t.test(`a PROXY ${version} header first: the client is identified, then the hello is read after it`, async (t) => {
    const { host, peer } = await reading(t, { proxyHeader: true });
    const header = encode();
    await writeInPieces(peer, Buffer.concat([header, HELLO]), 5);
    await host.result();
    t.same(host.identified, [{ addresses: ADDRESSES, headerBytes: header.length }]);
    t.equal(host.preamble?.offset, header.length);
    t.equal(host.preamble?.request.serverName, 'app.example.com');
    t.ok(host.preamble?.bytes.subarray(0, header.length).equals(header), 'the header stays in the bytes, before the hello');
  });
}

t.test('a PROXY header whose client is refused: no hello is read', async (t) => {
  const { host, peer } = await reading(t, { proxyHeader: true, admit: false });
  peer.write(Buffer.concat([encodeProxyV2(ADDRESSES, null), HELLO]));
  await host.result();
  t.same(host.finished, { outcome: 'denied', reason: 'listener_access_list' });
  t.equal(host.preamble, null);
});

t.test('what is not a hello ends the connection with the parser’s reason', async (t) => {
  const cases: Array<[string, Buffer, boolean, Outcome, string]> = [
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), false, 'bad_hello', 'not_tls'],
    [
      'a handshake record that is not a ClientHello',
      record(CONTENT_TYPE_HANDSHAKE, Buffer.from([2, 0, 0, 4, 3, 3, 0, 0])),
      false,
      'bad_hello',
      'not_client_hello',
    ],
    ['a hello where a PROXY header was expected', HELLO, true, 'bad_proxy_header', 'not_proxy_protocol'],
  ];
  for (const [label, bytes, proxyHeader, outcome, reason] of cases) {
    const { host, peer } = await reading(t, { proxyHeader });
    peer.write(bytes);
    await host.result();
    t.same(host.finished, { outcome, reason }, label);
  }
});

t.test('the client leaves: mid-hello or before a byte', async (t) => {
  const midway = await reading(t);
  midway.peer.end(HELLO.subarray(0, 20));
  await midway.host.result();
  t.same(midway.host.finished, { outcome: 'client_closed', reason: 'incomplete_hello' });

  const silent = await reading(t);
  silent.peer.end();
  await silent.host.result();
  t.same(silent.host.finished, { outcome: 'client_closed', reason: null });
});

t.test('no complete hello within the timeout', async (t) => {
  const { host, peer } = await reading(t, { timeout: 50 });
  peer.write(HELLO.subarray(0, 10));
  await host.result();
  t.same(host.finished, { outcome: 'hello_timeout', reason: null });
});

t.test('stop(): the reader lets go of the socket and its timer', async (t) => {
  const { accepted, peer } = await socketPair();
  t.teardown(() => {
    accepted.destroy();
    peer.destroy();
  });
  const before = { data: accepted.listenerCount('data'), end: accepted.listenerCount('end') };
  const host = new RecordingHost(accepted);
  host.reader = new PreambleReader(host, TLS_PREAMBLE, false, 50);
  host.reader.stop();
  t.same({ data: accepted.listenerCount('data'), end: accepted.listenerCount('end') }, before, 'its handlers are gone, the socket’s own remain');
  peer.write(HELLO);
  await sleep(150);
  t.equal(host.preamble, null, 'nothing reported after stop');
  t.equal(host.finished, null, 'and no timeout either');
});

/** A line protocol for the test: "NAME <name>\n"; anything else is answered "BAD\n"; slowness "SLOW\n". */
const LINE_PREAMBLE: PreambleProtocol = {
  parse(bytes) {
    const end = bytes.indexOf(0x0a);
    if (end < 0)
      return bytes.length > 64
        ? { status: 'invalid', outcome: 'bad_hello', reason: 'too_long', answer: Buffer.from('BAD\n') }
        : { status: 'incomplete', need: bytes.length + 1 };
    const line = String(bytes.subarray(0, end));
    if (!line.startsWith('NAME ')) return { status: 'invalid', outcome: 'bad_hello', reason: 'not_a_name', answer: Buffer.from('BAD\n') };
    return { status: 'complete', request: { serverName: line.slice(5), alpn: [], path: '/' } };
  },
  timeout: { outcome: 'hello_timeout', answer: Buffer.from('SLOW\n') },
  incomplete: 'incomplete_line',
};

t.test('another protocol: what it parses is the request, what it answers is sent before closing', async (t) => {
  const named = await reading(t, { protocol: LINE_PREAMBLE });
  named.peer.write('NAME app.test\nrest');
  await named.host.result();
  t.same(named.host.preamble?.request, { serverName: 'app.test', alpn: [], path: '/' });

  const bad = await reading(t, { protocol: LINE_PREAMBLE });
  bad.peer.write('HELLO\n');
  await bad.host.result();
  t.same(bad.host.finished, { outcome: 'bad_hello', reason: 'not_a_name' });
  t.equal(String(bad.host.answered), 'BAD\n', 'the protocol’s answer');

  const slow = await reading(t, { protocol: LINE_PREAMBLE, timeout: 50 });
  slow.peer.write('NAME');
  await slow.host.result();
  t.same(slow.host.finished, { outcome: 'hello_timeout', reason: null });
  t.equal(String(slow.host.answered), 'SLOW\n', 'the timeout answer');

  const gone = await reading(t, { protocol: LINE_PREAMBLE });
  gone.peer.end('NAM');
  await gone.host.result();
  t.same(gone.host.finished, { outcome: 'client_closed', reason: 'incomplete_line' }, 'the protocol names an incomplete message');
});
