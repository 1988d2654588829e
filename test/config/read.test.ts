// readConfigText (lib/config/read.ts): regular files only, through symlinks
// (a Kubernetes ConfigMap), at most the size limit even when the file says
// it is smaller, and a code for each refusal. FIFOs, which would block this
// synchronous read, are tested through loadConfigFile in load.test.ts.
import { mkdtempSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { readConfigText } from '../../lib/config/read.js';
import { ConfigError } from '../../lib/errors.js';

const MiB = 1024 * 1024;

function refusal(file: string, maxBytes = MiB): ConfigError {
  try {
    readConfigText(file, maxBytes);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`${file} was read`);
}

t.test('a regular file, as UTF-8', async (t) => {
  const directory = t.testdir({ 'proxy.yaml': 'listeners: [] # bücher\n' });
  t.equal(readConfigText(join(directory, 'proxy.yaml'), MiB), 'listeners: [] # bücher\n');
});

t.test('a Kubernetes ConfigMap: symlinks through ..data are followed, and a swap is seen', async (t) => {
  const directory = t.testdir({ '..2024_01': { 'proxy.yaml': 'first\n' }, '..2024_02': { 'proxy.yaml': 'second\n' } });
  symlinkSync('..2024_01', join(directory, '..data'));
  symlinkSync('..data/proxy.yaml', join(directory, 'proxy.yaml'));
  const file = join(directory, 'proxy.yaml');
  t.equal(readConfigText(file, MiB), 'first\n');
  // As the kubelet does: a new ..data link renamed over the old one.
  symlinkSync('..2024_02', join(directory, '..data_tmp'));
  renameSync(join(directory, '..data_tmp'), join(directory, '..data'));
  t.equal(readConfigText(file, MiB), 'second\n');
});

t.test('what is not a regular file is refused with one line naming what it is', async (t) => {
  const directory = t.testdir({ sub: {} });
  t.test('a directory', async (t) => {
    const error = refusal(join(directory, 'sub'));
    t.equal(error.code, 'SNIP_CONFIG_NOT_A_FILE');
    t.equal(error.detail, 'cannot read config: a directory, not a regular file');
    t.equal(error.position, null);
  });
  t.test('a character device', async (t) => {
    const error = refusal('/dev/zero');
    t.equal(error.code, 'SNIP_CONFIG_NOT_A_FILE');
    t.equal(error.message, '/dev/zero: cannot read config: a character device, not a regular file');
  });
  t.test('a unix socket', async (t) => {
    // Short: a socket path has at most 107 bytes.
    const socketDirectory = mkdtempSync(join(tmpdir(), 'sni-'));
    t.teardown(() => rmSync(socketDirectory, { recursive: true, force: true }));
    const path = join(socketDirectory, 'admin.sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    t.teardown(() => server.close());
    const error = refusal(path);
    t.equal(error.code, 'SNIP_CONFIG_NOT_A_FILE');
    t.match(error.detail, /a socket/);
  });
  t.test('a missing file', async (t) => {
    const error = refusal(join(directory, 'missing.yaml'));
    t.equal(error.code, 'SNIP_CONFIG_UNREADABLE');
    t.equal(error.detail, 'cannot read config: no such file');
  });
  t.test('a dangling symlink', async (t) => {
    symlinkSync('nowhere.yaml', join(directory, 'dangling.yaml'));
    t.equal(refusal(join(directory, 'dangling.yaml')).code, 'SNIP_CONFIG_UNREADABLE');
  });
});

t.test('the size limit', async (t) => {
  const directory = t.testdir();
  t.test('exactly the limit is read; one byte more is refused, naming the limit', async (t) => {
    const file = join(directory, 'sized.yaml');
    writeFileSync(file, 'x'.repeat(1024));
    t.equal(readConfigText(file, 1024).length, 1024);
    const error = refusal(file, 1023);
    t.equal(error.code, 'SNIP_CONFIG_TOO_LARGE');
    t.equal(error.detail, 'config is larger than the limit of 1023 bytes');
  });
  t.test('a huge (sparse) file is refused from its size, before reading', async (t) => {
    const file = join(directory, 'huge.yaml');
    writeFileSync(file, '');
    truncateSync(file, 64 * 1024 * MiB);
    const error = refusal(file, 16 * MiB);
    t.equal(error.code, 'SNIP_CONFIG_TOO_LARGE');
    t.equal(error.detail, 'config is larger than the limit of 16 MiB');
  });
  t.test('a file that says it is empty but is not (it grew, or /proc) is read only up to the limit', async (t) => {
    // /proc files report size 0 and hold more.
    const error = refusal('/proc/self/maps', 100);
    t.equal(error.code, 'SNIP_CONFIG_TOO_LARGE');
    t.ok(readConfigText('/proc/self/maps', MiB).length > 100, 'and within the limit, read whole');
  });
});
