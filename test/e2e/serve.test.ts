// `sni-passthrough serve`: local routing from flags alone, through the CLI,
// with curl: terminated with the local CA (plain dev servers behind), passed
// through, the HTTP redirect, the printed URLs, and flags that are wrong.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startHttpBackend, startHttpsBackend, unusedAddress } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { runProgram, which } from '../helpers/programs.js';
import { runCli, startCli } from '../helpers/proxy-process.js';
import { waitFor } from '../helpers/wait.js';

const GUARD_MS = 15_000;
const directory = await mkdtemp(join(tmpdir(), 'sni-serve-test-'));
t.teardown(() => rm(directory, { recursive: true, force: true }));
const curl = await which('curl');
const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

const vite = await startHttpBackend('vite');
const api = await startHttpBackend('api');
t.teardown(() => Promise.all([vite.close(), api.close()]));

t.test(
  '--terminate internal with --http: HTTPS from the local CA to plain dev servers, HTTP redirected',
  { skip: curl ? false : 'curl is not installed' },
  async (t) => {
    const stateDirectory = join(directory, 'state');
    const httpsPort = portOf(await unusedAddress());
    const httpAddress = await unusedAddress();
    const proxy = await startCli([
      'serve',
      '--listen',
      `127.0.0.1:${httpsPort}`,
      '--route',
      `app.localhost=${vite.address}`,
      '--route',
      `*.api.localhost=${api.address}`,
      '--terminate',
      'internal',
      '--http',
      httpAddress,
      '--state-dir',
      stateDirectory,
      '--log-format',
      'json',
    ]);
    t.teardown(() => proxy.stop('SIGKILL'));
    await waitFor(() => proxy.stderr().includes('sni-passthrough is serving'), 'the banner', GUARD_MS);
    const banner = proxy.stderr();
    t.match(banner, `https://app.localhost:${httpsPort}/  ->  ${vite.address} (plain HTTP)`, 'each route’s URL and backend');
    t.match(banner, `https://app.api.localhost:${httpsPort}/`, 'a wildcard route shown with an example name');
    t.match(banner, /\.localhost resolve to this machine/, 'says why *.localhost needs no /etc/hosts');
    t.match(banner, /run `sni-passthrough trust`/, 'and how to trust the CA');

    const get = (url: string, extra: string[] = []) =>
      runProgram(curl!, [
        '-sS',
        '--max-time',
        '8',
        '--cacert',
        join(stateDirectory, 'ca.pem'),
        '--resolve',
        `${new URL(url).hostname}:${new URL(url).port}:127.0.0.1`,
        ...extra,
        url,
      ]);
    const app = await get(`https://app.localhost:${httpsPort}/page?x=1`);
    t.equal(app.code, 0, `curl app exited 0 (${app.stderr.trim()})`);
    t.match(JSON.parse(app.stdout), { backend: 'vite', url: '/page?x=1' });
    const deep = await get(`https://v1.api.localhost:${httpsPort}/users`);
    t.match(JSON.parse(deep.stdout), { backend: 'api', url: '/users' }, 'the wildcard route');

    const redirected = await get(`http://app.localhost:${portOf(httpAddress)}/page?x=1`, ['-o', '/dev/null', '-w', '%{http_code} %{redirect_url}']);
    t.equal(redirected.stdout, `308 https://app.localhost:${httpsPort}/page?x=1`, 'plain HTTP is redirected to the same path on HTTPS');
  },
);

t.test('without --terminate: passed through to backends that hold their own certificates', { skip: curl ? false : 'curl is not installed' }, async (t) => {
  const ca = await createCertificateAuthority();
  const secure = await startHttpsBackend(ca, 'secure-app', ['app.localhost']);
  t.teardown(() => secure.close());
  const proxy = await startCli(['serve', '--listen', '127.0.0.1:0', '--route', `app.localhost=${secure.address}`, '--log-format', 'json']);
  t.teardown(() => proxy.stop('SIGKILL'));
  const port = proxy.port('https');
  const caFile = join(directory, 'backend-ca.pem');
  await writeFile(caFile, ca.cert);
  const result = await runProgram(curl!, [
    '-sS',
    '--max-time',
    '8',
    '--cacert',
    caFile,
    '--resolve',
    `app.localhost:${port}:127.0.0.1`,
    `https://app.localhost:${port}/`,
  ]);
  t.equal(result.stdout, 'secure-app', 'the backend answered with its own certificate, verified by its own CA');
});

t.test('--print-config: the config the flags stand for, accepted by check', async (t) => {
  const printed = await runCli(['serve', '--route', 'app.localhost=127.0.0.1:5173', '--terminate', 'internal', '--print-config']);
  t.equal(printed.code, 0);
  const file = join(directory, 'printed.yaml');
  await writeFile(file, printed.stdout);
  const checked = await runCli(['check', '--config', file]);
  t.equal(checked.code, 0, `check accepts it (${checked.stderr.trim()})`);
  t.match(checked.stdout, /app\.localhost.*-> 127\.0\.0\.1:5173/);
});

t.test('wrong flags: one line naming the flag, exit 1', async (t) => {
  for (const [args, message] of [
    [['serve'], /^sni-passthrough: serve needs at least one --route/],
    [['serve', '--route', 'app.localhost'], /^sni-passthrough: --route "app.localhost": expected NAME=HOST:PORT/],
    [['serve', '--route', 'bad name=127.0.0.1:1'], /^sni-passthrough: --route "bad name=127.0.0.1:1": invalid hostname/],
    [['serve', '--route', 'a.localhost=https://127.0.0.1:1'], /^sni-passthrough: --route "a.localhost=https:\/\/127\.0\.0\.1:1": /],
    [['serve', '--route', 'a.localhost=127.0.0.1:1', '--route', 'A.localhost=127.0.0.1:2'], /routed twice/],
    [['serve', '--route', 'a.localhost=127.0.0.1:1', '--terminate', 'yes'], /^sni-passthrough: --terminate "yes": the one value is "internal"/],
    [
      ['serve', '--listen', '127.0.0.1:0', '--route', 'a.localhost=127.0.0.1:1', '--http', '127.0.0.1:0'],
      /--listen "127\.0\.0\.1:0": with --http, give a fixed port/,
    ],
  ] as const) {
    const result = await runCli([...args]);
    t.equal(result.code, 1, `${args.join(' ')}: exit 1`);
    t.match(result.stderr, message, `${args.join(' ')}: ${result.stderr.trim()}`);
    t.equal(result.stderr.trim().split('\n').length, 1, 'one line');
  }
});
