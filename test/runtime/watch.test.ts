// watchFiles (lib/runtime/watch.ts) on a real temp directory: the three
// ways config files change in practice (written in place, saved atomically,
// a Kubernetes ConfigMap `..data` symlink swap), bursts, and close().
import t, { type Test } from 'tap';
import { utimesSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FileWatch, watchFiles } from '../../lib/runtime/watch.js';
import { sleep, waitFor } from '../helpers/wait.js';

/** After the last change the watcher polls every 250 ms and settles 150 ms: a second callback would come within this. */
const QUIET_MS = 500;
/** The wait after a burst, longer still. */
const BURST_QUIET_MS = 800;

let counter = 0;
const text = (): string => `# version ${++counter}\nlisteners: []\n`;

async function tempDirectory(t: Test): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'sni-watch-test-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

/** Watches `files` (one path or several), counting callbacks and errors; closed at teardown. */
async function watching(t: Test, files: string | string[]): Promise<{ changes(): number; errors: Error[]; close(): Promise<void>; watcher: FileWatch }> {
  let changes = 0;
  const errors: Error[] = [];
  const watcher = await watchFiles(
    typeof files === 'string' ? [files] : files,
    () => changes++,
    (error) => errors.push(error),
  );
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await watcher.close();
  };
  t.teardown(close);
  return { changes: () => changes, errors, close, watcher };
}

t.test('a write in place gives one callback', async (t) => {
  const directory = await tempDirectory(t);
  const file = join(directory, 'proxy.yaml');
  await writeFile(file, text());
  const watch = await watching(t, file);
  await sleep(150);
  t.equal(watch.changes(), 0, 'nothing before a change');
  await writeFile(file, text());
  await waitFor(() => watch.changes() >= 1, 'a callback', 20_000);
  await writeFile(file, text());
  await waitFor(() => watch.changes() >= 2, 'a callback for the next write', 20_000);
  await sleep(QUIET_MS);
  t.equal(watch.changes(), 2, 'exactly one per separate write (a duplicate would show up as a third)');
  t.same(watch.errors, []);
});

t.test('an atomic save (temp file renamed over) gives one callback, and later edits are still seen', async (t) => {
  const directory = await tempDirectory(t);
  const file = join(directory, 'proxy.yaml');
  await writeFile(file, text());
  const watch = await watching(t, file);
  for (let save = 1; save <= 3; save++) {
    const temporary = join(directory, `.proxy.yaml.${save}.tmp`);
    await writeFile(temporary, text());
    await rename(temporary, file);
    await waitFor(() => watch.changes() >= save, `a callback for save ${save}`, 20_000);
  }
  await writeFile(file, text());
  await waitFor(() => watch.changes() >= 4, 'a callback for a write in place after the renames', 20_000);
  await sleep(QUIET_MS);
  t.equal(watch.changes(), 4, 'one callback per save, none extra');
  t.same(watch.errors, []);
});

/**
 * A ConfigMap volume as kubelet writes it: `proxy.yaml -> ..data/proxy.yaml`,
 * `..data -> ..<timestamp>`; an update writes a new timestamped directory,
 * points `..data_tmp` at it and renames that over `..data`, then deletes the
 * old directory.
 */
async function configMap(directory: string): Promise<{ file: string; swap(options: { deleteOld: boolean }): Promise<void> }> {
  let version = 0;
  let current = '';
  const writeVersion = async (): Promise<string> => {
    const name = `..2026_11_22_10_00_${String(++version).padStart(2, '0')}.${process.pid}`;
    await mkdir(join(directory, name));
    await writeFile(join(directory, name, 'proxy.yaml'), text());
    return name;
  };
  current = await writeVersion();
  await symlink(current, join(directory, '..data'));
  await symlink(join('..data', 'proxy.yaml'), join(directory, 'proxy.yaml'));
  return {
    file: join(directory, 'proxy.yaml'),
    async swap({ deleteOld }) {
      const next = await writeVersion();
      await symlink(next, join(directory, '..data_tmp'));
      await rename(join(directory, '..data_tmp'), join(directory, '..data'));
      if (deleteOld) await rm(join(directory, current), { recursive: true, force: true });
      current = next;
    },
  };
}

t.test('a ConfigMap-style ..data symlink swap gives one callback', async (t) => {
  t.test('old data directory deleted (what kubelet does)', async (t) => {
    const mount = await configMap(await tempDirectory(t));
    const watch = await watching(t, mount.file);
    for (let swap = 1; swap <= 2; swap++) {
      await mount.swap({ deleteOld: true });
      await waitFor(() => watch.changes() >= swap, `a callback for swap ${swap}`, 20_000);
    }
    await sleep(QUIET_MS);
    t.equal(watch.changes(), 2, 'one callback per swap, none extra');
    t.same(watch.errors, []);
  });

  t.test('old data directory kept', async (t) => {
    const mount = await configMap(await tempDirectory(t));
    const watch = await watching(t, mount.file);
    for (let swap = 1; swap <= 2; swap++) {
      await mount.swap({ deleteOld: false });
      await waitFor(() => watch.changes() >= swap, `a callback for swap ${swap}`, 20_000);
    }
    await sleep(QUIET_MS);
    t.equal(watch.changes(), 2, 'one callback per swap, none extra');
    t.same(watch.errors, []);
  });
});

t.test('a burst of 5 quick writes gives exactly one callback', async (t) => {
  t.test('back to back', async (t) => {
    const directory = await tempDirectory(t);
    const file = join(directory, 'proxy.yaml');
    await writeFile(file, text());
    const watch = await watching(t, file);
    for (let write = 0; write < 5; write++) writeFileSync(file, text());
    await waitFor(() => watch.changes() >= 1, 'a callback', 20_000);
    await sleep(BURST_QUIET_MS);
    t.equal(watch.changes(), 1);
  });

  t.test('10 ms apart (never the settle time of quiet between writes)', async (t) => {
    const directory = await tempDirectory(t);
    const file = join(directory, 'proxy.yaml');
    await writeFile(file, text());
    const watch = await watching(t, file);
    // Start at a random point of the polling cycle, as a real editor would.
    await sleep(Math.random() * 250);
    for (let write = 0; write < 5; write++) {
      await writeFile(file, text());
      await sleep(10);
    }
    await waitFor(() => watch.changes() >= 1, 'a callback', 20_000);
    await sleep(BURST_QUIET_MS);
    t.equal(watch.changes(), 1);
  });
});

t.test('close() stops callbacks', async (t) => {
  t.test('for changes after it', async (t) => {
    const directory = await tempDirectory(t);
    const file = join(directory, 'proxy.yaml');
    await writeFile(file, text());
    const watch = await watching(t, file);
    await writeFile(file, text());
    await waitFor(() => watch.changes() >= 1, 'a callback while open', 20_000);
    await watch.close();
    await writeFile(file, text());
    await sleep(QUIET_MS);
    t.equal(watch.changes(), 1, 'nothing after close()');
  });

  t.test('right after a write: that write gives no callback either', async (t) => {
    const directory = await tempDirectory(t);
    const file = join(directory, 'proxy.yaml');
    await writeFile(file, text());
    const watch = await watching(t, file);
    await writeFile(file, text());
    // Whether or not a poll saw the write already, the settle timer cannot have fired yet; close() cancels it.
    await watch.close();
    await sleep(QUIET_MS);
    t.equal(watch.changes(), 0);
  });
});

t.test('a same-size file with an older modification time renamed over it (cp -p, rsync -t) gives one callback', async (t) => {
  const directory = await tempDirectory(t);
  const file = join(directory, 'proxy.yaml');
  await writeFile(file, 'listen: 9443\n');
  const watch = await watching(t, file);
  const replacement = join(directory, 'proxy.yaml.new');
  await writeFile(replacement, 'listen: 9444\n');
  const anHourAgo = new Date(Date.now() - 3_600_000);
  utimesSync(replacement, anHourAgo, anHourAgo);
  await rename(replacement, file);
  await waitFor(() => watch.changes() >= 1, 'a callback', 20_000);
  await sleep(QUIET_MS);
  t.equal(watch.changes(), 1);
});

t.test('several files: a certificate and its key renewed together give one callback; update() adds and removes files', async (t) => {
  const directory = await tempDirectory(t);
  const [config, cert, key, other] = ['proxy.yaml', 'cert.pem', 'key.pem', 'other.pem'].map((name) => join(directory, name)) as [
    string,
    string,
    string,
    string,
  ];
  for (const file of [config, cert, key, other]) await writeFile(file, 'v1');
  const watch = await watching(t, [config, cert, key]);
  await sleep(150);
  await writeFile(cert, 'v2');
  await writeFile(key, 'v2');
  await waitFor(() => watch.changes() >= 1, 'a callback for the renewed pair', 20_000);
  await sleep(QUIET_MS);
  t.equal(watch.changes(), 1, 'one callback for both files');

  await watch.watcher.update([config, other]);
  await writeFile(key, 'v3');
  await sleep(QUIET_MS);
  t.equal(watch.changes(), 1, 'a file no longer watched gives no callback');
  await writeFile(other, 'v2');
  await waitFor(() => watch.changes() >= 2, 'a callback for the file added', 20_000);
  t.same(watch.errors, []);
});
