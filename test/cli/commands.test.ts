// runRouteCommand and runDiffCommand (lib/cli/route.ts, lib/cli/diff.ts) in-process: the errors
// found before anything is read, each one line on stderr with exit 2, and the exit status that
// says routed or not, changed or not. The compiled CLI is run in test/e2e/route-diff.test.ts.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runDiffCommand } from '../../lib/cli/diff.js';
import { type RouteCommandOptions, runRouteCommand } from '../../lib/cli/route.js';

const directory = await mkdtemp(join(tmpdir(), 'sni-commands-'));
t.teardown(() => rm(directory, { recursive: true, force: true }));
const config = join(directory, 'proxy.yaml');
await writeFile(
  config,
  'listeners:\n  - name: public\n    listen: 127.0.0.1:8443\n    routes:\n      - hostnames: [app.example.com]\n        backends: [127.0.0.1:9001]\n',
);
const other = join(directory, 'other.yaml');
await writeFile(
  other,
  'listeners:\n  - name: public\n    listen: 127.0.0.1:8443\n    routes:\n      - hostnames: [app.example.com]\n        backends: [127.0.0.1:9002]\n',
);

/** Runs a command, collecting what it prints: stdout text and stderr lines. */
async function run(command: (output: { print(text: string): void; fail(line: string): void }) => Promise<number>) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await command({ print: (text) => out.push(text), fail: (line) => err.push(line) });
  return { code, stdout: out.join('\n'), stderr: err };
}

const route = (hostname: string, options: Partial<RouteCommandOptions>) =>
  run((output) => runRouteCommand(hostname, { alpn: [], json: false, ...options }, output));

t.test('route: errors before anything is read exit 2 with one line', async (t) => {
  const cases: Array<[string, Partial<RouteCommandOptions>, string]> = [
    ['app.example.com', {}, 'sni-passthrough route: give --config FILE, --admin URL, or both'],
    ['app.example.com', { config, client: 'nope' }, 'sni-passthrough route: --client nope: not an IP address'],
    ['app.example.com', { config, listener: 'zzz' }, 'sni-passthrough route: no listener "zzz" (the config has "public")'],
    ['app.example.com', { config, alpn: ['h2,'] }, 'sni-passthrough route: invalid ALPN protocol "": expected a name like "h2", "http/1.1" or "acme-tls/1"'],
    ['*.example.com', { config }, 'sni-passthrough route: "*.example.com" is not a server name a client can send'],
    ['app.example.com', { config, admin: 'https://127.0.0.1:1' }, 'sni-passthrough route: --admin "https://127.0.0.1:1": the admin endpoint speaks plain http'],
  ];
  for (const [hostname, options, message] of cases) {
    t.strictSame(await route(hostname, options), { code: 2, stdout: '', stderr: [message] }, message);
  }
});

t.test('route: exit 0 when routed, 1 when not', async (t) => {
  t.equal((await route('APP.example.com.', { config })).code, 0);
  t.equal((await route('other.example.com', { config })).code, 1);
});

t.test('diff: exactly one of --against and --admin; exit 0 for no changes, 1 for changes', async (t) => {
  const message = ['sni-passthrough diff: give either --against OLD.yaml or --admin URL'];
  t.strictSame(await run((output) => runDiffCommand({ config, json: false }, output)), { code: 2, stdout: '', stderr: message });
  t.strictSame(await run((output) => runDiffCommand({ config, against: other, admin: '127.0.0.1:1', json: false }, output)), {
    code: 2,
    stdout: '',
    stderr: message,
  });
  t.equal((await run((output) => runDiffCommand({ config, against: config, json: false }, output))).code, 0);
  const changed = await run((output) => runDiffCommand({ config, against: other, json: true }, output));
  t.equal(changed.code, 1);
  t.match(JSON.parse(changed.stdout), { listeners: { changed: [{ name: 'public' }] } });
});
