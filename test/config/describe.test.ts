import t from 'tap';
import { describeConfig } from '../../lib/config/describe.js';
import { parseConfig } from '../../lib/config/load.js';

/** YAML written flush-left; only the newline after the opening backtick is dropped. */
function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  return String.raw({ raw: strings }, ...values).replace(/^\n/, '');
}

const describe = (text: string): string[] => describeConfig(parseConfig(text, 'proxy.yaml')).split('\n');

t.test('the example from the issue, as `check` prints it', async (t) => {
  const lines = describe(yaml`
defaults:
  clientHelloTimeout: 10s
  connectTimeout: 5s
  idleTimeout: 0
  drainTimeout: 30s
listeners:
  - name: public
    listen: 127.0.0.1:8443
    routes:
      - hostnames: [app.example.com, "*.dev.example.com"]
        backends:
          - 127.0.0.1:9443
          - { address: 127.0.0.1:9444, weight: 2 }
      - hostnames: ["*.example.com"]
        backends: [127.0.0.1:9445]
    default:
      backends: [127.0.0.1:9446]
`);
  t.strictSame(lines, [
    'listener "public" on 127.0.0.1:8443',
    '    clientHelloTimeout 10s, connectTimeout 5s, idleTimeout off, halfCloseTimeout 1m, drainTimeout 30s',
    '    app.example.com, *.dev.example.com -> 127.0.0.1:9443, 127.0.0.1:9444 (weight 2)',
    '        roundrobin, maxFails 3/10s',
    '    *.example.com -> 127.0.0.1:9445',
    '        roundrobin, maxFails 3/10s',
    '    default -> 127.0.0.1:9446',
    '        roundrobin, maxFails 3/10s',
  ]);
});

t.test('several listeners, normalised names, no default', async (t) => {
  const lines = describe(yaml`
listeners:
  - listen: 8443
    idleTimeout: 90s
    drainTimeout: 1500
    routes:
      - hostnames: [Bücher.Example., "*.LOCALHOST"]
        backends: ["[::1]:9443", App.Internal:443]
  - name: dev
    listen: "[::1]:8444"
    clientHelloTimeout: 250ms
    connectTimeout: 1h
    default:
      backends:
        - { address: 127.0.0.1:1, weight: 0 }
        - 127.0.0.1:2
`);
  t.strictSame(lines, [
    'listener ":8443" on :8443',
    '    clientHelloTimeout 10s, connectTimeout 5s, idleTimeout 90s, halfCloseTimeout 1m, drainTimeout 1500ms',
    '    xn--bcher-kva.example, *.localhost -> [::1]:9443, app.internal:443',
    '        roundrobin, maxFails 3/10s',
    '    default -> (none: unrecognized_name alert)',
    'listener "dev" on [::1]:8444',
    '    clientHelloTimeout 250ms, connectTimeout 1h, idleTimeout off, halfCloseTimeout 1m, drainTimeout 30s',
    '    default -> 127.0.0.1:1 (weight 0), 127.0.0.1:2',
    '        roundrobin, maxFails 3/10s',
  ]);
});

t.test('traffic-control settings that differ from the defaults are shown', async (t) => {
  const lines = describe(yaml`
listeners:
  - listen: 127.0.0.1:8443
    acceptProxyProtocol: true
    maxConnections: 1000
    maxConnectionsPerClient: 10
    allow: [10.0.0.0/8, "::1"]
    deny: [10.0.0.7]
    routes:
      - hostnames: [acme.example.com]
        alpn: [acme-tls/1]
        backends: [127.0.0.1:9000]
      - hostnames: [acme.example.com]
        balance: leastconn
        retries: 1
        maxFails: 0
        healthCheck: { interval: 2s }
        proxyProtocol: v2
        deny: [192.0.2.0/24]
        backends:
          - 127.0.0.1:9001
          - { address: 127.0.0.1:9002, weight: 3, proxyProtocol: v1 }
`);
  t.strictSame(lines, [
    'listener "127.0.0.1:8443" on 127.0.0.1:8443',
    '    clientHelloTimeout 10s, connectTimeout 5s, idleTimeout off, halfCloseTimeout 1m, drainTimeout 30s, accepts PROXY protocol, maxConnections 1000, maxConnectionsPerClient 10, allow 10.0.0.0/8 ::1/128, deny 10.0.0.7/32',
    '    acme.example.com [alpn acme-tls/1] -> 127.0.0.1:9000',
    '        roundrobin, maxFails 3/10s',
    '    acme.example.com -> 127.0.0.1:9001 (PROXY v2), 127.0.0.1:9002 (weight 3, PROXY v1)',
    '        leastconn, retries 1, passive health off, health check every 2s, deny 192.0.2.0/24',
    '    default -> (none: unrecognized_name alert)',
  ]);
});

t.test('the peers trusted to send a PROXY header are shown', async (t) => {
  const [, settings] = describe(yaml`
listeners:
  - listen: 127.0.0.1:8443
    acceptProxyProtocol: true
    proxyProtocolFrom: [10.0.0.0/8, "fd00::/8"]
    default: { backends: [127.0.0.1:9000] }
`);
  t.match(settings, /, accepts PROXY protocol from 10\.0\.0\.0\/8 fd00::\/8$/);
});

t.test('canonical addresses, ALPN lists, route access lists and other route options', async (t) => {
  const lines = describe(yaml`
listeners:
  - listen: "[0:0:0:0:0:0:0:1]:8443"
    idleTimeout: 596h
    routes:
      - hostnames: [a.example.com]
        alpn: [h2, http/1.1]
        balance: source
        retries: 0
        maxFails: 5
        failTimeout: 1m30s
        allow: ["2001:DB8:0:0::/32", 192.0.2.7]
        backends: ["[2001:DB8::0:1]:9443"]
      - hostnames: [a.example.com]
        healthCheck: {}
        backends: [{ address: 127.0.0.1:9444, weight: 1, proxyProtocol: v1 }]
  - listen: 0.0.0.0:8444
    default:
      failTimeout: 250ms
      backends: [127.0.0.1:9445]
`);
  t.strictSame(lines, [
    'listener "[::1]:8443" on [::1]:8443',
    '    clientHelloTimeout 10s, connectTimeout 5s, idleTimeout 596h, halfCloseTimeout 1m, drainTimeout 30s',
    '    a.example.com [alpn h2, http/1.1] -> [2001:db8::1]:9443',
    '        source, retries 0, maxFails 5/90s, allow 2001:db8::/32 192.0.2.7/32',
    '    a.example.com -> 127.0.0.1:9444 (PROXY v1)',
    '        roundrobin, maxFails 3/10s, health check every 5s',
    '    default -> (none: unrecognized_name alert)',
    'listener "0.0.0.0:8444" on 0.0.0.0:8444',
    '    clientHelloTimeout 10s, connectTimeout 5s, idleTimeout off, halfCloseTimeout 1m, drainTimeout 30s',
    '    default -> 127.0.0.1:9445',
    '        roundrobin, maxFails 3/250ms',
  ]);
});

t.test('plain-HTTP listeners: redirects and ACME challenge backends', async (t) => {
  const lines = describe(yaml`
listeners:
  - name: web
    listen: 127.0.0.1:8080
    protocol: http
    routes:
      - hostnames: [app.example.com]
        acmeChallenge: [127.0.0.1:8089]
        backends: [127.0.0.1:9000]
      - hostnames: ["*.example.com"]
        redirect: https
        redirectPort: 8443
        deny: [192.0.2.0/24]
    default:
      redirect: https
      healthCheck: {}
      acmeChallenge: [{ address: 127.0.0.1:8089, proxyProtocol: v1 }]
  - name: web-strict
    listen: 127.0.0.1:8081
    protocol: http
    routes:
      - hostnames: [only.example.com]
        redirect: https
`);
  t.strictSame(lines, [
    'listener "web" on 127.0.0.1:8080 (plain HTTP)',
    '    clientHelloTimeout 10s, connectTimeout 5s, idleTimeout off, halfCloseTimeout 1m, drainTimeout 30s',
    '    app.example.com -> 127.0.0.1:9000',
    '        acmeChallenge -> 127.0.0.1:8089',
    '        roundrobin, maxFails 3/10s',
    '    *.example.com -> redirect to https port 8443',
    '        deny 192.0.2.0/24',
    '    default -> redirect to https',
    '        acmeChallenge -> 127.0.0.1:8089 (PROXY v1)',
    '        roundrobin, maxFails 3/10s',
    'listener "web-strict" on 127.0.0.1:8081 (plain HTTP)',
    '    clientHelloTimeout 10s, connectTimeout 5s, idleTimeout off, halfCloseTimeout 1m, drainTimeout 30s',
    '    only.example.com -> redirect to https',
    '    default -> (none: 404 Not Found)',
  ]);
});

t.test('an empty config describes as nothing', async (t) => {
  t.equal(describeConfig({ workers: 1, listeners: [], resolvers: [] } as unknown as Parameters<typeof describeConfig>[0]), '');
});
