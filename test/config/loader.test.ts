// loadConfigFile (lib/config/loader.ts): the config read, parsed and
// validated in a worker thread, each refusal a ConfigError with its code;
// the limits (size, time, memory); and results that cross the thread whole.
// What the parser says about the text is tested in load.test.ts.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../lib/config/load.js';
import { DEFAULT_LOADER_LIMITS, type LoaderLimits, loadConfigFile } from '../../lib/config/loader.js';
import { ConfigError } from '../../lib/errors.js';
import { projectRoot } from '../helpers/proxy-process.js';
import { guard } from '../helpers/wait.js';

/** Within the loader's own time limit, with room: the guards only stop a hang. */
const GUARD_MS = 2 * DEFAULT_LOADER_LIMITS.timeoutMs;
const example = readFileSync(join(projectRoot, 'config.example.yaml'), 'utf8');

t.test('loadConfigFile', async (t) => {
  const directory = t.testdir({
    'proxy.yaml': example,
    'bad.yaml': 'listeners:\n  - listen: 8443\n    bogus: 1\n',
  });

  t.test('reads, parses and keeps the text', async (t) => {
    const file = join(directory, 'proxy.yaml');
    const loaded = await loadConfigFile(file);
    t.equal(loaded.file, file);
    t.equal(loaded.text, example);
    t.strictSame(loaded.config, parseConfig(example, file));
  });

  t.test('a config error names the file as given', async (t) => {
    const file = join(directory, 'bad.yaml');
    const error = await loadConfigFile(file).then(
      () => null,
      (reason: unknown) => reason,
    );
    t.ok(error instanceof ConfigError);
    t.equal(
      (error as ConfigError).message,
      `${file}:3:5: unknown key "bogus" (expected one of: ${/expected one of: (.*)\)$/.exec((error as Error).message)?.[1]})`,
    );
    t.same((error as ConfigError).position, { line: 3, col: 5 });
  });

  t.test('a missing file', async (t) => {
    const file = join(directory, 'missing.yaml');
    const error = await loadConfigFile(file).then(
      () => null,
      (reason: unknown) => reason,
    );
    t.ok(error instanceof ConfigError);
    t.equal((error as ConfigError).code, 'SNIP_CONFIG_UNREADABLE');
    t.equal((error as ConfigError).message, `${file}: cannot read config: no such file`);
    t.equal((error as ConfigError).position, null, 'no position');
    t.equal((error as ConfigError).file, file);
    t.equal((error as ConfigError).detail, 'cannot read config: no such file');
  });

  t.test('a directory', async (t) => {
    const error = await loadConfigFile(directory).then(
      () => null,
      (reason: unknown) => reason,
    );
    t.ok(error instanceof ConfigError);
    t.equal((error as ConfigError).code, 'SNIP_CONFIG_NOT_A_FILE');
    t.equal((error as ConfigError).message, `${directory}: cannot read config: a directory, not a regular file`);
    t.equal((error as ConfigError).position, null);
  });
});

t.test('loadConfigFile: off the event loop, within limits', async (t) => {
  const directory = t.testdir({ 'proxy.yaml': example, 'tab.yaml': 'listeners:\n\t- listen: 8443\n' });
  const refusal = (file: string, limits?: Partial<LoaderLimits>): Promise<ConfigError> =>
    guard(
      loadConfigFile(file, limits).then(
        () => {
          throw new Error(`${file} loaded`);
        },
        (error: unknown) => error as ConfigError,
      ),
      GUARD_MS,
      `loading ${file}`,
    );

  t.test('a FIFO at the path is refused at once (opening it does not wait for a writer)', async (t) => {
    const fifo = join(directory, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const error = await refusal(fifo);
    t.ok(error instanceof ConfigError);
    t.equal(error.code, 'SNIP_CONFIG_NOT_A_FILE');
    t.equal(error.message, `${fifo}: cannot read config: a named pipe (FIFO), not a regular file`);
  });

  t.test('a syntax error crosses the thread with its code and position', async (t) => {
    const error = await refusal(join(directory, 'tab.yaml'));
    t.ok(error instanceof ConfigError);
    t.equal(error.code, 'SNIP_CONFIG_SYNTAX');
    t.same(error.position, { line: 2, col: 1 });
  });

  t.test('the size limit, named in the message', async (t) => {
    const error = await refusal(join(directory, 'proxy.yaml'), { maxBytes: 100 });
    t.equal(error.code, 'SNIP_CONFIG_TOO_LARGE');
    t.match(error.message, /: config is larger than the limit of 100 bytes$/);
    t.equal(DEFAULT_LOADER_LIMITS.maxBytes, 16 * 1024 * 1024, 'default 16 MiB');
  });

  t.test('the time limit: a load still running is abandoned', async (t) => {
    // 1 ms: less than starting a thread takes, so the limit always fires first.
    const error = await refusal(join(directory, 'proxy.yaml'), { timeoutMs: 1 });
    t.equal(error.code, 'SNIP_CONFIG_TIMEOUT');
    t.match(error.message, /: loading took longer than the limit of 0\.001 s$/);
  });

  t.test('the memory limit: a file that needs more ends the thread, not the process', async (t) => {
    const routes = Array.from({ length: 50_000 }, (_, index) => `      - hostnames: [h${index}.example.com]\n        backends: [127.0.0.1:1]\n`);
    const big = join(directory, 'big.yaml');
    await writeFile(big, `listeners:\n  - listen: 8443\n    routes:\n${routes.join('')}`);
    const error = await refusal(big, { maxHeapMb: 32 });
    t.equal(error.code, 'SNIP_CONFIG_TOO_LARGE');
    t.match(error.message, /: loading needs more than the limit of 32 MiB of memory$/);
    const small = await guard(loadConfigFile(join(directory, 'proxy.yaml'), { maxHeapMb: 32 }), GUARD_MS, 'a small file');
    t.equal(small.config.listeners.length, 1, 'while a small file loads within the same limit');
  });

  t.test('many routes arrive whole and in order (they are sent in slices)', async (t) => {
    const routes = Array.from(
      { length: 2_500 },
      (_, index) => `      - hostnames: [h${index}.example.com]\n        backends: [127.0.0.1:${1 + (index % 7)}]\n`,
    );
    const text = `listeners:\n  - listen: 8443\n    routes:\n${routes.join('')}  - listen: 8444\n    routes:\n${routes.slice(0, 1_001).join('')}`;
    const file = join(directory, 'many.yaml');
    await writeFile(file, text);
    const loaded = await guard(loadConfigFile(file), GUARD_MS, 'many routes');
    t.strictSame(loaded.config, parseConfig(text, file));
    t.equal(loaded.text, text);
  });
});
