import { watch } from 'chokidar';

/** Quiet time after the last change before reloading: folds a burst of writes into one reload. */
const SETTLE_MS = 100;

/**
 * Calls `onChange` when the config file changes: written in place, saved
 * atomically (temp file renamed over it) or swapped as a Kubernetes ConfigMap
 * (the path is a symlink through `..data`, which is replaced). chokidar polls
 * the path with stat, which follows symlinks: inotify on the path misses a
 * ConfigMap swap that keeps the old data directory, and loses the file once a
 * symlink at the path is replaced by a regular file. A 100 ms stat is cheap.
 * The reload still validates before it applies, in case a write is caught mid-way.
 */
export async function watchConfigFile(file: string, onChange: () => void, onError: (error: Error) => void): Promise<{ close(): Promise<void> }> {
  const watcher = watch(file, { ignoreInitial: true, usePolling: true, interval: 100, binaryInterval: 100 });
  let timer: NodeJS.Timeout | null = null;
  const settle = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, SETTLE_MS);
  };
  watcher.on('change', settle);
  watcher.on('add', settle);
  watcher.on('error', (error) => onError(error as Error));
  // Changes are only seen once the initial scan is done; until then a write would be missed.
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    close: () => {
      if (timer) clearTimeout(timer);
      return watcher.close();
    },
  };
}
