import { stat, unwatchFile, watchFile, type Stats } from 'node:fs';
import { watch } from 'chokidar';

/** Quiet time after the last change before reloading: folds a burst of writes into one reload. */
const SETTLE_MS = 150;
/** How often the file is also stat-polled, for the changes file events miss. */
const POLL_MS = 250;

/** Identity and version of the file the path leads to now (through symlinks). */
function fingerprint(stats: Stats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}

/**
 * Calls `onChange` when the config file changes: written in place, saved
 * atomically (temp file renamed over it), replaced by an older file (`cp -p`,
 * rsync), or swapped as a Kubernetes ConfigMap (the path is a symlink through
 * `..data`, which is replaced). chokidar's file events report most changes at
 * once; a stat poll catches what they miss (a ConfigMap swap that keeps the
 * old data directory, a symlink at the path replaced by a file). Either only
 * schedules a check: after SETTLE_MS of quiet, the file's identity (device,
 * inode, size, times) is compared with the last one seen, so a burst of
 * writes, or both mechanisms seeing one change, gives one call. The reload
 * still validates before it applies, in case a write is caught mid-way.
 */
export async function watchConfigFile(file: string, onChange: () => void, onError: (error: Error) => void): Promise<{ close(): Promise<void> }> {
  let last: string | null = null;
  let timer: NodeJS.Timeout | null = null;
  const check = (): void => {
    timer = null;
    stat(file, (error, stats) => {
      // Missing for a moment (renamed away, being replaced): the next event or poll looks again.
      if (error) return;
      const current = fingerprint(stats);
      if (current === last) return;
      last = current;
      onChange();
    });
  };
  const settle = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, SETTLE_MS);
  };

  last = await new Promise<string | null>((resolve) => stat(file, (error, stats) => resolve(error ? null : fingerprint(stats))));
  const watcher = watch(file, { ignoreInitial: true });
  watcher.on('all', settle);
  watcher.on('error', (error) => onError(error as Error));
  watchFile(file, { interval: POLL_MS, persistent: false }, settle);
  // Events are only delivered once the initial scan is done; until then a write would be missed.
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    close: () => {
      if (timer) clearTimeout(timer);
      unwatchFile(file, settle);
      return watcher.close();
    },
  };
}
