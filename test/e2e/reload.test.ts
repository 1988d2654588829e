// Hot reload end to end through the compiled CLI, with real sockets and TLS at
// both ends: reloads under load (short connections at ~200/s, long-lived
// streams both ways checked by SHA-256) through in-place writes, atomic
// renames and a Kubernetes ConfigMap-style symlink swap; refused files (bad
// YAML, bad schema, a port that is taken); SIGHUP with --no-watch; removed
// listeners and changed backends keeping their open connections; changed
// timeouts applying to new connections only; `check` on the running file;
// and an atomic rename that keeps an older mtime (rsync -t).
//
// No timing is asserted (the suite runs on shared, sometimes slow machines):
// each change must become visible to new connections, and how long that took
// after the write is reported as a figure. Every wait is a hang guard.
import t from 'tap';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, readlink, rename, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { stringify } from 'yaml';
import { startTlsBackend, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { type Commit, ConfigMapVolume, commitTime } from '../helpers/configmap-volume.js';
import { runCli, startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';

/** The `t` handed to a subtest (assertions included). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const ca = await createCertificateAuthority();
/** One client context for every connection: building one per connection (parsing the CA) would cost more CPU than the handshake. */
const clientContext = tls.createSecureContext({ ca: ca.cert });
/** The names every test backend's certificate covers. */
const BACKEND_NAMES = ['*.example.com', '*.wild.example.com'];
/** Hang guards only: how soon a change shows is a figure (reported below, measured by `npm run bench`), not an assertion. */
const GUARD_MS = 30_000;
const POLL_GIVE_UP_MS = 30_000;

// ---------------------------------------------------------------------------
// Files: the three ways a config file changes.

async function tempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `sni-passthrough-reload-${label}-`));
}

/** A plain file, changed in place or saved atomically (temp file renamed over it). */
class PlainConfigFile {
  private renames = 0;
  constructor(readonly path: string) {}

  static async create(text: string): Promise<PlainConfigFile> {
    const file = new PlainConfigFile(join(await tempDir('file'), 'proxy.yaml'));
    await writeFile(file.path, text);
    return file;
  }

  async writeInPlace(text: string): Promise<Commit> {
    const commit = commitTime();
    await writeFile(this.path, text);
    return commit;
  }

  async writeAtomically(text: string): Promise<Commit> {
    const temporary = `${this.path}.${++this.renames}.tmp`;
    await writeFile(temporary, text);
    const commit = commitTime();
    await rename(temporary, this.path);
    return commit;
  }
}

// ---------------------------------------------------------------------------
// Clients.

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

interface Session {
  socket: tls.TLSSocket;
  identity: BackendIdentity;
  /** Bytes that arrived behind the identity line. */
  rest: Buffer;
  /** When the handshake with the backend completed (performance.now()). */
  securedAt: number;
}

/**
 * A verified TLS session through the proxy: resolves with the backend's
 * identity line, the socket paused (resume it to read on). The socket is
 * destroyed and the promise rejected when it fails or after `timeoutMs`.
 * `resume`: a TLS session to offer for resumption, and where to keep the next one.
 */
function openSession(
  address: string,
  servername: string,
  timeoutMs = GUARD_MS,
  resume?: { session: Buffer | null; keep(session: Buffer): void },
): Promise<Session> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: portOf(address),
      servername,
      secureContext: clientContext,
      ...(resume?.session ? { session: resume.session } : {}),
    });
    if (resume) socket.on('session', (session: Buffer) => resume.keep(session));
    let pending = Buffer.alloc(0);
    let securedAt = NaN;
    socket.once('secureConnect', () => (securedAt = performance.now()));
    const timer = setTimeout(() => finish(new Error(`no identity line from ${address} (${servername}) within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      const end = pending.indexOf(10);
      if (end < 0) return;
      let identity: BackendIdentity;
      try {
        identity = JSON.parse(pending.subarray(0, end).toString('utf8')) as BackendIdentity;
      } catch (error) {
        finish(error as Error);
        return;
      }
      finish(null, { socket, identity, rest: pending.subarray(end + 1), securedAt });
    };
    const onError = (error: Error): void => finish(error);
    const onEnd = (): void => finish(new Error(`connection ended before the identity line (got ${JSON.stringify(pending.toString())})`));
    const onClose = (): void => finish(new Error('connection closed before the identity line'));
    function finish(error: Error | null, session?: Session): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      if (error) {
        socket.on('error', () => {});
        socket.destroy();
        reject(error);
        return;
      }
      socket.pause();
      resolve(session!);
    }
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.on('close', onClose);
  });
}

/** TLS sessions the probes resume, by address and name (a ticket from another backend just gives a full handshake). */
const probeSessions = new Map<string, Buffer>();

/**
 * What a new connection to `address` with `servername` meets (the backend's
 * name, `alert`, `refused`, or `error:…`) and when it knew: the end of its
 * handshake with that backend (the identity line only confirms which one it
 * was), or the moment it was refused or got the alert.
 */
async function probeTimed(address: string, servername: string): Promise<{ answer: string; at: number }> {
  const key = `${address}/${servername}`;
  try {
    const { socket, identity, securedAt } = await openSession(address, servername, POLL_GIVE_UP_MS, {
      session: probeSessions.get(key) ?? null,
      keep: (session) => probeSessions.set(key, session),
    });
    socket.on('error', () => {});
    socket.destroy();
    return { answer: identity.sni === servername ? identity.backend : `error:backend saw SNI ${identity.sni}`, at: securedAt };
  } catch (error) {
    const at = performance.now();
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'ECONNREFUSED') return { answer: 'refused', at };
    if (/unrecognized.name/i.test(`${code} ${message}`)) return { answer: 'alert', at };
    return { answer: `error:${code ?? message}`, at };
  }
}

async function probe(address: string, servername: string): Promise<string> {
  return (await probeTimed(address, servername)).answer;
}

/** Resolves once `socket` has closed. */
function closed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** Writes `text` and resolves with what the backend echoes back (after the identity line). */
async function echo(socket: tls.TLSSocket, text: string): Promise<string> {
  socket.write(`${text}\n`);
  return guard(readLine(socket), GUARD_MS, `echo of ${text}`);
}

/** The client's address as the proxy logs it. */
function clientKey(socket: net.Socket): string {
  return `127.0.0.1:${socket.localPort}`;
}

/**
 * The `connection closed` line of the connection from `client` with `sni`. (A client port alone is not unique:
 * the kernel may give the same local port to connections to different listeners.)
 */
function connectionLog(proxy: ProxyProcess, client: string, sni: string, timeoutMs = GUARD_MS): Promise<LogLine> {
  return proxy.waitForLog((line) => line.msg === 'connection closed' && line.client === client && line.sni === sni, timeoutMs);
}

function reloadedLines(proxy: ProxyProcess): LogLine[] {
  return proxy.logs.filter((line) => line.msg === 'config reloaded');
}

function refusedLines(proxy: ProxyProcess): LogLine[] {
  return proxy.logs.filter((line) => line.msg.startsWith('config reload refused'));
}

function waitForGeneration(proxy: ProxyProcess, generation: number, timeoutMs = GUARD_MS): Promise<LogLine> {
  return proxy.waitForLog((line) => line.msg === 'config reloaded' && line.generation === generation, timeoutMs);
}

/** Lines of `text` (the line a YAML node appended at the end lands on is this plus one). */
function lineCount(text: string): number {
  return text.split('\n').length - 1;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** User + system CPU seconds of process `pid` so far (Linux /proc), or null. */
async function cpuSeconds(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 a second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/** The TCP ports process `pid` listens on (Linux /proc), or null where /proc cannot tell. */
async function listeningPorts(pid: number): Promise<number[] | null> {
  try {
    const inodes = new Set<string>();
    for (const fd of await readdir(`/proc/${pid}/fd`)) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const match = /^socket:\[(\d+)\]$/.exec(link);
      if (match) inodes.add(match[1]!);
    }
    const ports: number[] = [];
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      const text = await readFile(table, 'utf8').catch(() => '');
      for (const row of text.split('\n').slice(1)) {
        const columns = row.trim().split(/\s+/);
        if (columns[3] === '0A' && inodes.has(columns[9] ?? '')) ports.push(parseInt(columns[1]!.split(':')[1]!, 16));
      }
    }
    return ports.sort((a, b) => a - b);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// Load: short connections at a steady rate, long-lived streams both ways.

/** ~`rate` short TLS connections a second from a bounded pool of workers: connect, read the identity line, close. */
class ShortConnectionLoad {
  attempts = 0;
  succeeded = 0;
  /** Sessions that resumed a TLS session (an abbreviated handshake, as returning clients make). */
  resumed = 0;
  readonly failures: string[] = [];
  /** The last TLS session ticket per hostname: clients resume (as returning clients do), which saves CPU in this process. */
  private readonly sessions = new Map<string, Buffer>();
  private stopped = false;
  private readonly workers: Array<Promise<void>> = [];
  private startedAt = 0;
  private stoppedAt = 0;

  constructor(
    private readonly address: string,
    private readonly targets: ReadonlyArray<{ sni: string; backend: string }>,
    private readonly workerCount = 8,
    private readonly rate = 200,
  ) {}

  start(): void {
    this.startedAt = performance.now();
    for (let index = 0; index < this.workerCount; index++) this.workers.push(this.work(index));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
    this.stoppedAt = performance.now();
  }

  /** Connections per second achieved. */
  achievedRate(): number {
    return this.attempts / ((this.stoppedAt - this.startedAt) / 1000);
  }

  private async work(index: number): Promise<void> {
    const interval = (1000 * this.workerCount) / this.rate;
    // Spread the workers over one interval so the connections do not come in bursts of eight.
    await sleep((interval * index) / this.workerCount);
    let turn = index;
    while (!this.stopped) {
      const started = performance.now();
      const target = this.targets[turn++ % this.targets.length]!;
      this.attempts++;
      try {
        const { socket, identity } = await openSession(this.address, target.sni, GUARD_MS, {
          session: this.sessions.get(target.sni) ?? null,
          keep: (session) => this.sessions.set(target.sni, session),
        });
        if (socket.isSessionReused()) this.resumed++;
        socket.on('error', () => {});
        socket.destroy();
        if (identity.backend !== target.backend || identity.sni !== target.sni) {
          this.failures.push(`${target.sni}: answered by ${identity.backend} (SNI ${identity.sni}), expected ${target.backend}`);
        } else {
          this.succeeded++;
        }
      } catch (error) {
        const { code, message } = error as NodeJS.ErrnoException;
        this.failures.push(`${target.sni}: ${code ?? ''} ${message}`);
      }
      const wait = started + interval - performance.now();
      if (wait > 0) await sleep(wait);
    }
  }
}

const STREAM_CHUNK = 4 * 1024;
const STREAM_PAUSE_MS = 50;

/**
 * A long-lived TLS connection to an echo backend: writes seeded pseudo-random
 * chunks (xorshift32) with backpressure until told to finish, hashes what it
 * sends and what comes back.
 */
class LongStream {
  sent = 0;
  received = 0;
  error: string | null = null;
  readonly client: string;
  private readonly sentHash = createHash('sha256');
  private readonly receivedHash = createHash('sha256');
  private state: number;
  private stopping = false;
  private sending: Promise<void> | null = null;
  private readonly ended: Promise<void>;

  private constructor(
    readonly session: Session,
    seed: number,
  ) {
    const { socket } = session;
    this.state = seed >>> 0 || 0x9e3779b9;
    this.client = clientKey(socket);
    this.take(session.rest);
    socket.on('data', (chunk: Buffer) => this.take(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => (this.error ??= `${error.code ?? ''} ${error.message}`));
    this.ended = new Promise((resolve, reject) => {
      socket.once('end', () => resolve());
      socket.once('close', () => reject(new Error(`closed without an end after ${this.received} of ${this.sent} bytes (${this.error})`)));
    });
    this.ended.catch(() => {});
    socket.resume();
  }

  static async open(address: string, servername: string, seed: number): Promise<LongStream> {
    return new LongStream(await openSession(address, servername), seed);
  }

  get backend(): string {
    return this.session.identity.backend;
  }

  start(): void {
    this.sending = this.send();
  }

  /** Stops writing, half-closes, and waits for the echo to end. */
  async finish(): Promise<{ sent: number; received: number; sentSha256: string; receivedSha256: string }> {
    this.stopping = true;
    await this.sending;
    this.session.socket.end();
    await guard(this.ended, GUARD_MS, `the echo of ${this.client} to end`);
    await guard(closed(this.session.socket), GUARD_MS, `${this.client} to close`);
    return { sent: this.sent, received: this.received, sentSha256: this.sentHash.digest('hex'), receivedSha256: this.receivedHash.digest('hex') };
  }

  private take(chunk: Buffer): void {
    this.received += chunk.length;
    this.receivedHash.update(chunk);
  }

  private nextChunk(): Buffer {
    const chunk = Buffer.allocUnsafe(STREAM_CHUNK);
    let state = this.state;
    for (let index = 0; index < STREAM_CHUNK; index += 4) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      chunk.writeUInt32LE(state >>> 0, index);
    }
    this.state = state;
    return chunk;
  }

  private async send(): Promise<void> {
    const { socket } = this.session;
    while (!this.stopping) {
      if (socket.destroyed) {
        this.error ??= 'destroyed while sending';
        return;
      }
      const chunk = this.nextChunk();
      this.sentHash.update(chunk);
      this.sent += chunk.length;
      if (!socket.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
      }
      await sleep(STREAM_PAUSE_MS);
    }
  }
}

// ---------------------------------------------------------------------------
// The config the load test moves through.

interface Model {
  /** Routes that come and go: hostname → backend name. */
  hosts: Array<[string, string]>;
  /** moving.example.com's backends. */
  moving: string[];
  /** long.example.com's backend (the long-lived streams' route). */
  long: string;
  /** The second listener is there. */
  extra: boolean;
  defaultBackend: string | null;
}

/** Hostnames the short-connection load uses, with the backend each must reach in every generation. */
const STEADY_ROUTES = [
  { sni: 'stable.example.com', backend: 'A' },
  { sni: 'x.wild.example.com', backend: 'C' },
  { sni: 'y.wild.example.com', backend: 'C' },
];

function renderConfig(model: Model, backends: Record<string, TestBackend>): string {
  const at = (name: string): string => backends[name]!.address;
  const main: Record<string, unknown> = {
    name: 'main',
    listen: '127.0.0.1:0',
    routes: [
      { hostnames: ['stable.example.com'], backends: [at('A')] },
      { hostnames: ['*.wild.example.com'], backends: [at('C')] },
      { hostnames: ['long.example.com'], backends: [at(model.long)] },
      { hostnames: ['moving.example.com'], backends: model.moving.map(at) },
      ...model.hosts.map(([hostname, backend]) => ({ hostnames: [hostname], backends: [at(backend)] })),
    ],
  };
  if (model.defaultBackend) main.default = { backends: [at(model.defaultBackend)] };
  const listeners: unknown[] = [main];
  if (model.extra) listeners.push({ name: 'extra', listen: '127.0.0.1:0', routes: [{ hostnames: ['extra.example.com'], backends: [at('C')] }] });
  return stringify({ defaults: { connectTimeout: '2s', drainTimeout: '2s' }, listeners });
}

interface Expectation {
  listener: 'main' | 'extra';
  sni: string;
  /** A backend name, `alert` or `refused`. */
  expect: string;
}

/** What `expectation` must meet under `model` (the test's own account of the routing rules it relies on). */
function answerFor(model: Model, expectation: Expectation): string {
  if (expectation.listener === 'extra') return model.extra ? 'C' : 'refused';
  const exact: Record<string, string> = {
    'stable.example.com': 'A',
    'long.example.com': model.long,
    'moving.example.com': model.moving[0]!,
    ...Object.fromEntries(model.hosts),
  };
  if (exact[expectation.sni]) return exact[expectation.sni]!;
  if (expectation.sni.endsWith('.wild.example.com')) return 'C';
  return model.defaultBackend ?? 'alert';
}

interface Step {
  what: string;
  change(model: Model): void;
  /** New connections that show the change, each different from what it met before. */
  probes: Expectation[];
}

/** A bad file written in the middle of the load: [label, what to append to the running text, column of the error]. */
const INVALID_TAILS: Array<[string, string, number]> = [
  ['bad YAML', 'broken: : x\n', 9],
  ['unknown key', 'bogus: 1\n', 1],
];

function loadSteps(): Array<Step | 'invalid'> {
  const removeHost = (model: Model, hostname: string): void => {
    model.hosts = model.hosts.filter(([name]) => name !== hostname);
  };
  return [
    { what: 'add a hostname', change: (m) => m.hosts.push(['h1.example.com', 'B']), probes: [{ listener: 'main', sni: 'h1.example.com', expect: 'B' }] },
    { what: 'add the second listener', change: (m) => (m.extra = true), probes: [{ listener: 'extra', sni: 'extra.example.com', expect: 'C' }] },
    { what: 'add backend D (moving → D)', change: (m) => (m.moving = ['D']), probes: [{ listener: 'main', sni: 'moving.example.com', expect: 'D' }] },
    {
      what: 'remove a hostname (to default), add another',
      change: (m) => {
        removeHost(m, 'h1.example.com');
        m.hosts.push(['h4.example.com', 'D']);
      },
      probes: [
        { listener: 'main', sni: 'h1.example.com', expect: 'A' },
        { listener: 'main', sni: 'h4.example.com', expect: 'D' },
      ],
    },
    { what: "move the long streams' route to C", change: (m) => (m.long = 'C'), probes: [{ listener: 'main', sni: 'long.example.com', expect: 'C' }] },
    { what: 'remove the second listener', change: (m) => (m.extra = false), probes: [{ listener: 'extra', sni: 'extra.example.com', expect: 'refused' }] },
    { what: 'remove the default', change: (m) => (m.defaultBackend = null), probes: [{ listener: 'main', sni: 'h1.example.com', expect: 'alert' }] },
    'invalid',
    {
      what: 'remove backend D and a hostname',
      change: (m) => {
        m.moving = ['B'];
        removeHost(m, 'h4.example.com');
      },
      probes: [
        { listener: 'main', sni: 'moving.example.com', expect: 'B' },
        { listener: 'main', sni: 'h4.example.com', expect: 'alert' },
      ],
    },
    { what: 'add the second listener again', change: (m) => (m.extra = true), probes: [{ listener: 'extra', sni: 'extra.example.com', expect: 'C' }] },
    { what: 'add a default (backend D again)', change: (m) => (m.defaultBackend = 'D'), probes: [{ listener: 'main', sni: 'h4.example.com', expect: 'D' }] },
    { what: 'add a hostname', change: (m) => m.hosts.push(['h11.example.com', 'C']), probes: [{ listener: 'main', sni: 'h11.example.com', expect: 'C' }] },
    'invalid',
    { what: "move the long streams' route to A", change: (m) => (m.long = 'A'), probes: [{ listener: 'main', sni: 'long.example.com', expect: 'A' }] },
    {
      what: 'remove the second listener again',
      change: (m) => (m.extra = false),
      probes: [{ listener: 'extra', sni: 'extra.example.com', expect: 'refused' }],
    },
    {
      what: 'remove a hostname, move a route to C',
      change: (m) => {
        removeHost(m, 'h11.example.com');
        m.moving = ['C'];
      },
      probes: [
        { listener: 'main', sni: 'h11.example.com', expect: 'D' },
        { listener: 'main', sni: 'moving.example.com', expect: 'C' },
      ],
    },
    {
      what: 'default to A, several hostnames at once',
      change: (m) => {
        m.defaultBackend = 'A';
        m.hosts.push(['h15a.example.com', 'B'], ['h15b.example.com', 'C']);
      },
      probes: [
        { listener: 'main', sni: 'h11.example.com', expect: 'A' },
        { listener: 'main', sni: 'h15a.example.com', expect: 'B' },
        { listener: 'main', sni: 'h15b.example.com', expect: 'C' },
      ],
    },
  ];
}

/** Figures gathered over the load test, printed at its end. */
const visibilityMs: number[] = [];
const appliedMs: number[] = [];
const loadFigures: string[] = [];

/**
 * Starts `round()` every 50 ms (at most 3 at a time) until one satisfies
 * `done`; resolves with how long after `since` that round showed it (`shownAt`;
 * Infinity after `giveUpMs`), its answers, and `settled`, for when every round started has ended.
 */
async function pollUntil<T>(
  round: () => Promise<T>,
  done: (answers: T) => boolean,
  shownAt: (answers: T) => number,
  since: number,
  giveUpMs = POLL_GIVE_UP_MS,
): Promise<{ visibleAfter: number; answers: T | null; settled: Promise<unknown> }> {
  const rounds: Array<Promise<void>> = [];
  let visibleAfter = Infinity;
  let answers: T | null = null;
  let inFlight = 0;
  while (visibleAfter === Infinity && performance.now() - since < giveUpMs) {
    if (inFlight < 3) {
      inFlight++;
      rounds.push(
        round().then((result) => {
          inFlight--;
          if (answers === null || !done(answers)) answers = result;
          // Rounds overlap: the earliest to show it counts.
          if (done(result)) visibleAfter = Math.min(visibleAfter, shownAt(result) - since);
        }),
      );
    }
    await sleep(50);
  }
  return { visibleAfter, answers, settled: Promise.all(rounds) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * One load phase on one proxy: the steps' valid writes and invalid files,
 * each through `write` (which says what kind of write it made), while the
 * short connections and the long streams run.
 */
async function loadPhase(
  t: Test,
  options: {
    label: string;
    steps: Array<Step | 'invalid'>;
    backends: Record<string, TestBackend>;
    initial: Model;
    createFile(text: string): Promise<{ path: string }>;
    /** Some writes are in place (not atomic), so the proxy may catch the file empty. */
    writesInPlace: boolean;
    /** Writes `text` the phase's way; says which way and when it took effect. */
    write(index: number, text: string): Promise<{ kind: string; commit: Commit }>;
  },
): Promise<void> {
  const { backends, label } = options;
  const model: Model = structuredClone(options.initial);
  let text = renderConfig(model, backends);
  const file = await options.createFile(text);
  const proxy = await startProxy(null, { configFile: file.path });
  t.teardown(() => proxy.stop('SIGKILL'));
  const main = proxy.address('main');
  let generation = 1;

  // The long-lived streams, routed before any reload.
  const streams: LongStream[] = [];
  streams.push(...(await Promise.all(Array.from({ length: 20 }, (_, index) => LongStream.open(main, 'long.example.com', 1000 + index)))));
  t.same(
    streams.map((stream) => stream.backend),
    streams.map(() => model.long),
    `${label}: the 20 long streams are routed to ${model.long}`,
  );
  for (const stream of streams) stream.start();
  let extraStream: LongStream | null = null;

  const load = new ShortConnectionLoad(main, STEADY_ROUTES);
  const cpuBefore = { test: process.cpuUsage(), proxy: await cpuSeconds(proxy.child.pid!), at: performance.now() };
  load.start();

  const addressOf = (expectation: Expectation, forGeneration: number): string | null => {
    if (expectation.listener === 'main') return main;
    // A listener added by this reload: its port comes from the reload's `bound` map.
    const line = proxy.logs.find((entry) => entry.msg === 'config reloaded' && entry.generation === forGeneration);
    const bound = (line?.bound as Record<string, string> | undefined)?.extra;
    if (bound) return bound;
    return expectation.expect === 'refused' ? proxy.address('extra') : null;
  };

  /** Probe rounds still running when their step was done. */
  const stragglers: Array<Promise<unknown>> = [];
  let writes = 0;
  let invalid = 0;
  let lastWriteAt = -Infinity;
  /** Writes at least 300 ms apart. */
  const spaceOut = async (): Promise<void> => {
    const spacing = lastWriteAt + 300 - performance.now();
    if (spacing > 0) await sleep(spacing);
  };
  const probeRound = (probes: Expectation[], forGeneration: number): Promise<Array<{ answer: string; at: number } | null>> =>
    Promise.all(
      probes.map(async (expectation) => {
        const address = addressOf(expectation, forGeneration);
        return address === null ? null : probeTimed(address, expectation.sni);
      }),
    );
  for (const step of options.steps) {
    if (step === 'invalid') {
      await spaceOut();
      const [what, tail, col] = INVALID_TAILS[invalid++ % INVALID_TAILS.length]!;
      const badText = text + tail;
      const refusedBefore = refusedLines(proxy).length;
      lastWriteAt = performance.now();
      const { kind } = await options.write(writes++, badText);
      const refused = await guard(
        proxy.waitForLog((line) => line.msg.startsWith('config reload refused') && refusedLines(proxy).indexOf(line) >= refusedBefore),
        GUARD_MS,
        `${label}: the ${what} file to be refused`,
      );
      const position = `${lineCount(text) + 1}:${col}`;
      t.match(
        String(refused.error),
        new RegExp(`^${escapeRegExp(file.path)}:${position}: `),
        `${label}: ${what} (${kind}) refused as FILE:${position}: … (${refused.error})`,
      );
      t.equal(refused.generation, generation, `${label}: ${what}: still generation ${generation}`);
      // Nothing disturbed: the routes of the running generation still answer (the load checks its own).
      t.equal(await probe(main, 'long.example.com'), model.long, `${label}: after the ${what} file, long.example.com still reaches ${model.long}`);
      continue;
    }

    // Each probe must meet something else before the change (the previous step's probes showed the state it starts from).
    const before = step.probes.map((expectation) => answerFor(model, expectation));
    step.change(model);
    t.ok(
      step.probes.every((expectation, index) => before[index] !== expectation.expect && answerFor(model, expectation) === expectation.expect),
      `${label}: "${step.what}" changes what every probe meets (${before.join(', ')} before)`,
    );
    text = renderConfig(model, backends);
    await spaceOut();
    lastWriteAt = performance.now();
    const { kind, commit } = await options.write(writes++, text);
    generation++;

    // Poll with new connections until every probe shows the change: a new round every 50 ms, not waiting for
    // the last to end. A round shows it once its last probe has met the new state (finished its handshake with
    // the new backend, or was refused, or got the alert).
    const target = generation;
    const { visibleAfter, answers, settled } = await pollUntil(
      () => probeRound(step.probes, target),
      (round) => round.every((result, index) => result?.answer === step.probes[index]!.expect),
      (round) => Math.max(...round.map((result) => result!.at)),
      commit.at,
    );
    stragglers.push(settled);
    const expected = step.probes.map((probeCase) => `${probeCase.sni}@${probeCase.listener}→${probeCase.expect}`).join(', ');
    const line = await guard(waitForGeneration(proxy, generation), GUARD_MS, `${label}: config reloaded line for generation ${generation}`);
    // For the record: when the proxy says it applied the change (its log line's timestamp).
    const applied = Date.parse(String(line.time)) - commit.wallClock;
    t.ok(
      Number.isFinite(visibleAfter),
      `${label} #${generation} ${step.what} (${kind}): ${expected} visible ${Math.round(visibleAfter)} ms after the write ` +
        `(last answers ${(answers ?? []).map((result) => result?.answer).join(', ')}; applied per the proxy's log ${applied} ms after)`,
    );
    if (Number.isFinite(visibleAfter)) visibilityMs.push(visibleAfter);
    appliedMs.push(applied);
    t.equal(line.trigger, 'watch', `${label} #${generation}: reloaded by the watcher`);
    if (step.probes.some((probeCase) => probeCase.listener === 'extra')) {
      if (model.extra) {
        t.same(line.added, ['extra'], `${label} #${generation}: the second listener is reported added`);
        // A long stream through the second listener, opened while it exists, must outlive its removal.
        if (extraStream === null) {
          extraStream = await LongStream.open(String((line.bound as Record<string, string>).extra), 'extra.example.com', 4242);
          t.equal(extraStream.backend, 'C', `${label}: the stream through the second listener reached C`);
          extraStream.start();
        }
      } else {
        t.same(line.removed, ['extra'], `${label} #${generation}: the second listener is reported removed`);
      }
    }
    t.ok((line.kept as string[]).includes('main'), `${label} #${generation}: main is kept (same socket)`);
  }
  t.ok(extraStream !== null, `${label}: a stream went through the second listener`);
  await guard(Promise.all(stragglers), GUARD_MS, `${label}: the last probes to end`);

  await load.stop();
  const rate = load.achievedRate();
  const testCpu = process.cpuUsage(cpuBefore.test);
  const cpu = {
    seconds: (performance.now() - cpuBefore.at) / 1000,
    test: (testCpu.user + testCpu.system) / 1e6,
    proxy: ((await cpuSeconds(proxy.child.pid!)) ?? NaN) - (cpuBefore.proxy ?? NaN),
  };
  t.equal(
    load.failures.length,
    0,
    `${label}: no short connection failed (${load.succeeded} of ${load.attempts} ok, ${rate.toFixed(0)}/s): ${load.failures.slice(0, 5).join('; ')}`,
  );
  t.ok(load.succeeded > 0, `${label}: the short-connection load ran`);
  t.equal(reloadedLines(proxy).length, generation - 1, `${label}: exactly one reload per valid write (${generation - 1})`);
  // An in-place write is not atomic: the proxy may read the file between its truncation and the write and refuse
  // the empty file (keeping the running config), then apply the finished one. Nothing else may be refused.
  const unexpected = refusedLines(proxy)
    .filter((line) => !(options.writesInPlace && /: the config is empty/.test(String(line.error))))
    .map((line) => String(line.error));
  t.equal(unexpected.length, invalid, `${label}: exactly the ${invalid} invalid files were refused (${unexpected.join('; ')})`);
  const emptyReads = refusedLines(proxy).length - unexpected.length;
  const steadySni = new Set(STEADY_ROUTES.map((route) => route.sni));
  const steadyLogs = proxy.connectionLogs().filter((line) => steadySni.has(String(line.sni)));
  t.same(
    steadyLogs.filter((line) => line.outcome !== 'ok').map((line) => `${line.sni} ${line.outcome} ${line.reason}`),
    [],
    `${label}: every short connection logged outcome ok (${steadyLogs.length} lines)`,
  );

  // The long streams: every byte back, unaltered; one `ok` log line each.
  const allStreams = [...streams, ...(extraStream ? [extraStream] : [])];
  const results = await Promise.all(allStreams.map((stream) => stream.finish()));
  let totalSent = 0;
  let totalReceived = 0;
  results.forEach((result, index) => {
    const stream = allStreams[index]!;
    totalSent += result.sent;
    totalReceived += result.received;
    t.ok(result.sent > 0, `${label}: stream ${index} (${stream.backend}) sent data`);
    t.equal(result.received, result.sent, `${label}: stream ${index}: ${result.received} bytes back of ${result.sent}`);
    t.equal(result.receivedSha256, result.sentSha256, `${label}: stream ${index}: SHA-256 of the echo matches what was sent`);
    t.equal(stream.error, null, `${label}: stream ${index}: no socket error`);
  });
  t.equal(totalReceived, totalSent, `${label}: ${totalSent} bytes sent on the long streams, all received`);
  for (const [index, stream] of allStreams.entries()) {
    // This stream's line: its client address and name, and (unlike any short connection that may have had the same
    // local port towards another listener) all the bytes it sent.
    const sent = results[index]!.sent;
    const mine = (line: LogLine): boolean =>
      line.msg === 'connection closed' && line.client === stream.client && line.sni === stream.session.identity.sni && Number(line.bytesFromClient) >= sent;
    const log = await guard(proxy.waitForLog(mine), GUARD_MS, `${label}: log line of stream ${index}`);
    t.equal(proxy.logs.filter(mine).length, 1, `${label}: stream ${index} logged exactly one connection closed line`);
    t.equal(log.outcome, 'ok', `${label}: stream ${index} closed with outcome ok (${log.outcome} ${log.reason})`);
    t.equal(log.backend, backends[stream.backend]!.address, `${label}: stream ${index} stayed on backend ${stream.backend}`);
    if (stream === extraStream) t.equal(log.listener, 'extra', `${label}: the stream through the removed listener ran to its end`);
  }
  t.equal(proxy.logs.filter((line) => /uncaught/i.test(line.msg)).length, 0, `${label}: no uncaught exception`);
  loadFigures.push(
    `${label}: ${load.attempts} short connections (${load.succeeded} ok, ${load.resumed} resumed, ${load.failures.length} failed, ${rate.toFixed(0)}/s), ` +
      `${allStreams.length} long streams (${(totalSent / 1024 / 1024).toFixed(1)} MiB each way), ${generation - 1} reloads, ${invalid} refused (+${emptyReads} empty mid-write reads); ` +
      `CPU over ${cpu.seconds.toFixed(1)} s: test process ${cpu.test.toFixed(1)} s, proxy ${cpu.proxy.toFixed(1)} s`,
  );
  t.equal(await guard(proxy.stop(), GUARD_MS, 'proxy to stop'), 0, `${label}: the proxy stops cleanly`);
}

// ---------------------------------------------------------------------------

t.test('under load: 30 reloads through in-place writes, atomic renames and ConfigMap swaps', async (t) => {
  const backends: Record<string, TestBackend> = {};
  for (const name of ['A', 'B', 'C', 'D']) backends[name] = await startTlsBackend(ca, name, { dnsNames: BACKEND_NAMES });
  t.teardown(() => Promise.all(Object.values(backends).map((backend) => backend.close())));
  const initial: Model = { hosts: [], moving: ['A'], long: 'B', extra: false, defaultBackend: 'A' };
  const steps = loadSteps();
  t.equal(steps.filter((step) => step !== 'invalid').length, 15, '15 valid changes per phase');
  const started = performance.now();

  // A plain file: in-place writes and atomic renames, alternately.
  let plain: PlainConfigFile;
  await t.test('plain file: in-place writes and atomic renames', (t) =>
    loadPhase(t, {
      label: 'file',
      writesInPlace: true,
      steps,
      backends,
      initial,
      createFile: async (text) => (plain = await PlainConfigFile.create(text)),
      async write(index, text) {
        if (index % 2 === 0) return { kind: 'in place', commit: await plain.writeInPlace(text) };
        return { kind: 'atomic rename', commit: await plain.writeAtomically(text) };
      },
    }),
  );

  // A ConfigMap volume: the path is a symlink through `..data`, swapped. (An atomic rename over the path would
  // replace the symlink itself, so each layout gets its own proxy.)
  let volume: ConfigMapVolume;
  await t.test('ConfigMap volume: ..data symlink swaps', (t) =>
    loadPhase(t, {
      label: 'configmap',
      writesInPlace: false,
      steps,
      backends,
      initial,
      createFile: async (text) => (volume = await ConfigMapVolume.create(text, { prefix: 'sni-passthrough-reload-configmap-' })),
      async write(_index, text) {
        return { kind: 'symlink swap', commit: await volume.swap(text) };
      },
    }),
  );

  const total = ((performance.now() - started) / 1000).toFixed(1);
  t.comment(`load phases took ${total} s`);
  for (const figure of loadFigures) t.comment(figure);
  const rounded = visibilityMs.map((value) => Math.round(value));
  t.comment(
    `reload visibility over ${rounded.length} changes: max ${Math.max(...rounded)} ms, median ${Math.round(median(visibilityMs))} ms, all: ${rounded.join(' ')}`,
  );
  t.comment(`applied (proxy log time - write): max ${Math.max(...appliedMs)} ms, median ${Math.round(median(appliedMs))} ms, all: ${appliedMs.join(' ')}`);
});

t.test('invalid YAML and an invalid schema at reload: refused at the right line, old routes keep working', async (t) => {
  const a = await startTlsBackend(ca, 'A');
  const b = await startTlsBackend(ca, 'B');
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const config = (backend: TestBackend): string =>
    [
      'defaults:',
      '  drainTimeout: 2s',
      'listeners:',
      '  - name: main',
      '    listen: 127.0.0.1:0',
      '    routes:',
      '      - hostnames: [a.example.com]',
      `        backends: [${backend.address}]`,
      '',
    ].join('\n');
  const file = await PlainConfigFile.create(config(a));
  const proxy = await startProxy(null, { configFile: file.path });
  t.teardown(() => proxy.stop('SIGKILL'));
  const main = proxy.address('main');
  t.equal(await probe(main, 'a.example.com'), 'A', 'generation 1 routes a.example.com to A');

  const cases: Array<{ what: string; text: string; position: string; message: RegExp }> = [
    {
      what: 'invalid YAML (a tab as indentation)',
      // Also points a.example.com at B: nothing of it may apply.
      text: config(b).replace('    routes:', '\troutes:'),
      position: '6:1',
      message: /tab/i,
    },
    {
      what: 'invalid YAML (nested mapping in a compact one)',
      text: config(b).replace('    routes:', '    routes: : x'),
      position: '6:13',
      message: /nested mappings/i,
    },
    {
      what: 'an unknown key',
      text: config(b).replace('    routes:', '    bogus: 1\n    routes:'),
      position: '6:5',
      message: /unknown key "bogus"/,
    },
    {
      what: 'a bad duration',
      text: config(b).replace('    routes:', '    idleTimeout: 5 parsecs\n    routes:'),
      position: '6:18',
      message: /invalid duration/,
    },
    {
      what: 'the same hostname twice (the error points at the second)',
      text: config(b).replace('[a.example.com]', '[a.example.com, b.example.com, a.example.com]'),
      position: '7:51',
      message: /hostname "a.example.com" appears more than once/,
    },
  ];
  for (const [index, testCase] of cases.entries()) {
    const refusedBefore = refusedLines(proxy).length;
    await (index % 2 === 0 ? file.writeInPlace(testCase.text) : file.writeAtomically(testCase.text));
    await waitFor(() => refusedLines(proxy).length > refusedBefore, `${testCase.what} to be refused`, GUARD_MS);
    const refused = refusedLines(proxy)[refusedBefore]!;
    const error = String(refused.error);
    t.match(error, new RegExp(`^${escapeRegExp(file.path)}:${testCase.position}: `), `${testCase.what}: the error names ${testCase.position} (${error})`);
    t.match(error, testCase.message, `${testCase.what}: and says what is wrong`);
    t.equal(refused.generation, 1, `${testCase.what}: still generation 1`);
    t.match(refused.msg, /still running generation 1/, `${testCase.what}: the line says the old config runs on`);
    t.equal(await probe(main, 'a.example.com'), 'A', `${testCase.what}: a.example.com still reaches A`);
  }
  t.equal(reloadedLines(proxy).length, 0, 'no refused file was applied');

  // The proxy still reloads a valid file afterwards, as generation 2.
  await file.writeInPlace(config(b));
  const line = await waitForGeneration(proxy, 2);
  t.same(
    { kept: line.kept, changed: line.changed, added: line.added, removed: line.removed },
    { kept: ['main'], changed: ['main'], added: [], removed: [] },
    'the valid file is generation 2: main kept, its routes changed',
  );
  t.equal(await probe(main, 'a.example.com'), 'B', 'a.example.com now reaches B');
});

t.test("a reload whose new listener's port is taken changes nothing", async (t) => {
  const a = await startTlsBackend(ca, 'A');
  const b = await startTlsBackend(ca, 'B');
  const blocker = net.createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const takenPort = (blocker.address() as net.AddressInfo).port;
  t.teardown(async () => {
    await Promise.all([a.close(), b.close()]);
    await new Promise((resolve) => blocker.close(resolve));
  });
  const route = (backend: TestBackend): unknown => ({ hostnames: ['a.example.com'], backends: [backend.address] });
  const file = await PlainConfigFile.create(
    stringify({ defaults: { drainTimeout: '2s' }, listeners: [{ name: 'main', listen: '127.0.0.1:0', routes: [route(a)] }] }),
  );
  const proxy = await startProxy(null, { configFile: file.path });
  t.teardown(() => proxy.stop('SIGKILL'));
  const main = proxy.address('main');
  const portsBefore = await listeningPorts(proxy.child.pid!);

  // A fresh port-0 listener (bound first), main re-routed, and a listener on the taken port.
  await file.writeAtomically(
    stringify({
      defaults: { drainTimeout: '2s' },
      listeners: [
        { name: 'fresh', listen: '127.0.0.1:0', routes: [route(b)] },
        { name: 'main', listen: '127.0.0.1:0', routes: [route(b)] },
        { name: 'taken', listen: `127.0.0.1:${takenPort}`, routes: [route(b)] },
      ],
    }),
  );
  const refused = await proxy.waitForLog((line) => line.msg.startsWith('config reload refused'));
  t.match(String(refused.error), `127.0.0.1:${takenPort}`, `the error names the address (${refused.error})`);
  t.match(String(refused.error), /taken|address already in use/i, 'and says it is in use');
  t.equal(refused.generation, 1, 'the generation does not advance');
  t.equal(reloadedLines(proxy).length, 0, 'no reload was applied');
  t.equal(await probe(main, 'a.example.com'), 'A', 'the old route still answers (main not re-routed)');
  if (portsBefore === null) {
    t.comment('no /proc: cannot check the listening sockets');
  } else {
    t.same(
      await listeningPorts(proxy.child.pid!),
      portsBefore,
      `the proxy listens on exactly what it did before (${portsBefore.join(', ')}): the fresh listener was closed again`,
    );
  }

  // Once the port is free again, saving the same file again applies it, as generation 2.
  await new Promise((resolve) => blocker.close(resolve));
  await file.writeInPlace(await readFile(file.path, 'utf8'));
  const line = await waitForGeneration(proxy, 2);
  t.same([...(line.added as string[])].sort(), ['fresh', 'taken'], 'after the port is freed, the same file re-saved applies: fresh and taken added');
  t.equal(await probe(main, 'a.example.com'), 'B', 'and main re-routed');
  t.equal(await probe(proxy.address('taken'), 'a.example.com'), 'B', 'the formerly taken port now serves');
});

t.test('an atomic rename of a same-size file with an older mtime (rsync -t, cp -p then mv, tar) is picked up', async (t) => {
  const a = await startTlsBackend(ca, 'A');
  const b = await startTlsBackend(ca, 'B');
  t.teardown(() => Promise.all([a.close(), b.close()]));
  // Both files the same length: the port numbers are padded by a comment when their lengths differ.
  const config = (backend: TestBackend): string =>
    `${stringify({
      defaults: { drainTimeout: '2s' },
      listeners: [{ name: 'main', listen: '127.0.0.1:0', routes: [{ hostnames: ['a.example.com'], backends: [backend.address] }] }],
    })}#${' '.repeat(Math.max(a.address.length, b.address.length) - backend.address.length)}\n`;
  const file = await PlainConfigFile.create(config(a));
  t.equal(config(b).length, config(a).length, 'the new file has the same size as the running one');
  const proxy = await startProxy(null, { configFile: file.path });
  t.teardown(() => proxy.stop('SIGKILL'));
  const main = proxy.address('main');
  t.equal(await probe(main, 'a.example.com'), 'A', 'generation 1 routes a.example.com to A');

  // A deploy tool's atomic update: the new content in a temp file, its mtime set to the source's (an hour ago), renamed over.
  const temporary = `${file.path}.rsync-tmp`;
  await writeFile(temporary, config(b));
  const anHourAgo = new Date(Date.now() - 3_600_000);
  await utimes(temporary, anHourAgo, anHourAgo);
  const commit = commitTime();
  await rename(temporary, file.path);
  const { visibleAfter, settled } = await pollUntil(
    () => probeTimed(main, 'a.example.com'),
    (result) => result.answer === 'B',
    (result) => result.at,
    commit.at,
  );
  await settled;
  t.ok(
    Number.isFinite(visibleAfter),
    `a.example.com reaches B after the rename (${visibleAfter === Infinity ? `not within ${POLL_GIVE_UP_MS} ms` : `${Math.round(visibleAfter)} ms`})`,
  );
  // The reload's log line may reach us after the route does (the proxy's log is flushed every 100 ms).
  await waitForGeneration(proxy, 2);
  t.equal(reloadedLines(proxy).length, 1, 'one reload');
});

t.test('SIGHUP reloads with --no-watch; a file change alone does not', async (t) => {
  const a = await startTlsBackend(ca, 'A');
  const b = await startTlsBackend(ca, 'B');
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const config = (backend: TestBackend): string =>
    stringify({
      defaults: { drainTimeout: '2s' },
      listeners: [{ name: 'main', listen: '127.0.0.1:0', routes: [{ hostnames: ['a.example.com'], backends: [backend.address] }] }],
    });
  const file = await PlainConfigFile.create(config(a));
  const proxy = await startProxy(null, { configFile: file.path, args: ['--no-watch'] });
  t.teardown(() => proxy.stop('SIGKILL'));
  const ready = await proxy.waitForLog((line) => line.msg === 'ready');
  t.equal(ready.watch, false, 'ready says it does not watch');
  const main = proxy.address('main');

  await file.writeInPlace(config(b));
  await sleep(1_000);
  t.equal(await probe(main, 'a.example.com'), 'A', 'a second after the write, the old route still answers');
  t.equal(proxy.logs.filter((line) => /^config (reloaded|unchanged|reload refused)/.test(line.msg)).length, 0, 'and no reload line appeared');

  proxy.child.kill('SIGHUP');
  const line = await waitForGeneration(proxy, 2);
  t.equal(line.trigger, 'signal', 'SIGHUP reloads (trigger signal)');
  t.equal(await probe(main, 'a.example.com'), 'B', 'the new route answers');
  t.equal(proxy.child.exitCode, null, 'the proxy is still running');
});

t.test('a removed listener stops accepting at once; routed connections keep their backend', async (t) => {
  const a = await startTlsBackend(ca, 'A');
  const b = await startTlsBackend(ca, 'B');
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const config = (withSecond: boolean, yBackend: TestBackend): string =>
    stringify({
      defaults: { drainTimeout: '2s' },
      listeners: [
        { name: 'main', listen: '127.0.0.1:0', routes: [{ hostnames: ['y.example.com'], backends: [yBackend.address] }] },
        ...(withSecond ? [{ name: 'second', listen: '127.0.0.1:0', routes: [{ hostnames: ['x.example.com'], backends: [a.address] }] }] : []),
      ],
    });
  const file = await PlainConfigFile.create(config(true, a));
  const proxy = await startProxy(null, { configFile: file.path });
  t.teardown(() => proxy.stop('SIGKILL'));
  const main = proxy.address('main');
  const second = proxy.address('second');

  const throughSecond = await connectTls({ port: portOf(second), servername: 'x.example.com', ca: ca.cert });
  const routedToA = await connectTls({ port: portOf(main), servername: 'y.example.com', ca: ca.cert });
  t.equal((JSON.parse(await readLine(throughSecond)) as BackendIdentity).backend, 'A', 'the connection through second reached A');
  t.equal((JSON.parse(await readLine(routedToA)) as BackendIdentity).backend, 'A', 'y.example.com reached A');

  await file.writeAtomically(config(false, b));
  const line = await waitForGeneration(proxy, 2);
  t.same(line.removed, ['second'], 'second is removed');
  t.same(line.changed, ['main'], "main's route changed");
  t.equal(await probe(second, 'x.example.com'), 'refused', 'the first new connection to the removed listener is refused');
  t.equal(await probe(main, 'y.example.com'), 'B', 'new connections to y.example.com reach B');

  t.equal(await echo(throughSecond, 'still here'), 'still here', 'the connection through the removed listener goes on');
  t.equal(await echo(routedToA, 'still A'), 'still A', 'the connection routed to A goes on');
  await sleep(300);
  t.equal(await echo(throughSecond, 'later'), 'later', 'and on');
  t.equal(await echo(routedToA, 'later'), 'later', 'and on');

  for (const [socket, listener] of [
    [throughSecond, 'second'],
    [routedToA, 'main'],
  ] as const) {
    const client = clientKey(socket);
    socket.end();
    await guard(closed(socket), GUARD_MS, `${listener} connection to close`);
    const log = await connectionLog(proxy, client, listener === 'second' ? 'x.example.com' : 'y.example.com');
    t.match(log, { listener, backend: a.address, outcome: 'ok' }, `the ${listener} connection ended ok, on A all along`);
  }
});

t.test('changed timeouts apply to new connections only', async (t) => {
  const a = await startTlsBackend(ca, 'A');
  t.teardown(() => a.close());
  const config = (idleTimeout: string): string =>
    stringify({
      defaults: { drainTimeout: '2s', idleTimeout },
      listeners: [{ name: 'main', listen: '127.0.0.1:0', routes: [{ hostnames: ['a.example.com'], backends: [a.address] }] }],
    });
  const file = await PlainConfigFile.create(config('0'));
  const proxy = await startProxy(null, { configFile: file.path });
  t.teardown(() => proxy.stop('SIGKILL'));
  const port = proxy.port('main');
  const open = async (): Promise<{ socket: tls.TLSSocket; client: string }> => {
    const socket = await connectTls({ port, servername: 'a.example.com', ca: ca.cert });
    await guard(readLine(socket), GUARD_MS, 'identity line');
    socket.on('error', () => {});
    return { socket, client: clientKey(socket) };
  };
  const isClosed = (client: string): boolean => proxy.connectionLogs().some((line) => line.client === client);

  const neverIdle = await open(); // generation 1: no idle timeout

  // Lowered: from never to 1 s.
  await file.writeInPlace(config('1s'));
  await waitForGeneration(proxy, 2);
  const newShort = await open(); // left idle
  const busyShort = await open(); // kept busy until the timeout is raised again
  let busy = true;
  const keepBusy = (async () => {
    while (busy) {
      busyShort.socket.write('.');
      await sleep(100);
    }
  })();

  // Raised: from 1 s to 1 h.
  await file.writeAtomically(config('1h'));
  await waitForGeneration(proxy, 3);
  const newLong = await open();
  busy = false;
  await keepBusy;
  t.notOk(isClosed(busyShort.client), 'the busy connection opened under 1s was still open when the timeout was raised');
  t.notOk(isClosed(neverIdle.client), 'the connection opened before any timeout is open');

  const newShortLog = await connectionLog(proxy, newShort.client, 'a.example.com');
  t.equal(newShortLog.outcome, 'idle_timeout', 'a connection opened after idleTimeout was lowered to 1s is closed when idle');
  const busyShortLog = await connectionLog(proxy, busyShort.client, 'a.example.com');
  t.equal(busyShortLog.outcome, 'idle_timeout', 'the one kept busy, once idle, is closed by its own 1s idle timeout, not the new 1h');
  await guard(Promise.all([closed(newShort.socket), closed(busyShort.socket)]), GUARD_MS, 'the idle connections to close');

  // Well past 1 s of idleness for both: the connection from before any timeout and the one opened under 1 h are alive.
  await sleep(1_200);
  t.equal(await echo(neverIdle.socket, 'old'), 'old', 'the connection opened with no idle timeout is still open');
  t.equal(await echo(newLong.socket, 'new'), 'new', 'the connection opened under 1h is still open');
  t.equal(proxy.connectionLogs().length, 2, 'only the two 1s connections were closed');
  for (const { socket, client } of [neverIdle, newLong]) {
    socket.end();
    await guard(closed(socket), GUARD_MS, 'connection to close');
    t.equal((await connectionLog(proxy, client, 'a.example.com')).outcome, 'ok', `${client} ended ok`);
  }
});

t.test('check --config works on the file the proxy is running on', async (t) => {
  const a = await startTlsBackend(ca, 'A');
  t.teardown(() => a.close());
  const volume = await ConfigMapVolume.create(
    stringify({
      defaults: { drainTimeout: '2s' },
      listeners: [{ name: 'main', listen: '127.0.0.1:0', routes: [{ hostnames: ['check.example.com'], backends: [a.address] }] }],
    }),
  );
  const proxy = await startProxy(null, { configFile: volume.path });
  t.teardown(() => proxy.stop('SIGKILL'));

  const [result, answer] = await Promise.all([runCli(['check', '--config', volume.path]), probe(proxy.address('main'), 'check.example.com')]);
  t.equal(answer, 'A', 'the proxy serves while check runs');
  t.equal(result.code, 0, `check exits 0 (stderr: ${result.stderr.trim()})`);
  t.match(result.stdout, `${volume.path}: ok, 1 listener`, 'and says the file is ok');
  t.match(result.stdout, 'check.example.com', 'and prints the route');
  t.match(result.stdout, a.address, 'and its backend');
  t.equal(await probe(proxy.address('main'), 'check.example.com'), 'A', 'the proxy keeps serving');

  // After a ConfigMap swap that `check` refuses, the running proxy refuses it too, at the same place.
  await volume.swap(`${await readFile(volume.path, 'utf8')}bogus: 1\n`);
  const [bad, refused] = await Promise.all([
    runCli(['check', '--config', volume.path]),
    proxy.waitForLog((line) => line.msg.startsWith('config reload refused')),
  ]);
  t.equal(bad.code, 1, 'check exits 1 on a bad file');
  t.equal(bad.stderr.trim(), String(refused.error), `check and the proxy report the same error (${refused.error})`);
  t.equal(await probe(proxy.address('main'), 'check.example.com'), 'A', 'the proxy keeps serving generation 1');
  t.equal(reloadedLines(proxy).length, 0, 'check itself never caused a reload');
});
