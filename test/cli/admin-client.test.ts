// The admin endpoint's client for `route --admin` and `diff --admin` (lib/cli/admin-client.ts):
// the URL forms accepted, health read from the `backend_up` gauge, and GET /config from a real
// AdminServer on 127.0.0.1 port 0, with the errors an operator sees when it goes wrong.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { adminBaseUrl, fetchBackendHealth, fetchRunningConfig, parseBackendHealth } from '../../lib/cli/admin-client.js';
import { parseConfig } from '../../lib/config/load.js';
import { AdminServer } from '../../lib/observe/admin.js';

t.test('adminBaseUrl: host:port or an http:// URL; anything else is refused with a code', async (t) => {
  t.equal(adminBaseUrl('127.0.0.1:9900').href, 'http://127.0.0.1:9900/');
  t.equal(adminBaseUrl('[::1]:9900').href, 'http://[::1]:9900/');
  t.equal(adminBaseUrl('http://localhost:9900/').href, 'http://localhost:9900/');
  t.throws(() => adminBaseUrl('https://127.0.0.1:9900'), { name: 'AdminClientError', code: 'SNIP_ADMIN_URL' });
  t.throws(() => adminBaseUrl('http://[nope'), { code: 'SNIP_ADMIN_URL' });
});

t.test('parseBackendHealth reads the backend_up gauge, escaped label values included, and nothing else', async (t) => {
  const metrics = [
    '# HELP sni_passthrough_backend_up Whether a backend takes new connections',
    '# TYPE sni_passthrough_backend_up gauge',
    'sni_passthrough_backend_up{backend="127.0.0.1:9001"} 1',
    'sni_passthrough_backend_up{backend="[::1]:9002"} 0',
    'sni_passthrough_backend_up{backend="odd\\"name:1"} 1',
    'sni_passthrough_backend_connect_failures_total{backend="127.0.0.1:9003",reason="ECONNREFUSED"} 4',
    '',
  ].join('\n');
  t.strictSame(
    [...parseBackendHealth(metrics)],
    [
      ['127.0.0.1:9001', true],
      ['[::1]:9002', false],
      ['odd"name:1', true],
    ],
  );
});

t.test('fetchRunningConfig and fetchBackendHealth against a real admin endpoint', async (t) => {
  const config = parseConfig('listeners:\n  - name: public\n    listen: 127.0.0.1:0\n    default:\n      backends: [127.0.0.1:9001]\n', 'running.yaml');
  const server = new AdminServer(
    {
      metrics: async () => ({ contentType: 'text/plain', body: 'sni_passthrough_backend_up{backend="127.0.0.1:9001"} 0\n' }),
      ready: () => true,
      config: () => ({ generation: 7, config }),
      reload: async () => ({ status: 200, body: {} }),
      connections: () => [],
      closeConnections: () => 0,
      drainBackend: () => null,
    },
    { anyHost: false, onError: () => {} },
  );
  const address = await server.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  const base = adminBaseUrl(address);
  t.strictSame(await fetchRunningConfig(base), { generation: 7, config: JSON.parse(JSON.stringify(config)) });
  t.strictSame([...(await fetchBackendHealth(base))], [['127.0.0.1:9001', false]]);
});

t.test('an endpoint that is not ours, or not there: SNIP_ADMIN_ANSWER, SNIP_ADMIN_UNREACHABLE', async (t) => {
  const server = http.createServer((request, response) => {
    if (request.url === '/config') response.end('<html>not json</html>');
    else response.writeHead(404).end('nope');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.teardown(() => server.close());
  const base = adminBaseUrl(`127.0.0.1:${port}`);
  await t.rejects(fetchRunningConfig(base), { code: 'SNIP_ADMIN_ANSWER', message: `admin endpoint 127.0.0.1:${port}: GET /config: the answer is not JSON` });
  await t.rejects(fetchBackendHealth(base), { code: 'SNIP_ADMIN_ANSWER', message: `admin endpoint 127.0.0.1:${port}: GET /metrics: answered 404: nope` });
  server.close();
  await new Promise((resolve) => server.once('close', resolve));
  await t.rejects(fetchRunningConfig(base), { code: 'SNIP_ADMIN_UNREACHABLE', message: `admin endpoint 127.0.0.1:${port}: GET /config: ECONNREFUSED` });
});
