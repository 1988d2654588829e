import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { ConfigError } from '../errors.js';

const CHUNK_BYTES = 64 * 1024;

/** What a path that is not a regular file leads to, for the message. */
function describeFileType(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a named pipe (FIFO)';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function notAFile(file: string, stats: Stats): ConfigError {
  return new ConfigError(file, null, `cannot read config: ${describeFileType(stats)}, not a regular file`, 'SNIP_CONFIG_NOT_A_FILE');
}

function unreadable(file: string, error: unknown): ConfigError {
  const { code, message } = error as NodeJS.ErrnoException;
  const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : message;
  return new ConfigError(file, null, `cannot read config: ${reason}`, 'SNIP_CONFIG_UNREADABLE');
}

function formatBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

/**
 * Reads a config file as UTF-8, synchronously (it runs in the loader's
 * worker thread, never on the event loop). Symlinks are followed (a
 * Kubernetes ConfigMap is a chain of them). The file is opened non-blocking
 * and must be a regular file: a FIFO would otherwise wait for a writer
 * forever. At most `maxBytes + 1` bytes are read, since the file can grow
 * after it was measured. Throws `ConfigError`.
 */
export function readConfigText(file: string, maxBytes: number): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    // A unix socket cannot be opened at all (ENXIO): say what it is.
    const stats = statSync(file, { throwIfNoEntry: false });
    throw stats && !stats.isFile() ? notAFile(file, stats) : unreadable(file, error);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw notAFile(file, stats);
    const tooLarge = (): ConfigError => new ConfigError(file, null, `config is larger than the limit of ${formatBytes(maxBytes)}`, 'SNIP_CONFIG_TOO_LARGE');
    if (stats.size > maxBytes) throw tooLarge();
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, maxBytes + 1 - total));
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      chunks.push(chunk.subarray(0, read));
      total += read;
      if (total > maxBytes) throw tooLarge();
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } catch (error) {
    throw error instanceof ConfigError ? error : unreadable(file, error);
  } finally {
    closeSync(fd);
  }
}
