import { type Stats, stat, unwatchFile, watchFile } from 'node:fs';
import { watch } from 'chokidar';

/** Quiet time after the last change before reloading: folds a burst of writes into one reload. */
const SETTLE_MS = 150;
/** How often the files are also stat-polled, for the changes file events miss. */
const POLL_MS = 250;

/** Identity and version of the file a path leads to now (through symlinks); null when it is missing. */
function fingerprint(file: string): Promise<string | null> {
  return new Promise((resolve) =>
    stat(file, (error, stats: Stats) => resolve(error ? null : `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`)),
  );
}

export interface FileWatch {
  /** Watches these files from now on (the config file and the certificates it names), keeping what was seen of those that stay. */
  update(files: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Calls `onChange` when one of `files` changes: written in place, saved
 * atomically (temp file renamed over it), replaced by an older file (`cp -p`,
 * rsync), or swapped as a Kubernetes ConfigMap or Secret (the path is a
 * symlink through `..data`, which is replaced). chokidar's file events report
 * most changes at once; a stat poll catches what they miss (a ConfigMap swap
 * that keeps the old data directory, a symlink at the path replaced by a
 * file). Either only schedules a check: after SETTLE_MS of quiet, each file's
 * identity (device, inode, size, times) is compared with the last one seen, so
 * a burst of writes, a certificate and its key renewed together, or both
 * mechanisms seeing one change, give one call. The reload still validates
 * before it applies, in case a write is caught mid-way.
 */
export async function watchFiles(files: readonly string[], onChange: () => void, onError: (error: Error) => void): Promise<FileWatch> {
  const seen = new Map<string, string | null>();
  let timer: NodeJS.Timeout | null = null;
  const check = async (): Promise<void> => {
    timer = null;
    let changed = false;
    for (const [file, last] of seen) {
      const current = await fingerprint(file);
      // Missing for a moment (renamed away, being replaced): the next event or poll looks again.
      if (current === null || current === last) continue;
      seen.set(file, current);
      changed = true;
    }
    if (changed) onChange();
  };
  const settle = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void check(), SETTLE_MS);
  };

  const watcher = watch([], { ignoreInitial: true });
  // chokidar reports 'ready' once, after the scan of the first paths added; later ones are covered by the stat poll meanwhile.
  const ready = new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  watcher.on('all', settle);
  watcher.on('error', (error) => onError(error as Error));
  const update = async (next: readonly string[]): Promise<void> => {
    const wanted = new Set(next);
    const removed = [...seen.keys()].filter((file) => !wanted.has(file));
    for (const file of removed) {
      seen.delete(file);
      unwatchFile(file, settle);
    }
    if (removed.length > 0) await watcher.unwatch(removed);
    const added = next.filter((file) => !seen.has(file));
    for (const file of added) {
      seen.set(file, await fingerprint(file));
      watchFile(file, { interval: POLL_MS, persistent: false }, settle);
    }
    if (added.length === 0) return;
    watcher.add(added);
    // Events are only delivered once the first scan is done; until then a write would be missed.
    await ready;
  };
  await update(files);
  return {
    update,
    close: () => {
      if (timer) clearTimeout(timer);
      for (const file of seen.keys()) unwatchFile(file, settle);
      return watcher.close();
    },
  };
}
