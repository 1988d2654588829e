// diffConfigs() (lib/config/diff.ts): pure, what applying one loaded config over another changes,
// one test per kind of change, with the one-line summary the reload log carries.
import t from 'tap';
import { abridgeDiff, type ConfigDiff, diffConfigs, isEmptyDiff, summarizeDiff } from '../../lib/config/diff.js';
import { parseConfig } from '../../lib/config/load.js';

/** YAML written flush-left; only the newline after the opening backtick is dropped. */
function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  return String.raw({ raw: strings }, ...values).replace(/^\n/, '');
}

const diff = (current: string, next: string): ConfigDiff => diffConfigs(parseConfig(current, 'old.yaml'), parseConfig(next, 'new.yaml'));

const base = yaml`
listeners:
  - name: public
    listen: 127.0.0.1:8443
    routes:
      - hostnames: [app.example.com, b.example.com]
        backends: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]
      - hostnames: ["*.example.com"]
        backends: [127.0.0.1:9003]
`;

const noListenerChanges = { added: [], removed: [], changed: [] };

t.test('the same config, formatted differently: nothing changes', async (t) => {
  const reformatted = yaml`
# a comment
listeners:
  - { name: public, listen: "127.0.0.1:8443", routes: [
      { hostnames: [app.example.com, b.example.com], backends: ["127.0.0.1:9001", { address: "127.0.0.1:9002", weight: 3 }] },
      { hostnames: ["*.example.com"], backends: ["127.0.0.1:9003"] } ] }
`;
  const changes = diff(base, reformatted);
  t.strictSame(changes, { listeners: noListenerChanges, closing: [], settings: [] });
  t.ok(isEmptyDiff(changes));
  t.equal(summarizeDiff(changes), 'no change to listeners, routes or backends');
});

t.test('listeners added and removed; a removed listener’s socket closes', async (t) => {
  const next = yaml`
listeners:
  - name: extra
    listen: 127.0.0.1:9443
    protocol: http
    routes:
      - hostnames: [x.example.com]
        backends: [127.0.0.1:9011]
`;
  const changes = diff(base, next);
  t.strictSame(changes.listeners.added, [{ name: 'extra', listen: '127.0.0.1:9443', protocol: 'http' }]);
  t.strictSame(changes.listeners.removed, [{ name: 'public', listen: '127.0.0.1:8443', protocol: 'tls' }]);
  t.strictSame(changes.closing, [{ listener: 'public', listen: '127.0.0.1:8443' }]);
  t.equal(summarizeDiff(changes), '1 listener added, 1 listener removed');
  t.notOk(isEmptyDiff(changes));
});

t.test('a listener rebound to a new address: the old socket closes', async (t) => {
  const changes = diff(base, base.replace('127.0.0.1:8443', '127.0.0.1:8444'));
  t.equal(changes.listeners.changed.length, 1);
  t.strictSame(changes.listeners.changed[0]!.rebound, { from: '127.0.0.1:8443', to: '127.0.0.1:8444' });
  t.strictSame(changes.closing, [{ listener: 'public', listen: '127.0.0.1:8443' }]);
  t.equal(summarizeDiff(changes), '1 listener rebound');
});

t.test('a listener renamed on the same address keeps its socket; a port-0 listener renamed gets a new one', async (t) => {
  const renamed = diff(base, base.replace('name: public', 'name: front'));
  t.strictSame(renamed.listeners.added, []);
  t.strictSame(renamed.listeners.removed, []);
  t.equal(renamed.listeners.changed[0]!.name, 'front');
  t.equal(renamed.listeners.changed[0]!.renamedFrom, 'public');
  t.equal(renamed.listeners.changed[0]!.rebound, null);
  t.strictSame(renamed.closing, [], 'same address: nothing closes');
  t.equal(summarizeDiff(renamed), '1 listener renamed');

  const anyPort = base.replace('127.0.0.1:8443', '127.0.0.1:0');
  const renamedAnyPort = diff(anyPort, anyPort.replace('name: public', 'name: front'));
  t.equal(renamedAnyPort.listeners.added[0]?.name, 'front', 'port 0 says nothing: a new socket');
  t.strictSame(renamedAnyPort.closing, [{ listener: 'public', listen: '127.0.0.1:0' }]);
});

t.test('listener settings', async (t) => {
  const next = base.replace(
    '    listen: 127.0.0.1:8443\n',
    '    listen: 127.0.0.1:8443\n    idleTimeout: 5m\n    maxConnections: 100\n    deny: [192.0.2.0/24]\n',
  );
  const [change] = diff(base, next).listeners.changed;
  t.strictSame(change!.settings, [
    { field: 'idleTimeout', from: 'off', to: '5m' },
    { field: 'maxConnections', from: 'unlimited', to: '100' },
    { field: 'deny', from: 'none', to: '192.0.2.0/24' },
  ]);
  t.equal(summarizeDiff(diff(base, next)), '3 listener settings changed');
});

t.test('routes added and removed whole (no hostname in common)', async (t) => {
  const next = yaml`
listeners:
  - name: public
    listen: 127.0.0.1:8443
    routes:
      - hostnames: [app.example.com, b.example.com]
        backends: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]
      - hostnames: [api.example.com, api2.example.com, api3.example.com, api4.example.com]
        alpn: [h2]
        backends: [127.0.0.1:9010]
`;
  const [change] = diff(base, next).listeners.changed;
  t.strictSame(change!.routes.added, [
    {
      route: '[api.example.com, api2.example.com, api3.example.com +1 more] alpn h2',
      hostnames: ['api.example.com', 'api2.example.com', 'api3.example.com', 'api4.example.com'],
      backends: [{ address: '127.0.0.1:9010', weight: 1 }],
    },
  ]);
  t.strictSame(change!.routes.removed, [{ route: '[*.example.com]', hostnames: ['*.example.com'], backends: [{ address: '127.0.0.1:9003', weight: 1 }] }]);
  t.strictSame(change!.hostnames, { added: [], removed: [], moved: [] }, "whole routes' hostnames are not repeated");
  t.strictSame(change!.routes.changed, []);
  t.equal(summarizeDiff(diff(base, next)), '1 route added, 1 route removed');
});

t.test('hostnames added to and removed from a route that stays', async (t) => {
  const next = base.replace('[app.example.com, b.example.com]', '[app.example.com, new.example.com]');
  const [change] = diff(base, next).listeners.changed;
  t.strictSame(change!.hostnames, {
    added: [{ hostname: 'new.example.com', route: '[app.example.com, new.example.com]' }],
    removed: [{ hostname: 'b.example.com', route: '[app.example.com, new.example.com]' }],
    moved: [],
  });
  t.strictSame(change!.routes, { added: [], removed: [], changed: [] });
  t.equal(summarizeDiff(diff(base, next)), '1 hostname added, 1 hostname removed');
});

t.test('a hostname moved to another route, to a new route, and between ALPN routes of one name', async (t) => {
  const toOther = base.replace('[app.example.com, b.example.com]', '[app.example.com]').replace('["*.example.com"]', '["*.example.com", b.example.com]');
  t.strictSame(diff(base, toOther).listeners.changed[0]!.hostnames.moved, [
    { hostname: 'b.example.com', from: '[app.example.com]', to: '[*.example.com, b.example.com]' },
  ]);
  t.equal(summarizeDiff(diff(base, toOther)), '1 hostname moved');

  const toNew = yaml`
listeners:
  - name: public
    listen: 127.0.0.1:8443
    routes:
      - hostnames: [app.example.com]
        backends: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]
      - hostnames: [b.example.com]
        backends: [127.0.0.1:9020]
      - hostnames: ["*.example.com"]
        backends: [127.0.0.1:9003]
`;
  const [change] = diff(base, toNew).listeners.changed;
  t.strictSame(change!.hostnames.moved, [{ hostname: 'b.example.com', from: '[app.example.com]', to: '[b.example.com]' }]);
  t.strictSame(
    change!.routes.added.map((route) => route.route),
    ['[b.example.com]'],
  );

  const alpnRoutes = yaml`
listeners:
  - name: public
    listen: 127.0.0.1:8443
    routes:
      - hostnames: [app.example.com, tls-alpn.example.com]
        backends: [127.0.0.1:9001]
      - hostnames: [app.example.com]
        alpn: [acme-tls/1]
        backends: [127.0.0.1:9100]
`;
  const swapped = alpnRoutes
    .replace('[app.example.com, tls-alpn.example.com]', '[app.example.com]')
    .replace('hostnames: [app.example.com]\n        alpn', 'hostnames: [app.example.com, tls-alpn.example.com]\n        alpn');
  const [alpnChange] = diff(alpnRoutes, swapped).listeners.changed;
  t.strictSame(alpnChange!.hostnames.moved, [
    { hostname: 'tls-alpn.example.com', from: '[app.example.com]', to: '[app.example.com, tls-alpn.example.com] alpn acme-tls/1' },
  ]);
  t.strictSame(alpnChange!.routes.changed, [], 'each route paired with its own ALPN twin: no setting changed');
});

t.test('route settings: balance, ALPN, terminate, allow', async (t) => {
  const next = base.replace(
    '      - hostnames: ["*.example.com"]\n',
    '      - hostnames: ["*.example.com"]\n        balance: leastconn\n        alpn: [h2]\n        tls: internal\n        allow: [10.0.0.0/8]\n',
  );
  const [change] = diff(base, next).listeners.changed;
  t.strictSame(change!.routes.changed, [
    {
      route: '[*.example.com] alpn h2',
      settings: [
        { field: 'alpn', from: 'any', to: 'h2' },
        { field: 'balance', from: 'roundrobin', to: 'leastconn' },
        { field: 'tls', from: 'passthrough', to: 'terminate with internal, alpn http/1.1' },
        { field: 'allow', from: 'none', to: '10.0.0.0/8' },
      ],
      backends: { added: [], removed: [], changed: [] },
    },
  ]);
  t.equal(summarizeDiff(diff(base, next)), '4 route settings changed');
});

t.test('backends added, removed, and their weight or PROXY protocol changed', async (t) => {
  const next = base.replace(
    'backends: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]',
    'backends: [{ address: 127.0.0.1:9002, weight: 5 }, { address: 127.0.0.1:9004, weight: 2 }]',
  );
  const [change] = diff(base, next).listeners.changed;
  t.strictSame(change!.routes.changed, [
    {
      route: '[app.example.com, b.example.com]',
      settings: [],
      backends: {
        added: [{ address: '127.0.0.1:9004', weight: 2 }],
        removed: [{ address: '127.0.0.1:9001', weight: 1 }],
        changed: [{ address: '127.0.0.1:9002', changes: [{ field: 'weight', from: '3', to: '5' }] }],
      },
    },
  ]);
  t.equal(summarizeDiff(diff(base, next)), '1 backend added, 1 backend removed, 1 backend changed');
  const proxied = base.replace('[127.0.0.1:9003]', '[{ address: 127.0.0.1:9003, proxyProtocol: v2 }]');
  t.strictSame(diff(base, proxied).listeners.changed[0]!.routes.changed[0]!.backends.changed, [
    { address: '127.0.0.1:9003', changes: [{ field: 'proxyProtocol', from: 'off', to: 'v2' }] },
  ]);
});

t.test('the default route: added, changed, removed', async (t) => {
  const withDefault = `${base}    default:\n      backends: [127.0.0.1:9050]\n`;
  t.strictSame(diff(base, withDefault).listeners.changed[0]!.routes.added, [
    { route: 'default', hostnames: [], backends: [{ address: '127.0.0.1:9050', weight: 1 }] },
  ]);
  t.strictSame(
    diff(withDefault, base).listeners.changed[0]!.routes.removed.map((route) => route.route),
    ['default'],
  );
  const changed = diff(withDefault, withDefault.replace('127.0.0.1:9050', '127.0.0.1:9051')).listeners.changed[0]!.routes.changed;
  t.equal(changed[0]!.route, 'default');
  t.strictSame(changed[0]!.backends.added, [{ address: '127.0.0.1:9051', weight: 1 }]);
});

t.test('the admin endpoint and stateDir', async (t) => {
  const next = `admin:\n  listen: 127.0.0.1:9900\nstateDir: /var/lib/sni-passthrough\n${base}`;
  const changes = diff(base, next);
  t.strictSame(changes.settings, [
    { field: 'admin', from: 'off', to: '127.0.0.1:9900' },
    { field: 'stateDir', from: 'default', to: '/var/lib/sni-passthrough' },
  ]);
  t.strictSame(changes.listeners, noListenerChanges);
  t.equal(summarizeDiff(changes), '2 global settings changed');
});

t.test('routes of 20,000 hostnames are paired in one pass', async (t) => {
  const routes = (offset: number): string =>
    Array.from(
      { length: 20_000 },
      (_, index) => `      - hostnames: [h${index + offset}.example.com]\n        backends: [127.0.0.1:${1000 + (index % 50)}]\n`,
    ).join('');
  const head = 'listeners:\n  - name: big\n    listen: 127.0.0.1:8443\n    routes:\n';
  const changes = diff(head + routes(0), head + routes(1));
  const [change] = changes.listeners.changed;
  t.equal(change!.routes.added.length, 1, 'one new hostname at the end');
  t.equal(change!.routes.removed.length, 1, 'one gone at the start');
  t.equal(change!.routes.changed.length, 19_999, 'the rest kept, each with its backend now the next one');
});

t.test('abridgeDiff bounds every list for the log line and leaves out what did not change', async (t) => {
  const long = { listeners: { added: Array.from({ length: 30 }, (_, index) => ({ name: `l${index}`, renamedFrom: null })), removed: [] }, closing: [] };
  const abridged = abridgeDiff(long, 20) as { listeners: { added: unknown[] } };
  t.equal(abridged.listeners.added.length, 21);
  t.equal(abridged.listeners.added[20], '... 10 more');
  t.strictSame(abridged.listeners.added[0], { name: 'l0' }, 'null left out');
  t.strictSame(Object.keys(abridged), ['listeners'], 'empty lists left out');
  t.strictSame(Object.keys(abridged.listeners), ['added']);

  const small = abridgeDiff(diff(base, base.replace('[127.0.0.1:9003]', '[127.0.0.1:9004]')));
  t.strictSame(small, {
    listeners: {
      changed: [
        {
          name: 'public',
          routes: {
            changed: [
              {
                route: '[*.example.com]',
                backends: { added: [{ address: '127.0.0.1:9004', weight: 1 }], removed: [{ address: '127.0.0.1:9003', weight: 1 }] },
              },
            ],
          },
        },
      ],
    },
  });
  t.strictSame(abridgeDiff(diff(base, base)), {}, 'no change: an empty object');
});
