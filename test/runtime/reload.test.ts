// ConfigReloader (lib/runtime/reload.ts) with a real config file in a temp
// directory and a recording `apply` (the unit seam the service wires to the
// supervisor): validate then apply, unchanged and refused outcomes, hooks,
// and serialised reloads.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseConfig } from '../../lib/config/load.js';
import { DEFAULT_LOADER_LIMITS } from '../../lib/config/loader.js';
import { ListenError } from '../../lib/errors.js';
import { type Generation, loadGeneration } from '../../lib/runtime/generation.js';
import { ConfigReloader, type ReloadOutcome } from '../../lib/runtime/reload.js';
import type { ApplySummary } from '../../lib/runtime/supervisor.js';
import { NO_TLS_MATERIAL } from '../../lib/tls/certificates.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';

const directory = await mkdtemp(join(tmpdir(), 'sni-reload-test-'));
/** Each reload loads the file in a thread of its own, within the loader's time limit: the guards only stop a hang. */
const GUARD_MS = 2 * DEFAULT_LOADER_LIMITS.timeoutMs;
t.teardown(() => rm(directory, { recursive: true, force: true }));

/** A valid config whose text differs by `port` (the reloader compares texts). */
const configText = (port: number): string => ['listeners:', `  - listen: 127.0.0.1:${port}`, '    default:', '      backends: [127.0.0.1:9]', ''].join('\n');

interface Harness {
  file: string;
  reloader: ConfigReloader;
  /** Configs given to apply, in order. */
  applied: Generation[];
  /** Hook calls in order: "started", "finished:<result>", "apply:<port>", "applied:<port>". */
  calls: string[];
  outcomes: ReloadOutcome[];
  logs: Array<Record<string, unknown>>;
  /** Applies running at the same time, at most. */
  maxConcurrent(): number;
  generation(): number;
}

let fileCounter = 0;

/**
 * A reloader on a fresh file holding `configText(1000)`. `apply` records its
 * argument and waits for `gate()` (resolved at once by default) before it
 * succeeds or throws what `behaviour` says.
 */
async function harness(options: { behaviour?: (loaded: Generation) => Error | null; gate?: () => Promise<void> } = {}): Promise<Harness> {
  const file = join(directory, `config-${++fileCounter}.yaml`);
  await writeFile(file, configText(1000));
  let generation = 1;
  let concurrent = 0;
  let maxConcurrent = 0;
  const applied: Generation[] = [];
  const calls: string[] = [];
  const outcomes: ReloadOutcome[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const portOf = (loaded: Generation): number => loaded.config.listeners[0]!.listen.port;
  const neverInternal = (): Promise<never> => Promise.reject(new Error('no tls: internal route in these configs'));
  const reloader = new ConfigReloader({
    load: () => loadGeneration(file, neverInternal),
    running: { file, text: configText(1000), config: parseConfig(configText(1000), file), tls: NO_TLS_MATERIAL },
    logger: pino({ level: 'info' }, stream),
    generation: () => generation,
    async apply(loaded): Promise<ApplySummary> {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      applied.push(loaded);
      calls.push(`apply:${portOf(loaded)}`);
      try {
        await (options.gate?.() ?? Promise.resolve());
        const failure = options.behaviour?.(loaded) ?? null;
        if (failure) throw failure;
        calls.push(`applied:${portOf(loaded)}`);
        return { generation: ++generation, added: [], removed: [], kept: ['127.0.0.1'], changed: ['127.0.0.1'], bound: {}, boundQuic: {} };
      } finally {
        concurrent--;
      }
    },
    started: () => calls.push('started'),
    finished: (outcome) => {
      calls.push(`finished:${outcome.result}`);
      outcomes.push(outcome);
    },
  });
  return { file, reloader, applied, calls, outcomes, logs, maxConcurrent: () => maxConcurrent, generation: () => generation };
}

/** A gate that holds every apply until `open()`; `waiting()` counts applies held. */
function manualGate(): { gate: () => Promise<void>; open(): void; waiting(): number } {
  let held: Array<() => void> = [];
  return {
    gate: () => new Promise<void>((resolve) => held.push(resolve)),
    open: () => {
      const release = held;
      held = [];
      for (const resolve of release) resolve();
    },
    waiting: () => held.length,
  };
}

t.test('a changed valid file is applied', async (t) => {
  const h = await harness();
  await writeFile(h.file, configText(1001));
  const outcome = await guard(h.reloader.reload('signal'), GUARD_MS, 'reload');
  t.same(outcome, { result: 'applied', generation: 2 });
  t.equal(h.applied.length, 1);
  t.equal(h.applied[0]!.text, configText(1001), 'the text read from the file');
  t.equal(h.applied[0]!.file, h.file);
  t.equal(h.applied[0]!.config.listeners[0]!.listen.port, 1001, 'validated and parsed');
  t.same(h.calls, ['started', 'apply:1001', 'applied:1001', 'finished:applied'], 'started, apply, finished, in that order');
  t.same(h.outcomes, [outcome], 'finished gets the outcome');
  const line = h.logs.find((log) => log.msg === 'config reloaded');
  t.ok(line, 'a "config reloaded" line');
  t.match(line, { trigger: 'signal', generation: 2, kept: ['127.0.0.1'], changed: ['127.0.0.1'] }, 'with the trigger and the summary');
  // An unnamed listener is named after its address: a new address is another listener.
  t.equal(line!.changes, '1 listener added, 1 listener removed', 'what changed, in one phrase');
  t.match(
    line!.diff,
    { listeners: { added: [{ listen: '127.0.0.1:1001' }], removed: [{ listen: '127.0.0.1:1000' }] }, closing: [{ listen: '127.0.0.1:1000' }] },
    'and as the structured diff `sni-passthrough diff` prints',
  );
});

t.test('unchanged text: "unchanged", apply not called', async (t) => {
  const h = await harness();
  const outcome = await guard(h.reloader.reload('watch'), GUARD_MS, 'reload');
  t.same(outcome, { result: 'unchanged', generation: 1 });
  t.same(h.applied, []);
  t.same(h.calls, ['started', 'finished:unchanged'], 'hooks still run around it');
  t.ok(h.logs.some((log) => log.msg === 'config unchanged'));

  await writeFile(h.file, configText(1001));
  await h.reloader.reload('watch');
  t.same(await h.reloader.reload('watch'), { result: 'unchanged', generation: 2 }, 'the applied text becomes the one compared against');
  t.equal(h.applied.length, 1);
});

t.test('an invalid file is refused with FILE:LINE:COL, apply not called', async (t) => {
  t.test('invalid YAML', async (t) => {
    const h = await harness();
    await writeFile(h.file, 'listeners:\n  - listen: 127.0.0.1:1001\n    default: [\n');
    const outcome = await guard(h.reloader.reload('signal'), GUARD_MS, 'reload');
    t.equal(outcome.result, 'refused');
    t.equal(outcome.generation, 1, 'still the running generation');
    t.match(outcome.error, new RegExp(`^${escapeRegExp(h.file)}:\\d+:\\d+: `), `FILE:LINE:COL: message (${outcome.error})`);
    t.same(h.applied, []);
    t.same(h.calls, ['started', 'finished:refused']);
    const line = h.logs.find((log) => log.level === 50);
    t.ok(line, 'logged at error level');
    t.match(String(line?.msg), /config reload refused, still running generation 1/);
  });

  t.test('invalid schema: the line and column of the offending node', async (t) => {
    const h = await harness();
    await writeFile(h.file, ['listeners:', '  - listen: 127.0.0.1:1001', '    colour: blue', '    default:', '      backends: [127.0.0.1:9]', ''].join('\n'));
    const outcome = await h.reloader.reload('signal');
    t.equal(outcome.result, 'refused');
    t.match(outcome.error, `${h.file}:3:5: `, 'points at the unknown key');
    t.same(h.applied, []);
  });

  t.test('a missing file', async (t) => {
    const h = await harness();
    await rm(h.file);
    const outcome = await h.reloader.reload('signal');
    t.equal(outcome.result, 'refused');
    t.match(outcome.error, h.file);
    t.same(h.applied, []);
  });

  t.test('after a refusal the next valid change applies', async (t) => {
    const h = await harness();
    await writeFile(h.file, 'listeners: [');
    t.equal((await h.reloader.reload('signal')).result, 'refused');
    await writeFile(h.file, configText(1002));
    t.same(await h.reloader.reload('signal'), { result: 'applied', generation: 2 });
  });
});

t.test('a FIFO at the path is refused at once, and does not hold up the reloads after it', async (t) => {
  const h = await harness();
  await rm(h.file);
  execFileSync('mkfifo', [h.file]);
  // Without a writer, opening a FIFO for reading blocks: so would this reload, and every one queued behind it.
  const outcome = await guard(h.reloader.reload('watch'), GUARD_MS, 'the reload of a FIFO');
  t.equal(outcome.result, 'refused');
  t.equal(outcome.code, 'SNIP_CONFIG_NOT_A_FILE');
  t.equal(outcome.error, `${h.file}: cannot read config: a named pipe (FIFO), not a regular file`);
  const line = h.logs.find((log) => log.level === 50);
  t.match(line, { code: 'SNIP_CONFIG_NOT_A_FILE', msg: /^config reload refused, still running generation 1: .*named pipe/ }, 'one error line saying why');
  t.notMatch(String(line?.msg), /\n/, 'on one line');

  await rm(h.file);
  await writeFile(h.file, configText(1001));
  const outcomes = await guard(Promise.all([h.reloader.reload('signal'), h.reloader.reload('admin')]), GUARD_MS, 'the reloads after it');
  t.same(outcomes[0], { result: 'applied', generation: 2 }, 'the next save applies');
  t.same(outcomes[1], { result: 'unchanged', generation: 2 }, 'and the one queued behind it runs too');
});

t.test('a refusal carries the code of the error', async (t) => {
  const h = await harness();
  await writeFile(h.file, 'listeners:\n  - listen: 127.0.0.1:1001\n    routes:\n      - hostnames: [*.preview.localhost]\n        backends: [127.0.0.1:9]\n');
  const outcome = await guard(h.reloader.reload('signal'), GUARD_MS, 'reload');
  t.match(outcome, {
    result: 'refused',
    code: 'SNIP_CONFIG_SYNTAX',
    error: `${h.file}:4:21: *.preview.localhost must be quoted: an unquoted "*" starts a YAML alias; write "*.preview.localhost"`,
  });
});

t.test('apply throwing ListenError: refused, and the same file can be tried again', async (t) => {
  let fail = true;
  const h = await harness({
    behaviour: () =>
      fail ? new ListenError('public', '127.0.0.1:1001', 'EADDRINUSE', Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })) : null,
  });
  await writeFile(h.file, configText(1001));
  const outcome = await guard(h.reloader.reload('admin'), GUARD_MS, 'reload');
  t.equal(outcome.result, 'refused');
  t.equal(outcome.generation, 1);
  t.match(outcome.error, /^cannot listen on 127\.0\.0\.1:1001 \(listener "public"\): address already in use/);
  t.same(h.calls, ['started', 'apply:1001', 'finished:refused']);

  fail = false;
  t.same(await h.reloader.reload('admin'), { result: 'applied', generation: 2 }, 'the refused text is not taken as the running one');
});

t.test('reloads never overlap, and a burst collapses into at most two applies', async (t) => {
  const gate = manualGate();
  const h = await harness({ gate: gate.gate });
  await writeFile(h.file, configText(1001));
  const first = h.reloader.reload('watch');
  await waitFor(() => gate.waiting() === 1, 'the first apply started', GUARD_MS);

  // While it runs: the file changes again and five more reloads are asked for.
  await writeFile(h.file, configText(1002));
  const burst = Array.from({ length: 5 }, () => h.reloader.reload('watch'));
  await sleep(50);
  t.equal(gate.waiting(), 1, 'no second apply while the first runs');

  gate.open();
  await waitFor(() => gate.waiting() === 1 || h.calls.length > 6, 'the queued reload started', GUARD_MS);
  gate.open();
  const outcomes = await guard(Promise.all([first, ...burst]), GUARD_MS, 'all reloads');
  t.same(outcomes[0], { result: 'applied', generation: 2 }, 'the first reload applied 1001');
  for (const outcome of outcomes.slice(1)) t.same(outcome, { result: 'applied', generation: 3 }, 'every queued request gets the one follow-up reload');
  t.equal(h.maxConcurrent(), 1, 'never two applies at once');
  t.same(
    h.applied.map((loaded) => loaded.config.listeners[0]!.listen.port),
    [1001, 1002],
    'two applies: the running one and one more with the last write',
  );
  t.same(
    h.calls,
    ['started', 'apply:1001', 'applied:1001', 'finished:applied', 'started', 'apply:1002', 'applied:1002', 'finished:applied'],
    'hooks around each, never interleaved',
  );
});

t.test('a burst with no change while running gives one apply and one "unchanged"', async (t) => {
  const gate = manualGate();
  const h = await harness({ gate: gate.gate });
  await writeFile(h.file, configText(1001));
  const all = [h.reloader.reload('watch')];
  await waitFor(() => gate.waiting() === 1, 'the first apply started', GUARD_MS);
  for (let index = 0; index < 4; index++) all.push(h.reloader.reload('signal'));
  gate.open();
  const outcomes = await guard(Promise.all(all), GUARD_MS, 'all reloads');
  t.same(
    outcomes.map((outcome) => outcome.result),
    ['applied', 'unchanged', 'unchanged', 'unchanged', 'unchanged'],
  );
  t.equal(h.applied.length, 1);
});

t.test('reloads after the queue drained start a new round', async (t) => {
  const h = await harness();
  for (const port of [1001, 1002, 1003]) {
    await writeFile(h.file, configText(port));
    t.same(await h.reloader.reload('signal'), { result: 'applied', generation: port - 999 });
  }
  t.equal(h.maxConcurrent(), 1);
});

t.test('an unexpected apply error does not wedge later reloads', async (t) => {
  const gate = manualGate();
  let throwOnce = true;
  const h = await harness({
    gate: gate.gate,
    behaviour: () => {
      if (!throwOnce) return null;
      throwOnce = false;
      return new TypeError('unexpected');
    },
  });
  /** Opens the gate until `promise` settles (however the reloader queues its applies). */
  const settle = async <T>(promise: Promise<T>, what: string): Promise<T | Error> => {
    let done = false;
    const result = promise.then(
      (value) => value,
      (error: Error) => error,
    );
    void result.finally(() => (done = true));
    await waitFor(
      () => {
        gate.open();
        return done;
      },
      what,
      GUARD_MS,
    );
    return result;
  };

  // Round 1: the running apply throws something that is neither ConfigError nor ListenError, with a reload queued behind it.
  await writeFile(h.file, configText(1001));
  const first = h.reloader.reload('signal');
  await waitFor(() => gate.waiting() === 1, 'the first apply started', GUARD_MS);
  const queued = h.reloader.reload('signal');
  // Both reject with the unexpected error (that part is fine): handle them now.
  first.catch(() => {});
  queued.catch(() => {});
  await settle(first, 'first reload settles');
  await settle(queued, 'queued reload settles');

  // Round 2: a reload runs, and one more is asked for while it does, after the file changed again.
  await writeFile(h.file, configText(1002));
  const second = h.reloader.reload('signal');
  await waitFor(() => gate.waiting() === 1, 'the second round’s apply started', GUARD_MS);
  await writeFile(h.file, configText(1003));
  const third = h.reloader.reload('signal');
  third.catch(() => {});
  const secondOutcome = await settle(second, 'second reload');
  t.match(secondOutcome, { result: 'applied' }, 'round 2 applies');
  const thirdOutcome = await settle(third, 'third reload');
  t.match(
    thirdOutcome,
    { result: 'applied', generation: (secondOutcome as ReloadOutcome).generation + 1 },
    `the reload requested during round 2 runs (got ${thirdOutcome instanceof Error ? `rejection "${thirdOutcome.message}"` : JSON.stringify(thirdOutcome)})`,
  );
  t.equal(h.applied.at(-1)!.config.listeners[0]!.listen.port, 1003, 'and applies the last write');
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
