// `sni-passthrough route` and `sni-passthrough diff` through the compiled CLI: the exact output
// for each precedence rule and each kind of change, the exit codes scripts rely on (route: 0
// routed, 1 not, 2 error; diff: 0 none, 1 changes, 2 error), --json, and --admin against a
// running proxy: live backend health, the running generation as the old side, and the
// `config reloaded` line carrying the same summary once the change is applied.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startEchoBackend, unusedAddress } from '../helpers/backends.js';
import { runCli, startProxy } from '../helpers/proxy-process.js';
import { guard } from '../helpers/wait.js';

const GUARD_MS = 60_000;
// About twenty CLI runs (each a Node start) and a proxy: on a machine shared with other suites this can pass tap's
// default 120 s without anything being wrong. This only moves the hang guard.
t.setTimeout(300_000);
const directory = await mkdtemp(join(tmpdir(), 'sni-route-diff-'));
t.teardown(() => rm(directory, { recursive: true, force: true }));

async function file(name: string, text: string): Promise<string> {
  const path = join(directory, name);
  await writeFile(path, text);
  return path;
}

/** CLI runs at once: enough to overlap one's start-up with another's work, few enough that a busy machine is not swamped. */
let freeSlots = 2;
const waitingForSlot: Array<() => void> = [];

/**
 * Runs the CLI once a slot is free; `route` and `diff` end on their own, and
 * the guard (started with the run, not while it waits) only stops a hang.
 */
async function cli(args: string[]): Promise<Awaited<ReturnType<typeof runCli>>> {
  if (freeSlots > 0) freeSlots--;
  else await new Promise<void>((resolve) => waitingForSlot.push(resolve));
  try {
    return await guard(runCli(args), GUARD_MS, `sni-passthrough ${args.join(' ')}`);
  } finally {
    const next = waitingForSlot.shift();
    if (next) next();
    else freeSlots++;
  }
}

const oldConfig = await file(
  'old.yaml',
  `listeners:
  - name: public
    listen: 127.0.0.1:8443
    routes:
      - hostnames: [app.example.com, b.example.com]
        backends: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]
      - hostnames: [app.example.com]
        alpn: [acme-tls/1]
        backends: [127.0.0.1:9100]
      - hostnames: ["*.example.com"]
        balance: leastconn
        backends: [127.0.0.1:9003]
      - hostnames: ["*.b.example.com"]
        backends: [127.0.0.1:9004]
      - hostnames: [private.example.com]
        allow: [10.0.0.0/8]
        backends: [127.0.0.1:9005]
  - name: legacy
    listen: 127.0.0.1:7443
    routes:
      - hostnames: [old.example.com]
        tls: internal
        backends: [127.0.0.1:9006]
    default:
      backends: [127.0.0.1:9007]
`,
);

const newConfig = await file(
  'new.yaml',
  `admin:
  listen: 127.0.0.1:9900
listeners:
  - name: public
    listen: 127.0.0.1:8443
    idleTimeout: 5m
    routes:
      - hostnames: [app.example.com, new.example.com]
        balance: leastconn
        backends: [{ address: 127.0.0.1:9002, weight: 5 }, 127.0.0.1:9008]
      - hostnames: [app.example.com]
        alpn: [acme-tls/1]
        backends: [127.0.0.1:9100]
      - hostnames: ["*.example.com", b.example.com]
        balance: leastconn
        backends: [127.0.0.1:9003]
      - hostnames: [api.example.com]
        backends: [127.0.0.1:9010]
      - hostnames: [private.example.com]
        allow: [10.0.0.0/8]
        backends: [127.0.0.1:9005]
  - name: legacy
    listen: 127.0.0.1:7444
    routes:
      - hostnames: [old.example.com]
        tls: internal
        backends: [127.0.0.1:9006]
    default:
      backends: [127.0.0.1:9007]
  - name: extra
    listen: 127.0.0.1:9443
    routes:
      - hostnames: [x.example.com]
        backends: [127.0.0.1:9011]
`,
);

const reformatted = await file('reformatted.yaml', `# the same, written otherwise\n${(await readFile(oldConfig, 'utf8')).replace(/: \[/g, ':   [')}`);

/** The runs that need no proxy, queued at once so they overlap; each test awaits its own. */
const runs = {
  exact: cli(['route', '--config', oldConfig, 'App.Example.com.']),
  alpn: cli(['route', '--config', oldConfig, '--listener', 'public', '--alpn', 'h2,acme-tls/1', 'app.example.com']),
  wildcard: cli(['route', '--config', oldConfig, '--listener', 'public', 'x.b.example.com']),
  terminate: cli(['route', '--config', oldConfig, '--listener', 'legacy', 'old.example.com']),
  refused: cli(['route', '--config', oldConfig, '--listener', 'public', '--client', '192.0.2.1', 'private.example.com']),
  allowed: cli(['route', '--config', oldConfig, '--listener', 'public', '--client', '10.1.2.3', 'private.example.com']),
  noRoute: cli(['route', '--config', oldConfig, '--listener', 'public', 'example.org']),
  noSni: cli(['route', '--config', oldConfig, '--listener', 'legacy', '']),
  json: cli(['route', '--config', oldConfig, '--listener', 'public', '--json', 'x.b.example.com']),
  diff: cli(['diff', '--config', newConfig, '--against', oldConfig]),
  diffSame: cli(['diff', '--config', reformatted, '--against', oldConfig]),
  diffJson: cli(['diff', '--config', newConfig, '--against', oldConfig, '--json']),
  diffMissing: cli(['diff', '--config', join(directory, 'missing.yaml'), '--against', oldConfig]),
};
// Each is awaited by its test; this only keeps one that a guard rejects early from counting as unhandled.
for (const run of Object.values(runs)) run.catch(() => {});

t.test('route: an exact name outranks the wildcard; the ALPN-only route for that name is skipped', async (t) => {
  const { code, stdout, stderr } = await runs.exact;
  t.equal(stderr, '');
  t.equal(code, 0, 'routed: exit 0');
  t.equal(
    stdout,
    `route for app.example.com

listener "public" on 127.0.0.1:8443 (TLS)
  route:    app.example.com
  rule:     exact name
  outranks: *.example.com
  skipped:  app.example.com [alpn acme-tls/1]: the client offers none of its ALPN protocols
  access:   any client (no allow/deny lists)
  result:   passthrough (TLS is not decrypted)
  backends: roundrobin
            127.0.0.1:9001  weight 1
            127.0.0.1:9002  weight 3

listener "legacy" on 127.0.0.1:7443 (TLS)
  route:    default
  rule:     default route: no hostname of a route matches
  access:   any client (no allow/deny lists)
  result:   passthrough (TLS is not decrypted)
  backends: roundrobin
            127.0.0.1:9007  weight 1
`,
  );
});

t.test('route: ALPN selects the route limited to it', async (t) => {
  const { code, stdout } = await runs.alpn;
  t.equal(code, 0);
  t.equal(
    stdout,
    `route for app.example.com, ALPN h2, acme-tls/1

listener "public" on 127.0.0.1:8443 (TLS)
  route:    app.example.com [alpn acme-tls/1]
  rule:     exact name; limited to ALPN acme-tls/1, which the client offers
  outranks: app.example.com, *.example.com
  access:   any client (no allow/deny lists)
  result:   passthrough (TLS is not decrypted)
  backends: roundrobin
            127.0.0.1:9100  weight 1
`,
  );
});

t.test('route: the longest wildcard, and a terminating route', async (t) => {
  const wildcard = await runs.wildcard;
  t.equal(wildcard.code, 0);
  t.equal(
    wildcard.stdout,
    `route for x.b.example.com

listener "public" on 127.0.0.1:8443 (TLS)
  route:    *.b.example.com
  rule:     longest matching wildcard
  outranks: *.example.com
  access:   any client (no allow/deny lists)
  result:   passthrough (TLS is not decrypted)
  backends: roundrobin
            127.0.0.1:9004  weight 1
`,
  );
  const terminate = await runs.terminate;
  t.equal(terminate.code, 0);
  t.match(terminate.stdout, '  result:   terminate with a certificate from the local CA, then plain TCP to the backends\n');
});

t.test("route: a route's allow list refuses the client: exit 1", async (t) => {
  const { code, stdout } = await runs.refused;
  t.equal(code, 1, 'not routed: exit 1');
  t.equal(
    stdout,
    `route for private.example.com, client 192.0.2.1

listener "public" on 127.0.0.1:8443 (TLS)
  route:    private.example.com
  rule:     exact name
  outranks: *.example.com
  access:   route allow 10.0.0.0/8: 192.0.2.1 refused
  result:   refused (route_access_list): the connection is closed without an answer
`,
  );
  const allowed = await runs.allowed;
  t.equal(allowed.code, 0, 'a client the list allows is routed');
  t.match(allowed.stdout, '  access:   route allow 10.0.0.0/8: 10.1.2.3 allowed\n');
});

t.test('route: no route and no default: the alert, exit 1; the default route for no SNI', async (t) => {
  const none = await runs.noRoute;
  t.equal(none.code, 1);
  t.equal(
    none.stdout,
    `route for example.org

listener "public" on 127.0.0.1:8443 (TLS)
  route:    none: no hostname of a route matches, and there is no default route
  access:   any client (no allow/deny lists)
  result:   refused (no_route): the client gets a fatal unrecognized_name alert
`,
  );
  const noSni = await runs.noSni;
  t.equal(noSni.code, 0);
  t.match(noSni.stdout, 'route for (no server name)\n');
  t.match(noSni.stdout, '  rule:     default route: the client sent no server name\n');
});

t.test('route --json: the structured decision', async (t) => {
  const { code, stdout } = await runs.json;
  t.equal(code, 0);
  const report = JSON.parse(stdout) as { query: unknown; listeners: Array<Record<string, unknown>> };
  t.strictSame(report.query, { serverName: 'x.b.example.com', alpn: [], client: null });
  t.match(report.listeners, [
    {
      listener: 'public',
      rule: 'wildcard',
      result: 'routed',
      candidates: [
        { route: 3, pattern: '*.b.example.com', alpn: [] },
        { route: 2, pattern: '*.example.com', alpn: [] },
      ],
      target: { kind: 'passthrough', balance: 'roundrobin', backends: [{ address: '127.0.0.1:9004', weight: 1 }] },
      health: null,
    },
  ]);
});

t.test('route: a usage error and a config error exit 2 with one line (the rest: test/cli/commands.test.ts)', async (t) => {
  const broken = await file('broken.yaml', 'listeners:\n  - name: public\n    listen: 127.0.0.1:8443\n    bogus: 1\n');
  const [usage, invalid] = await Promise.all([cli(['route', '--config', oldConfig]), cli(['route', '--config', broken, 'app.example.com'])]);
  t.strictSame(usage, { code: 2, stdout: '', stderr: "error: missing required argument 'hostname'\n" });
  t.equal(invalid.code, 2);
  t.equal(invalid.stdout, '');
  t.match(invalid.stderr, new RegExp(`^${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:5: [^\n]+\n$`));
});

const expectedDiff = `--- ${oldConfig}
+++ ${newConfig}
+ listener "extra" on 127.0.0.1:9443 (tls)
~ listener "public"
    idleTimeout: off -> 5m
    + route [api.example.com] -> 127.0.0.1:9010 (weight 1)
    - route [*.b.example.com]
    + hostname new.example.com in route [app.example.com, new.example.com]
    ~ hostname b.example.com moved: route [app.example.com, new.example.com] -> route [*.example.com, b.example.com]
    ~ route [app.example.com, new.example.com]
        balance: roundrobin -> leastconn
        + backend 127.0.0.1:9008 (weight 1)
        - backend 127.0.0.1:9001 (weight 1)
        ~ backend 127.0.0.1:9002: weight: 3 -> 5
~ listener "legacy"
    rebound: 127.0.0.1:7443 -> 127.0.0.1:7444
~ admin: off -> 127.0.0.1:9900

open connections: kept; each goes on with the route and backend it was routed to (changes apply to new connections)
closing: listener "legacy" on 127.0.0.1:7443 stops accepting; its open connections go on until they end
summary: 1 listener added, 1 listener rebound, 1 listener setting changed, 1 route added, 1 route removed, 1 route setting changed, 1 hostname added, 1 hostname moved, 1 backend added, 1 backend removed, 1 backend changed, 1 global setting changed
`;

t.test('diff --against: every change, what happens to connections and closing listeners; exit 1', async (t) => {
  const { code, stdout, stderr } = await runs.diff;
  t.equal(stderr, '');
  t.equal(code, 1, 'differences: exit 1, as diff(1)');
  t.equal(stdout, expectedDiff);
});

t.test('diff: the same config (reformatted) is no change: exit 0', async (t) => {
  const { code, stdout } = await runs.diffSame;
  t.equal(code, 0);
  t.equal(stdout, `--- ${oldConfig}\n+++ ${reformatted}\nno change to listeners, routes or backends\n`);
});

t.test('diff --json, and errors exit 2', async (t) => {
  const json = await runs.diffJson;
  t.equal(json.code, 1);
  const diff = JSON.parse(json.stdout) as Record<string, unknown>;
  t.match(diff, { closing: [{ listener: 'legacy', listen: '127.0.0.1:7443' }], settings: [{ field: 'admin', from: 'off', to: '127.0.0.1:9900' }] });

  // Commander's own usage error; the others are in test/cli/commands.test.ts.
  t.strictSame(await cli(['diff', '--against', oldConfig]), { code: 2, stdout: '', stderr: "error: required option '-c, --config <file>' not specified\n" });
  const missing = await runs.diffMissing;
  t.equal(missing.code, 2);
  t.match(missing.stderr, `${join(directory, 'missing.yaml')}: `);
});

/** POST /reload on the admin endpoint ("host:port"); resolves with the status. */
function postReload(admin: string): Promise<number> {
  const port = Number(admin.slice(admin.lastIndexOf(':') + 1));
  return guard(
    new Promise<number>((resolve, reject) => {
      const request = http.request({ host: '127.0.0.1', port, path: '/reload', method: 'POST', agent: false }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      });
      request.on('error', reject);
      request.end();
    }),
    GUARD_MS,
    'POST /reload',
  );
}

t.test('--admin against a running proxy: live health, the running generation, and the reload line', async (t) => {
  const live = await startEchoBackend('live');
  const dead = await unusedAddress();
  t.teardown(() => live.close());
  const running = `admin:
  listen: 127.0.0.1:0
listeners:
  - name: public
    listen: 127.0.0.1:0
    routes:
      - hostnames: [app.example.com]
        healthCheck: { interval: 200ms, timeout: 1s, rise: 1, fall: 1 }
        backends: [${live.address}, { address: ${dead}, weight: 2 }]
`;
  const proxy = await startProxy(running, { args: ['--no-watch'] });
  t.teardown(() => proxy.stop());
  const admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening', GUARD_MS)).address);
  await proxy.waitForLog((line) => line.msg === 'backend down' && line.backend === dead, GUARD_MS);

  const route = await cli(['route', '--admin', `http://${admin}`, 'app.example.com']);
  t.equal(route.code, 0);
  const width = Math.max(live.address.length, dead.length);
  t.equal(
    route.stdout,
    `route for app.example.com

listener "public" on 127.0.0.1:0 (TLS)
  route:    app.example.com
  rule:     exact name
  access:   any client (no allow/deny lists)
  result:   passthrough (TLS is not decrypted)
  backends: roundrobin
            ${live.address.padEnd(width)}  weight 1  up
            ${dead.padEnd(width)}  weight 2  down
`,
    'the running config, with each backend’s health',
  );

  const other = await unusedAddress();
  const edited = await file('edited.yaml', running.replace(`{ address: ${dead}, weight: 2 }`, `{ address: ${dead}, weight: 4 }, ${other}`));
  const withFile = await cli(['route', '--config', edited, '--admin', admin, 'app.example.com']);
  t.match(
    withFile.stdout,
    `            ${other.padEnd(width)}  weight 1  unknown (not in the running config)\n`,
    'a file’s backend the proxy does not run yet',
  );

  const preview = await cli(['diff', '--config', edited, '--admin', admin]);
  t.equal(preview.code, 1);
  t.equal(
    preview.stdout,
    `--- running generation 1 (http://${admin})
+++ ${edited}
~ listener "public"
    ~ route [app.example.com]
        + backend ${other} (weight 1)
        ~ backend ${dead}: weight: 2 -> 4

open connections: kept; each goes on with the route and backend it was routed to (changes apply to new connections)
summary: 1 backend added, 1 backend changed
`,
  );

  await writeFile(proxy.configFile, await readFile(edited, 'utf8'));
  t.equal(await postReload(admin), 200);
  const reloaded = await proxy.waitForLog((line) => line.msg === 'config reloaded', GUARD_MS);
  t.equal(reloaded.changes, '1 backend added, 1 backend changed', 'the reload line says what the preview said');
  t.match(reloaded.diff, {
    listeners: { changed: [{ name: 'public', routes: { changed: [{ route: '[app.example.com]', backends: { added: [{ address: other, weight: 1 }] } }] } }] },
  });
  t.notOk('closing' in (reloaded.diff as object), 'no listener closes, and the line leaves the empty list out');

  const after = await cli(['diff', '--config', edited, '--admin', admin]);
  t.equal(after.code, 0, 'applied: nothing left to change');
  t.equal(after.stdout, `--- running generation 2 (http://${admin})\n+++ ${edited}\nno change to listeners, routes or backends\n`);
});

t.test('--admin where nothing listens: exit 2, one line', async (t) => {
  const nowhere = await unusedAddress();
  const { code, stderr } = await cli(['diff', '--config', newConfig, '--admin', nowhere]);
  t.equal(code, 2);
  t.equal(stderr, `sni-passthrough diff: admin endpoint ${nowhere}: GET /config: ECONNREFUSED\n`);
});
