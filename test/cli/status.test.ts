// `sni-passthrough status` (lib/cli/status.ts, lib/cli/admin-client.ts): the
// table as a terminal shows it (exact text), the --admin forms accepted, and
// reading a real AdminServer on 127.0.0.1, or failing with one coded error
// when nothing or something else answers there.
import http from 'node:http';
import type net from 'node:net';
import t from 'tap';
import { adminBaseUrl, adminGet } from '../../lib/cli/admin-client.js';
import { fetchStatus, formatTable, renderStatus, type StatusReport } from '../../lib/cli/status.js';
import { AdminServer } from '../../lib/observe/admin.js';
import { matchesFilter } from '../../lib/observe/connection-query.js';
import type { ConnectionSnapshot } from '../../lib/pipeline/record.js';
import { unusedAddress } from '../helpers/backends.js';

const REPORT: StatusReport = {
  generation: 3,
  listeners: [
    { listener: 'public', address: '0.0.0.0:443', protocol: 'tls', open: 12 },
    { listener: 'redirect', address: '0.0.0.0:80', protocol: 'http', open: 0 },
  ],
  backends: [
    { backend: '10.0.0.12:443', up: false, drained: false, active: 0 },
    { backend: '10.0.0.11:443', up: true, drained: true, active: 4 },
    { backend: '10.0.0.13:8443', up: true, drained: false, active: 8 },
  ],
  routes: [
    { listener: 'public', route: '*.example.com', open: 3 },
    { listener: 'public', route: 'app.example.com', open: 8 },
    { listener: 'public', route: null, open: 1 },
  ],
  open: 12,
};

t.test('renderStatus: aligned columns, numbers to the right, backends by address, no trailing spaces', async (t) => {
  t.equal(
    renderStatus(REPORT),
    [
      'generation 3, 12 open connections',
      '',
      'LISTENER  ADDRESS      PROTOCOL  OPEN',
      'public    0.0.0.0:443  tls         12',
      'redirect  0.0.0.0:80   http         0',
      '',
      'BACKEND         HEALTH  DRAIN    ACTIVE',
      '10.0.0.11:443   up      drained       4',
      '10.0.0.12:443   down    -             0',
      '10.0.0.13:8443  up      -             8',
      '',
      'LISTENER  ROUTE            OPEN',
      'public    *.example.com       3',
      'public    app.example.com     8',
      'public    (none)              1',
      '',
    ].join('\n'),
  );
  t.equal(
    renderStatus({ ...REPORT, backends: [], routes: [], open: 1, listeners: [REPORT.listeners[1]!] }),
    [
      'generation 3, 1 open connection',
      '',
      'LISTENER  ADDRESS     PROTOCOL  OPEN',
      'redirect  0.0.0.0:80  http         0',
      '',
      'no backends',
      '',
      'no open connections',
      '',
    ].join('\n'),
  );
});

t.test('formatTable: a header alone, and a cell wider than its title', async (t) => {
  t.equal(formatTable(['A', 'BB'], [], ['left', 'right']), 'A  BB');
  t.equal(formatTable(['A', 'BB'], [['long', '1']], ['left', 'right']), 'A     BB\nlong   1');
});

t.test('adminBaseUrl: a URL or host:port; plain http with a port only', async (t) => {
  t.equal(adminBaseUrl('127.0.0.1:9900').href, 'http://127.0.0.1:9900/');
  t.equal(adminBaseUrl('[::1]:9900').href, 'http://[::1]:9900/');
  t.equal(adminBaseUrl('http://localhost:9900').href, 'http://localhost:9900/');
  for (const bad of ['https://127.0.0.1:9900', '127.0.0.1', 'http://', 'ftp://127.0.0.1:21']) {
    t.throws(() => adminBaseUrl(bad), { name: 'AdminClientError', code: 'SNIP_ADMIN_URL' }, bad);
  }
});

t.test('fetchStatus reads a real admin endpoint: /config and the counts of /connections', async (t) => {
  const open: ConnectionSnapshot[] = [1, 2, 3].map((id) => ({
    id,
    listener: 'public',
    client: `192.0.2.${id}:5000`,
    sni: 'app.example.com',
    alpn: [],
    route: id === 3 ? 'default' : 'app.example.com',
    backend: '10.0.0.11:443',
    state: 'relaying',
    bytesFromClient: 1,
    bytesToClient: 1,
    ageMs: 1,
  }));
  const server = new AdminServer(
    {
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      ready: () => true,
      config: () => ({ generation: 7, config: {}, listeners: REPORT.listeners, backends: REPORT.backends }),
      reload: async () => ({ status: 200, body: {} }),
      connections: (filter) => open.filter((connection) => matchesFilter(connection, filter)),
      closeConnections: () => 0,
      drainBackend: () => null,
    },
    { anyHost: false, onError: (error) => t.fail(error.message) },
  );
  const address = await server.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  t.same(await fetchStatus(address), {
    generation: 7,
    listeners: REPORT.listeners,
    backends: REPORT.backends,
    routes: [
      { listener: 'public', route: 'app.example.com', open: 2 },
      { listener: 'public', route: 'default', open: 1 },
    ],
    open: 3,
  });
});

t.test('nothing listening, or something else answering: one AdminClientError with its code', async (t) => {
  await t.rejects(fetchStatus(await unusedAddress()), { name: 'AdminClientError', code: 'SNIP_ADMIN_UNREACHABLE', message: /ECONNREFUSED/ });

  const other = http.createServer((request, response) => {
    if (request.url === '/text') response.end('hello');
    else if (request.url === '/config' || request.url?.startsWith('/connections')) response.end('{"generation":1,"config":{}}');
    else response.writeHead(404).end('no such page');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  t.teardown(() => other.close());
  const base = adminBaseUrl(`127.0.0.1:${(other.address() as net.AddressInfo).port}`);
  await t.rejects(adminGet(base, '/nothing'), { code: 'SNIP_ADMIN_ANSWER', message: /answered 404: no such page/ });
  await t.rejects(fetchStatus(base.host), { code: 'SNIP_ADMIN_ANSWER', message: /no listeners, backends or connections/ }, 'JSON without what status shows');
  await t.rejects(adminGet(base, '/text'), { code: 'SNIP_ADMIN_ANSWER', message: /not JSON/ });
});
