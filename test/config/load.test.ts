import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, type ConfigErrorCode } from '../../lib/errors.js';
import { DEFAULT_TIMEOUTS, parseConfig } from '../../lib/config/load.js';
import type { BackendConfig, ListenerConfig, ProxyConfig, RouteConfig } from '../../lib/config/types.js';

/**
 * YAML written flush-left in a template string; only the newline right after
 * the opening backtick is dropped, so line 1 is the first line shown and
 * columns are what an editor shows.
 */
function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  return String.raw({ raw: strings }, ...values).replace(/^\n/, '');
}

const FILE = 'proxy.yaml';

interface ExpectedError {
  line: number;
  col: number;
  /** The text found at line:col, to show the position is the offending node (and that the test counted right). */
  at: string;
  /** The message after `FILE:LINE:COL: ` (a string is compared exactly). */
  message: string | RegExp;
  /** Default: SNIP_CONFIG_INVALID (valid YAML, not a valid config). */
  code?: ConfigErrorCode;
}

function textAt(text: string, line: number, col: number, length: number): string {
  return (text.split(/\r?\n/)[line - 1] ?? '').slice(col - 1, col - 1 + length);
}

/** Parses `text`, expects a ConfigError at `line:col` pointing at `at`, with `message`. */
function expectConfigError(t: Test, text: string, expected: ExpectedError, label = 'config error'): void {
  let result: ProxyConfig;
  try {
    result = parseConfig(text, FILE);
  } catch (error) {
    t.ok(error instanceof ConfigError, `${label}: a ConfigError`);
    const configError = error as ConfigError;
    t.equal(configError.code, expected.code ?? 'SNIP_CONFIG_INVALID', `${label}: code`);
    const prefix = `${FILE}:${expected.line}:${expected.col}: `;
    t.ok(configError.message.startsWith(prefix), `${label}: message starts with "${prefix}" (got "${configError.message}")`);
    t.same(configError.position, { line: expected.line, col: expected.col }, `${label}: position`);
    t.equal(configError.file, FILE, `${label}: file`);
    if (typeof expected.message === 'string') t.equal(configError.detail, expected.message, `${label}: detail`);
    else t.match(configError.detail, expected.message, `${label}: detail`);
    t.equal(configError.message, `${prefix}${configError.detail}`, `${label}: message is FILE:LINE:COL: detail`);
    t.equal(textAt(text, expected.line, expected.col, expected.at.length), expected.at, `${label}: the position points at ${JSON.stringify(expected.at)}`);
    return;
  }
  t.fail(`${label}: expected a ConfigError, got ${JSON.stringify(result)}`);
}

function backend(address: string, host: string, port: number, weight = 1): BackendConfig {
  return { address, host, port, weight, proxyProtocol: null };
}

/** The parts of a route issue 2 defines. */
function routeCore(route: RouteConfig | null): unknown {
  return route && { hostnames: route.hostnames, backends: route.backends };
}

/** The parts of a listener issue 2 defines. */
function listenerCore(listener: ListenerConfig): unknown {
  return {
    name: listener.name,
    listen: listener.listen,
    clientHelloTimeout: listener.clientHelloTimeout,
    connectTimeout: listener.connectTimeout,
    idleTimeout: listener.idleTimeout,
    drainTimeout: listener.drainTimeout,
    routes: listener.routes.map(routeCore),
    defaultRoute: routeCore(listener.defaultRoute),
  };
}

// The example from issue 2's "Configuration" section, verbatim.
const issueExample = yaml`
defaults:                       # optional; every key can be overridden per listener
  clientHelloTimeout: 10s       # durations: "250ms", "10s", "5m", "1h" or a number of ms
  connectTimeout: 5s
  idleTimeout: 0                # 0 = never
  drainTimeout: 30s             # how long shutdown waits for open connections
listeners:
  - name: public                # optional, unique; defaults to the listen address
    listen: 127.0.0.1:8443      # "host:port", "[::1]:8443", ":8443" (all interfaces) or a bare port
    routes:
      - hostnames: [app.example.com, "*.dev.example.com"]
        backends:
          - 127.0.0.1:9443                       # "host:port"; host may be a DNS name
          - { address: 127.0.0.1:9444, weight: 2 }
      - hostnames: ["*.example.com"]
        backends: [127.0.0.1:9445]
    default:                    # optional: no SNI, or no route matched
      backends: [127.0.0.1:9446]
`;

t.test('the example from the issue, fully resolved', async (t) => {
  const config = parseConfig(issueExample, FILE);
  t.equal(config.listeners.length, 1);
  t.strictSame(listenerCore(config.listeners[0]!), {
    name: 'public',
    listen: { host: '127.0.0.1', port: 8443 },
    clientHelloTimeout: 10_000,
    connectTimeout: 5_000,
    idleTimeout: 0,
    drainTimeout: 30_000,
    routes: [
      {
        hostnames: ['app.example.com', '*.dev.example.com'],
        backends: [backend('127.0.0.1:9443', '127.0.0.1', 9443), backend('127.0.0.1:9444', '127.0.0.1', 9444, 2)],
      },
      { hostnames: ['*.example.com'], backends: [backend('127.0.0.1:9445', '127.0.0.1', 9445)] },
    ],
    defaultRoute: { hostnames: [], backends: [backend('127.0.0.1:9446', '127.0.0.1', 9446)] },
  });

  t.test('the traffic-control settings (issue 4) take their documented defaults', async (t) => {
    const listener = config.listeners[0]!;
    t.equal(listener.acceptProxyProtocol, false);
    t.equal(listener.maxConnections, 0);
    t.equal(listener.maxConnectionsPerClient, 0);
    t.strictSame(listener.allow, []);
    t.strictSame(listener.deny, []);
    for (const route of [...listener.routes, listener.defaultRoute!]) {
      t.strictSame(
        {
          alpn: route.alpn,
          balance: route.balance,
          retries: route.retries,
          maxFails: route.maxFails,
          failTimeout: route.failTimeout,
          healthCheck: route.healthCheck,
          allow: route.allow,
          deny: route.deny,
        },
        { alpn: [], balance: 'roundrobin', retries: null, maxFails: 3, failTimeout: 10_000, healthCheck: null, allow: [], deny: [] },
        `route ${route.hostnames.join(', ') || 'default'}`,
      );
    }
  });

  t.test('the result is plain JSON data', async (t) => {
    t.strictSame(JSON.parse(JSON.stringify(config)), config);
  });
});

t.test('built-in timeouts when there are no defaults', async (t) => {
  t.strictSame(DEFAULT_TIMEOUTS, { clientHelloTimeout: 10_000, connectTimeout: 5_000, idleTimeout: 0, halfCloseTimeout: 60_000, drainTimeout: 30_000 });
  const config = parseConfig(
    yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:9446]
`,
    FILE,
  );
  const listener = config.listeners[0]!;
  t.strictSame([listener.clientHelloTimeout, listener.connectTimeout, listener.idleTimeout, listener.drainTimeout], [10_000, 5_000, 0, 30_000]);
  t.equal(listener.name, ':8443', 'name defaults to the listen address');
  t.strictSame(listener.routes, [], 'no routes');
});

t.test('defaults cascade: built-in < defaults < listener', async (t) => {
  const config = parseConfig(
    yaml`
defaults:
  connectTimeout: 2s
  idleTimeout: 5m
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:9446] }
  - listen: "[::1]:8444"
    clientHelloTimeout: 250ms
    idleTimeout: 0
    drainTimeout: 1500
    default: { backends: [127.0.0.1:9446] }
  - listen: "127.0.0.1:8445"
    connectTimeout: 1h
    default: { backends: [127.0.0.1:9446] }
`,
    FILE,
  );
  const timeouts = config.listeners.map((listener) => [
    listener.name,
    listener.clientHelloTimeout,
    listener.connectTimeout,
    listener.idleTimeout,
    listener.drainTimeout,
  ]);
  t.strictSame(timeouts, [
    [':8443', 10_000, 2_000, 300_000, 30_000],
    ['[::1]:8444', 250, 2_000, 0, 1_500],
    ['127.0.0.1:8445', 10_000, 3_600_000, 300_000, 30_000],
  ]);
});

t.test('names default to the listen address, in its canonical spelling', async (t) => {
  const config = parseConfig(
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
  - listen: "127.0.0.1:8444"
    default: { backends: [127.0.0.1:1] }
  - listen: "[::1]:8445"
    default: { backends: [127.0.0.1:1] }
  - listen: "*:8446"
    default: { backends: [127.0.0.1:1] }
  - listen: LocalHost:8447
    default: { backends: [127.0.0.1:1] }
  - name: named
    listen: "8448"
    default: { backends: [127.0.0.1:1] }
`,
    FILE,
  );
  t.strictSame(
    config.listeners.map((listener) => [listener.name, listener.listen]),
    [
      [':8443', { host: null, port: 8443 }],
      ['127.0.0.1:8444', { host: '127.0.0.1', port: 8444 }],
      ['[::1]:8445', { host: '::1', port: 8445 }],
      [':8446', { host: null, port: 8446 }],
      ['localhost:8447', { host: 'localhost', port: 8447 }],
      ['named', { host: null, port: 8448 }],
    ],
  );
});

t.test('hostnames: case, trailing dot and Unicode are normalised', async (t) => {
  const config = parseConfig(
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [App.Example.COM., "*.Dev.Example.com.", bücher.example, "*.MÜNCHEN.de", " spaced.example "]
        backends: [App.Internal:443, "[::1]:9443"]
`,
    FILE,
  );
  const route = config.listeners[0]!.routes[0]!;
  t.strictSame(route.hostnames, ['app.example.com', '*.dev.example.com', 'xn--bcher-kva.example', '*.xn--mnchen-3ya.de', 'spaced.example']);
  t.strictSame(
    route.backends,
    [backend('app.internal:443', 'app.internal', 443), backend('[::1]:9443', '::1', 9443)],
    'backend hosts lower-cased, IPv6 in brackets',
  );
});

t.test('weights: default 1, 0 allowed (drain), explicit values kept', async (t) => {
  const config = parseConfig(
    yaml`
listeners:
  - listen: 8443
    default:
      backends:
        - 127.0.0.1:1
        - address: 127.0.0.1:2
        - { address: 127.0.0.1:3, weight: 0 }
        - { address: 127.0.0.1:4, weight: 1000 }
        - { address: 127.0.0.1:5, weight: ~ }
`,
    FILE,
  );
  t.strictSame(
    config.listeners[0]!.defaultRoute!.backends.map((entry) => [entry.address, entry.weight]),
    [
      ['127.0.0.1:1', 1],
      ['127.0.0.1:2', 1],
      ['127.0.0.1:3', 0],
      ['127.0.0.1:4', 1000],
      ['127.0.0.1:5', 1],
    ],
  );
});

t.test('what is allowed and must not be mistaken for an error', async (t) => {
  t.test('the same hostname in two listeners', async (t) => {
    const config = parseConfig(
      yaml`
listeners:
  - listen: 8443
    routes: [{ hostnames: [a.example.com], backends: [127.0.0.1:1] }]
  - listen: 8444
    routes: [{ hostnames: [a.example.com], backends: [127.0.0.1:2] }]
`,
      FILE,
    );
    t.strictSame(
      config.listeners.map((listener) => listener.routes[0]!.hostnames),
      [['a.example.com'], ['a.example.com']],
    );
  });

  t.test('an exact name and the wildcard below it', async (t) => {
    const config = parseConfig(
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [example.com, "*.example.com", "*.a.example.com", a.example.com]
        backends: [127.0.0.1:1]
`,
      FILE,
    );
    t.strictSame(config.listeners[0]!.routes[0]!.hostnames, ['example.com', '*.example.com', '*.a.example.com', 'a.example.com']);
  });

  t.test('the same port on different hosts, and several port-0 listeners', async (t) => {
    const config = parseConfig(
      yaml`
listeners:
  - listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
  - listen: 127.0.0.2:8443
    default: { backends: [127.0.0.1:1] }
  - listen: 0
    default: { backends: [127.0.0.1:1] }
  - name: second-random-port
    listen: 0
    default: { backends: [127.0.0.1:1] }
  - listen: 127.0.0.1:0
    default: { backends: [127.0.0.1:1] }
`,
      FILE,
    );
    t.strictSame(
      config.listeners.map((listener) => listener.name),
      ['127.0.0.1:8443', '127.0.0.2:8443', ':0', 'second-random-port', '127.0.0.1:0'],
    );
  });

  t.test('routes without default, default without routes, empty optional sections', async (t) => {
    const config = parseConfig(
      yaml`
defaults:
listeners:
  - listen: 8443
    routes: [{ hostnames: [a.example.com], backends: [127.0.0.1:1] }]
    default:
  - listen: 8444
    routes:
    default: { backends: [127.0.0.1:1] }
`,
      FILE,
    );
    t.equal(config.listeners[0]!.defaultRoute, null, 'no default: null');
    t.strictSame(config.listeners[1]!.routes, [], 'no routes: empty');
  });

  t.test('Windows line endings and a byte-order mark', async (t) => {
    const text = '\ufefflisteners:\r\n  - listen: 8443\r\n    default: { backends: [127.0.0.1:1] }\r\n';
    t.strictSame(parseConfig(text, FILE).listeners[0]!.listen, { host: null, port: 8443 });
  });
});

t.test('same hostname twice in one listener: the error points at the second', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com, b.example.com, a.example.com]
        backends: [127.0.0.1:1]
`,
    { line: 4, col: 51, at: 'a.example.com]', message: 'hostname "a.example.com" appears more than once in this listener (first at 4:21)' },
    'within one route',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: [127.0.0.1:1]
      - hostnames:
          - b.example.com
          - A.Example.COM.
        backends: [127.0.0.1:2]
`,
    { line: 8, col: 13, at: 'A.Example.COM.', message: 'hostname "a.example.com" appears more than once in this listener (first at 4:21)' },
    'in another route, written in another case with a trailing dot',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: ["*.example.com"]
        backends: [127.0.0.1:1]
      - hostnames: ["*.EXAMPLE.com"]
        backends: [127.0.0.1:2]
`,
    { line: 6, col: 21, at: '"*.EXAMPLE.com"', message: 'hostname "*.example.com" appears more than once in this listener (first at 4:21)' },
    'a wildcard',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [bücher.example, xn--bcher-kva.example]
        backends: [127.0.0.1:1]
`,
    { line: 4, col: 37, at: 'xn--bcher-kva.example', message: 'hostname "xn--bcher-kva.example" appears more than once in this listener (first at 4:21)' },
    'Unicode and its punycode',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: &names [a.example.com]
        backends: [127.0.0.1:1]
      - hostnames: *names
        backends: [127.0.0.1:2]
`,
    { line: 6, col: 20, at: '*names', message: 'hostname "a.example.com" appears more than once in this listener (first at 4:28)' },
    'repeated through a YAML alias: points at the alias',
  );
});

t.test('two listeners on the same address', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - name: first
    listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
  - name: second
    listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
`,
    { line: 6, col: 13, at: '127.0.0.1:8443', message: 'listen address 127.0.0.1:8443 is already used by listener 1' },
    'identical, with names',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: ":8443"
    default: { backends: [127.0.0.1:1] }
  - listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
`,
    { line: 4, col: 13, at: '127.0.0.1:8443', message: 'listen address 127.0.0.1:8443 is already used by listener 1' },
    ':8443 then 127.0.0.1:8443',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
  - listen: "[::1]:9000"
    default: { backends: [127.0.0.1:1] }
  - listen: ":8443"
    default: { backends: [127.0.0.1:1] }
`,
    { line: 6, col: 13, at: '":8443"', message: 'listen address :8443 is already used by listener 1' },
    '127.0.0.1:8443 then :8443',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
  - listen: "[::1]:8443"
    default: { backends: [127.0.0.1:1] }
`,
    { line: 4, col: 13, at: '"[::1]:8443"', message: 'listen address [::1]:8443 is already used by listener 1' },
    'bare port then [::1]',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 127.0.0.1:9000
    default: { backends: [127.0.0.1:1] }
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
  - name: third
    listen: "*:8443"
    default: { backends: [127.0.0.1:1] }
`,
    { line: 7, col: 13, at: '"*:8443"', message: 'listen address :8443 is already used by listener 2' },
    'names the listener it clashes with',
  );

  t.test('identical addresses without names: points at the second listen', async (t) => {
    const text = yaml`
listeners:
  - listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
  - listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
`;
    // The address check runs before the name check, so this is not reported as a duplicate (default) name.
    expectConfigError(t, text, { line: 4, col: 13, at: '127.0.0.1:8443', message: 'listen address 127.0.0.1:8443 is already used by listener 1' });
  });

  t.test('the same address spelt two ways (names default to the canonical spelling)', async (t) => {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: "*:8443"
    default: { backends: [127.0.0.1:1] }
  - listen: ":8443"
    default: { backends: [127.0.0.1:1] }
`,
      { line: 4, col: 13, at: '":8443"', message: 'listen address :8443 is already used by listener 1' },
    );
  });

  t.test('the same IPv6 address spelt two ways', async (t) => {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: "[::1]:8443"
    default: { backends: [127.0.0.1:1] }
  - listen: "[0:0:0:0:0:0:0:1]:8443"
    default: { backends: [127.0.0.1:1] }
`,
      { line: 4, col: 13, at: '"[0:0:0:0:0:0:0:1]:8443"', message: 'listen address [::1]:8443 is already used by listener 1' },
      'long form after short form',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - name: a
    listen: "[2001:DB8::1]:443"
    default: { backends: [127.0.0.1:1] }
  - name: b
    listen: "[2001:db8:0:0:0:0:0:1]:443"
    default: { backends: [127.0.0.1:1] }
`,
      { line: 6, col: 13, at: '"[2001:db8:0:0:0:0:0:1]:443"', message: 'listen address [2001:db8::1]:443 is already used by listener 1' },
      'upper case and zero runs, with names',
    );
    const config = parseConfig(
      yaml`
listeners:
  - listen: "[0:0:0:0:0:0:0:1]:8443"
    default: { backends: ["[0:0:0:0:0:0:0:1]:9443"] }
`,
      FILE,
    );
    t.equal(config.listeners[0]!.name, '[::1]:8443', 'the default name uses the canonical spelling');
    t.strictSame(config.listeners[0]!.listen, { host: '::1', port: 8443 });
    t.strictSame(config.listeners[0]!.defaultRoute!.backends[0], backend('[::1]:9443', '::1', 9443), 'backend hosts are canonicalised too');
  });

  t.test('an unspecified address (0.0.0.0 / [::]) overlaps every host on that port', async (t) => {
    const pair = (first: string, second: string): string => yaml`
listeners:
  - listen: ${first}
    default: { backends: [127.0.0.1:1] }
  - listen: ${second}
    default: { backends: [127.0.0.1:1] }
`;
    expectConfigError(
      t,
      pair('0.0.0.0:8443', '127.0.0.1:8443'),
      { line: 4, col: 13, at: '127.0.0.1:8443', message: 'listen address 127.0.0.1:8443 is already used by listener 1' },
      '0.0.0.0 then 127.0.0.1',
    );
    expectConfigError(
      t,
      pair('127.0.0.1:8443', '0.0.0.0:8443'),
      { line: 4, col: 13, at: '0.0.0.0:8443', message: 'listen address 0.0.0.0:8443 is already used by listener 1' },
      '127.0.0.1 then 0.0.0.0',
    );
    expectConfigError(
      t,
      pair('"[::]:8443"', '"[::1]:8443"'),
      { line: 4, col: 13, at: '"[::1]:8443"', message: 'listen address [::1]:8443 is already used by listener 1' },
      '[::] then [::1]',
    );
    expectConfigError(
      t,
      pair('"[::1]:8443"', '"[0:0:0:0:0:0:0:0]:8443"'),
      { line: 4, col: 13, at: '"[0:0:0:0:0:0:0:0]:8443"', message: 'listen address [::]:8443 is already used by listener 1' },
      '[::1] then [::] in its long form',
    );
    expectConfigError(
      t,
      pair('0.0.0.0:8443', '"[::]:8443"'),
      { line: 4, col: 13, at: '"[::]:8443"', message: 'listen address [::]:8443 is already used by listener 1' },
      '0.0.0.0 then [::]',
    );
    expectConfigError(
      t,
      pair('0.0.0.0:8443', '8443'),
      { line: 4, col: 13, at: '8443', message: 'listen address :8443 is already used by listener 1' },
      '0.0.0.0 then a bare port',
    );
    expectConfigError(
      t,
      pair('0.0.0.0:8443', 'localhost:8443'),
      { line: 4, col: 13, at: 'localhost:8443', message: 'listen address localhost:8443 is already used by listener 1' },
      '0.0.0.0 then a DNS name',
    );
    const config = parseConfig(pair('0.0.0.0:8443', '0.0.0.0:8444'), FILE);
    t.strictSame(
      config.listeners.map((listener) => listener.name),
      ['0.0.0.0:8443', '0.0.0.0:8444'],
      'other ports are free',
    );
  });
});

t.test('duplicate listener names point at the second name', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - name: edge
    listen: 8443
    default: { backends: [127.0.0.1:1] }
  - name: edge
    listen: 8444
    default: { backends: [127.0.0.1:1] }
`,
    { line: 5, col: 11, at: 'edge', message: 'duplicate listener name "edge" (also listener 1)' },
  );
});

t.test('unknown keys point at the key, at every level', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
listner: {}
`,
    { line: 4, col: 1, at: 'listner', message: /^unknown key "listner" \(expected one of: [^)]*\bdefaults, [^)]*\blisteners\b[^)]*\)$/ },
    'top level',
  );
  expectConfigError(
    t,
    yaml`
defaults:
  connectTimeout: 5s
  helloTimeout: 1s
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
`,
    {
      line: 3,
      col: 3,
      at: 'helloTimeout',
      message: 'unknown key "helloTimeout" (expected one of: clientHelloTimeout, connectTimeout, idleTimeout, halfCloseTimeout, drainTimeout)',
    },
    'defaults',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
    route:
      - hostnames: [a.example.com]
`,
    { line: 4, col: 5, at: 'route', message: /^unknown key "route" \(expected one of: name, listen, .*\broutes, default\)$/ },
    'listener',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backend: [127.0.0.1:1]
`,
    { line: 5, col: 9, at: 'backend', message: /^unknown key "backend" \(expected one of: hostnames, .*\bbackends\b.*\)$/ },
    'route',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends:
          - address: 127.0.0.1:1
            wieght: 2
`,
    { line: 7, col: 13, at: 'wieght', message: /^unknown key "wieght" \(expected one of: address, weight\b.*\)$/ },
    'backend mapping (block style)',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: [{ address: 127.0.0.1:1, port: 2 }]
`,
    { line: 5, col: 44, at: 'port', message: /^unknown key "port" \(expected one of: address, weight\b.*\)$/ },
    'backend mapping (flow style)',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:1]
      hostnames: [a.example.com]
`,
    { line: 5, col: 7, at: 'hostnames', message: /^unknown key "hostnames" \(expected one of: backends\b.*\)$/ },
    'default (which has no hostnames)',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
    __proto__: { name: injected }
`,
    { line: 4, col: 5, at: '__proto__', message: /^unknown key "__proto__"/ },
    '__proto__ is just an unknown key',
  );

  t.test('a key that is not a string (e.g. a number) is pointed at too', async (t) => {
    const listenerKeys =
      'name, listen, protocol, clientHelloTimeout, connectTimeout, idleTimeout, halfCloseTimeout, drainTimeout, acceptProxyProtocol, proxyProtocolFrom, maxConnections, maxConnectionsPerClient, allow, deny, quic, routes, default';
    const withKey = (key: string): string => yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
    ${key}: x
`;
    expectConfigError(t, withKey('5'), { line: 4, col: 5, at: '5', message: `unknown key "5" (expected one of: ${listenerKeys})` }, 'an integer');
    expectConfigError(t, withKey('1.5'), { line: 4, col: 5, at: '1.5', message: /^unknown key "1\.5"/ }, 'a float');
    expectConfigError(t, withKey('true'), { line: 4, col: 5, at: 'true', message: /^unknown key "true"/ }, 'a boolean');
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:1]
      0: x
`,
      { line: 5, col: 7, at: '0', message: /^unknown key "0" \(expected one of: backends\b/ },
      'deeper, in a default route',
    );
  });

  t.test('a null key (`~: x`) is pointed at too', async (t) => {
    const text = yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
    ~: x
`;
    try {
      parseConfig(text, FILE);
      t.fail('expected a ConfigError');
    } catch (error) {
      t.same((error as ConfigError).position, { line: 4, col: 5 }, 'at the key');
    }
  });
});

t.test('bad durations point at the value', async (t) => {
  expectConfigError(
    t,
    yaml`
defaults:
  connectTimeout: 5 sec
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
`,
    { line: 2, col: 19, at: '5 sec', message: 'invalid duration "5 sec": use a number with a unit (ms, s, m, h), e.g. "250ms", "10s", "5m"' },
    'in defaults',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    idleTimeout: 10S
    default: { backends: [127.0.0.1:1] }
`,
    { line: 3, col: 18, at: '10S', message: /^invalid duration "10S"/ },
    'in a listener',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    clientHelloTimeout: -1
    default: { backends: [127.0.0.1:1] }
`,
    { line: 3, col: 25, at: '-1', message: 'invalid duration -1: must be a non-negative number of milliseconds' },
    'negative',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    drainTimeout: yes
    default: { backends: [127.0.0.1:1] }
`,
    { line: 3, col: 19, at: 'yes', message: 'invalid duration "yes": use a number with a unit (ms, s, m, h), e.g. "250ms", "10s", "5m"' },
    'a word',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    drainTimeout: true
    default: { backends: [127.0.0.1:1] }
`,
    { line: 3, col: 19, at: 'true', message: 'a duration must be a string like "10s" or a number of milliseconds' },
    'a boolean',
  );

  t.test('a duration Node timers cannot hold is refused at the value', async (t) => {
    const tooLong = (input: string): string => `duration "${input}" is too long (at most 596h, about 24 days)`;
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    connectTimeout: 600h
    default: { backends: [127.0.0.1:1] }
`,
      { line: 3, col: 21, at: '600h', message: tooLong('600h') },
      'connectTimeout in a listener',
    );
    expectConfigError(
      t,
      yaml`
defaults:
  drainTimeout: 1000h
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
`,
      { line: 2, col: 17, at: '1000h', message: tooLong('1000h') },
      'drainTimeout in defaults',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    clientHelloTimeout: 2147483648
    default: { backends: [127.0.0.1:1] }
`,
      { line: 3, col: 25, at: '2147483648', message: 'duration 2147483648 is too long (at most 596h, about 24 days)' },
      'a number of milliseconds',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:1]
      failTimeout: 700h
`,
      { line: 5, col: 20, at: '700h', message: tooLong('700h') },
      'failTimeout',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:1]
      healthCheck: { interval: 600h }
`,
      { line: 5, col: 32, at: '600h', message: tooLong('600h') },
      'healthCheck interval',
    );
    const config = parseConfig(
      yaml`
listeners:
  - listen: 8443
    connectTimeout: 596h
    idleTimeout: 2147483647
    default: { backends: [127.0.0.1:1] }
`,
      FILE,
    );
    t.strictSame([config.listeners[0]!.connectTimeout, config.listeners[0]!.idleTimeout], [2_145_600_000, 2_147_483_647], 'the longest allowed load');
  });
});

t.test('bad listen addresses point at the value', async (t) => {
  const at = (listen: string): string => yaml`
listeners:
  - listen: ${listen}
    default: { backends: [127.0.0.1:1] }
`;
  expectConfigError(t, at('127.0.0.1'), { line: 2, col: 13, at: '127.0.0.1', message: 'invalid address "127.0.0.1": expected "host:port"' }, 'no port');
  expectConfigError(
    t,
    at('"::1:8443"'),
    { line: 2, col: 13, at: '"::1:8443"', message: 'invalid address "::1:8443": write IPv6 addresses in brackets, e.g. "[::1]:8443"' },
    'IPv6 without brackets',
  );
  expectConfigError(t, at('70000'), { line: 2, col: 13, at: '70000', message: 'port 70000 in "70000" is out of range (0-65535)' }, 'port out of range');
  expectConfigError(
    t,
    at('"host name:8443"'),
    { line: 2, col: 13, at: '"host name:8443"', message: 'invalid host "host name" in "host name:8443"' },
    'bad host',
  );
  expectConfigError(t, at('127.0.0.1:https'), { line: 2, col: 13, at: '127.0.0.1:https', message: 'invalid port in "127.0.0.1:https"' }, 'named port');
  expectConfigError(t, at('"127.0.0.1:"'), { line: 2, col: 13, at: '"127.0.0.1:"', message: 'missing port in "127.0.0.1:"' }, 'empty port');
  expectConfigError(
    t,
    at('127.0.0.256:8443'),
    { line: 2, col: 13, at: '127.0.0.256:8443', message: 'invalid host "127.0.0.256" in "127.0.0.256:8443"' },
    'an IPv4 typo is not a DNS name',
  );
});

t.test('bad backend addresses point at the value', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends:
          - 127.0.0.1:9443
          - 127.0.0.1
`,
    { line: 7, col: 13, at: '127.0.0.1', message: 'invalid address "127.0.0.1": expected "host:port"' },
    'no port, second in the list',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:0]
`,
    { line: 4, col: 18, at: '127.0.0.1:0', message: 'port 0 in "127.0.0.1:0" is out of range (1-65535)' },
    'port 0',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends:
        - address: ":9443"
          weight: 2
`,
    { line: 5, col: 20, at: '":9443"', message: 'backend ":9443" needs a host, e.g. "127.0.0.1:9443"' },
    'no host, in a mapping',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends: [10.0.0.1:443, 10.0.0.300:443]
`,
    { line: 4, col: 32, at: '10.0.0.300:443', message: 'invalid backend host "10.0.0.300" in "10.0.0.300:443"' },
    'an IPv4 typo is not a DNS name',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends: [9443]
`,
    { line: 4, col: 18, at: '9443', message: 'a backend address must be a string "host:port"' },
    'a bare port',
  );
});

t.test('a bare "*" is not a hostname', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com, "*"]
        backends: [127.0.0.1:1]
`,
    { line: 4, col: 36, at: '"*"', message: '"*" is not a hostname: put a catch-all backend under the listener\'s "default"' },
  );
});

t.test('"*" anywhere but as the whole first label', async (t) => {
  for (const pattern of ['a.*.example.com', '*example.com', 'foo*.example.com', '*.*.example.com']) {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames:
          - ok.example.com
          - "${pattern}"
        backends: [127.0.0.1:1]
`,
      { line: 6, col: 13, at: `"${pattern}"`, message: `invalid hostname "${pattern}": "*" is only allowed as the whole first label, as in "*.example.com"` },
      pattern,
    );
  }
});

t.test('other invalid hostnames', async (t) => {
  for (const hostname of ['a..example.com', '-a.example.com', 'a b.example.com', 'example.com:443', 'https://example.com']) {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: ["${hostname}"]
        backends: [127.0.0.1:1]
`,
      { line: 4, col: 21, at: `"${hostname}"`, message: `invalid hostname "${hostname}"` },
      hostname,
    );
  }
});

t.test('YAML syntax errors', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
	- listen: 8443
`,
    { line: 2, col: 1, at: '\t', message: /tab/i, code: 'SNIP_CONFIG_SYNTAX' },
    'tab indentation',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
   default: { backends: [127.0.0.1:1] }
`,
    { line: 3, col: 1, at: '   default', message: /^Sequence item without - indicator$/, code: 'SNIP_CONFIG_SYNTAX' },
    'bad indentation',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1]
`,
    { line: 4, col: 1, at: '', message: /must be sufficiently indented and end with a \}/, code: 'SNIP_CONFIG_SYNTAX' },
    'unclosed flow mapping (reported where the file ends)',
  );
  t.test('the message has no position of its own (it is in the prefix)', async (t) => {
    try {
      parseConfig('listeners:\n\t- listen: 8443\n', FILE);
      t.fail('no error');
    } catch (error) {
      t.notMatch((error as Error).message, /at line \d+, column \d+/);
      t.notMatch((error as Error).message, /\n/, 'one line');
    }
  });
});

t.test('duplicate YAML keys point at the second key', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
listeners: []
`,
    { line: 4, col: 1, at: 'listeners', message: 'Map keys must be unique', code: 'SNIP_CONFIG_SYNTAX' },
    'top level',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: [127.0.0.1:1]
        backends: [127.0.0.1:2]
`,
    { line: 6, col: 9, at: 'backends', message: 'Map keys must be unique', code: 'SNIP_CONFIG_SYNTAX' },
    'in a route',
  );
});

t.test('several YAML documents in one file', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
---
listeners: []
`,
    { line: 4, col: 1, at: '---', message: 'the config must be a single YAML document (remove the second "---")', code: 'SNIP_CONFIG_SYNTAX' },
  );
});

t.test('an empty file', async (t) => {
  const message = 'the config is empty: it needs a "listeners" list';
  expectConfigError(t, '', { line: 1, col: 1, at: '', message }, 'no bytes');
  expectConfigError(t, '\n\n   \n', { line: 1, col: 1, at: '', message }, 'blank lines');
  expectConfigError(t, '# sni-passthrough config\n# nothing yet\n', { line: 1, col: 1, at: '#', message }, 'comments only');
});

t.test('missing listeners', async (t) => {
  expectConfigError(
    t,
    yaml`
defaults:
  connectTimeout: 5s
`,
    { line: 1, col: 1, at: 'defaults', message: 'missing required key "listeners"' },
    'absent',
  );
  expectConfigError(t, 'listeners:\n', { line: 1, col: 1, at: 'listeners', message: '"listeners" is empty' }, 'empty value');
  expectConfigError(t, 'defaults: {}\nlisteners: ~\n', { line: 2, col: 1, at: 'listeners', message: '"listeners" is empty' }, 'empty value (~), on the key');
  expectConfigError(t, 'listeners: []\n', { line: 1, col: 12, at: '[]', message: '"listeners" needs at least one listener' }, 'empty list');
});

t.test('wrong types point at the value', async (t) => {
  expectConfigError(t, '- listen: 8443\n', { line: 1, col: 1, at: '- listen', message: 'expected a mapping, got a list' }, 'top level is a list');
  expectConfigError(t, 'listeners\n', { line: 1, col: 1, at: 'listeners', message: 'expected a mapping, got string "listeners"' }, 'top level is a string');
  expectConfigError(
    t,
    yaml`
listeners:
  listen: 8443
`,
    { line: 2, col: 3, at: 'listen', message: 'expected a list, got a mapping' },
    'listeners is a mapping',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - name: 5
    listen: 8443
    default: { backends: [127.0.0.1:1] }
`,
    { line: 2, col: 11, at: '5', message: 'expected a string, got number 5' },
    'name is a number',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: true
    default: { backends: [127.0.0.1:1] }
`,
    { line: 2, col: 13, at: 'true', message: 'a listen address must be a string like "127.0.0.1:8443" or a port number' },
    'listen is a boolean',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: a.example.com
        backends: [127.0.0.1:1]
`,
    { line: 4, col: 20, at: 'a.example.com', message: 'expected a list, got string "a.example.com"' },
    'hostnames is a string',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: 127.0.0.1:1
`,
    { line: 5, col: 19, at: '127.0.0.1:1', message: 'expected a list, got string "127.0.0.1:1"' },
    'backends is a string',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends:
        - { address: 127.0.0.1:1, weight: "2" }
`,
    { line: 5, col: 43, at: '"2"', message: 'expected an integer, got string "2"' },
    'weight is a string',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends:
        - { address: 127.0.0.1:1, weight: 1.5 }
`,
    { line: 5, col: 43, at: '1.5', message: 'expected an integer, got number 1.5' },
    'weight is a fraction',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends:
        - { address: 127.0.0.1:1, weight: -1 }
`,
    { line: 5, col: 43, at: '-1', message: '-1 is out of range (0-1000)' },
    'weight is negative',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      - backends: [127.0.0.1:1]
`,
    { line: 4, col: 7, at: '- backends', message: 'expected a mapping, got a list' },
    'default is a list',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      hostnames: [a.example.com]
      backends: [127.0.0.1:1]
`,
    { line: 4, col: 7, at: 'hostnames', message: 'expected a list, got a mapping' },
    'routes is a mapping',
  );
});

t.test('missing required keys point at the mapping that lacks them', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - name: public
    default: { backends: [127.0.0.1:1] }
`,
    { line: 2, col: 5, at: 'name', message: 'missing required key "listen"' },
    'listen',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
`,
    { line: 4, col: 9, at: 'hostnames', message: 'missing required key "backends"' },
    'backends',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - backends: [127.0.0.1:1]
`,
    { line: 4, col: 9, at: 'backends', message: 'missing required key "hostnames"' },
    'hostnames',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends:
        - weight: 2
`,
    { line: 5, col: 11, at: 'weight', message: 'missing required key "address"' },
    'backend address',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: []
        backends: []
`,
    { line: 4, col: 20, at: '[]', message: '"hostnames" needs at least one hostname' },
    'empty hostnames',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: []
`,
    { line: 5, col: 19, at: '[]', message: '"backends" needs at least one backend' },
    'empty backends',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends: []
`,
    { line: 4, col: 17, at: '[]', message: '"backends" needs at least one backend' },
    'empty backends in a default',
  );
});

t.test('required keys present but empty point at the key', async (t) => {
  expectConfigError(
    t,
    yaml`
listeners:
  - name: public
    listen:
    default: { backends: [127.0.0.1:1] }
`,
    { line: 3, col: 5, at: 'listen', message: '"listen" is empty' },
    'listen',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends:
`,
    { line: 5, col: 9, at: 'backends', message: '"backends" is empty' },
    'backends',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default:
      backends:
        - address: ~
          weight: 2
`,
    { line: 5, col: 11, at: 'address', message: '"address" is empty' },
    'backend address',
  );
  expectConfigError(
    t,
    yaml`
admin:
  listen:
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
`,
    { line: 2, col: 3, at: 'listen', message: '"listen" is empty' },
    'admin listen',
  );
});

t.test('a listener with neither routes nor default', async (t) => {
  const message = 'listener needs "routes" or a "default" (or both)';
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
  - name: empty
    listen: 8444
`,
    { line: 4, col: 5, at: 'name: empty', message },
    'no keys for either',
  );
  expectConfigError(
    t,
    yaml`
listeners:
  - listen: 8443
    routes: []
    default:
`,
    { line: 2, col: 5, at: 'listen', message },
    'empty routes, empty default',
  );
});

t.test('the file name is used as given', async (t) => {
  try {
    parseConfig('listeners: 5\n', '/etc/sni-passthrough/proxy.yaml');
    t.fail('no error');
  } catch (error) {
    t.equal((error as Error).message, '/etc/sni-passthrough/proxy.yaml:1:12: expected a list, got number 5');
    t.equal((error as ConfigError).name, 'ConfigError');
  }
});

t.test('admin endpoint', async (t) => {
  const withAdmin = (admin: string): string => yaml`
admin:
${admin}
listeners:
  - listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
`;
  const notLoopback = (address: string): string =>
    `admin endpoint on ${address} is not loopback: it has no authentication, so set "allowRemote: true" to expose it`;

  t.test('off by default', async (t) => {
    t.equal(parseConfig(issueExample, FILE).admin, null, 'no admin section');
    t.equal(parseConfig(withAdmin(''), FILE).admin, null, 'an empty admin section');
  });

  t.test('loopback addresses need no allowRemote; it defaults to false', async (t) => {
    const cases: Array<[string, { host: string; port: number }]> = [
      ['127.0.0.1:9900', { host: '127.0.0.1', port: 9900 }],
      ['127.1.2.3:9900', { host: '127.1.2.3', port: 9900 }],
      ['localhost:9900', { host: 'localhost', port: 9900 }],
      ['LocalHost:9900', { host: 'localhost', port: 9900 }],
      ['"[::1]:9900"', { host: '::1', port: 9900 }],
      ['"[0:0:0:0:0:0:0:1]:9900"', { host: '::1', port: 9900 }],
      ['"[::ffff:127.0.0.1]:9900"', { host: '::ffff:127.0.0.1', port: 9900 }],
      ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ];
    for (const [listen, expected] of cases) {
      t.strictSame(parseConfig(withAdmin(`  listen: ${listen}`), FILE).admin, { listen: expected, allowRemote: false }, listen);
    }
    t.strictSame(
      parseConfig(withAdmin('  listen: 127.0.0.1:9900\n  allowRemote: false'), FILE).admin,
      { listen: { host: '127.0.0.1', port: 9900 }, allowRemote: false },
      'explicit false',
    );
    t.strictSame(
      parseConfig(withAdmin('  listen: 127.0.0.1:9900\n  allowRemote: true'), FILE).admin,
      { listen: { host: '127.0.0.1', port: 9900 }, allowRemote: true },
      'allowRemote on a loopback address is kept',
    );
  });

  t.test('any other address needs allowRemote: true, and the error points at admin.listen', async (t) => {
    const cases: Array<[string, string]> = [
      ['9900', ':9900'],
      ['":9900"', ':9900'],
      ['"*:9900"', ':9900'],
      ['0.0.0.0:9900', '0.0.0.0:9900'],
      ['"[::]:9900"', '[::]:9900'],
      ['10.0.0.5:9900', '10.0.0.5:9900'],
      ['"[2001:db8::1]:9900"', '[2001:db8::1]:9900'],
      ['admin.internal:9900', 'admin.internal:9900'],
      ['128.0.0.1:9900', '128.0.0.1:9900'],
    ];
    for (const [listen, shown] of cases) {
      expectConfigError(t, withAdmin(`  listen: ${listen}`), { line: 2, col: 11, at: listen, message: notLoopback(shown) }, listen);
    }
    expectConfigError(
      t,
      withAdmin(`  listen: 0.0.0.0:9900\n  allowRemote: false`),
      { line: 2, col: 11, at: '0.0.0.0:9900', message: notLoopback('0.0.0.0:9900') },
      'explicit false',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 127.0.0.1:8443
    default: { backends: [127.0.0.1:1] }
admin: { listen: 9900 }
`,
      { line: 4, col: 18, at: '9900', message: notLoopback(':9900') },
      'flow style, after the listeners',
    );
    for (const listen of ['9900', '0.0.0.0:9900', '"[::]:9900"', '10.0.0.5:9900', 'admin.internal:9900']) {
      const config = parseConfig(withAdmin(`  listen: ${listen}\n  allowRemote: true`), FILE);
      t.equal(config.admin?.allowRemote, true, `${listen} with allowRemote: true`);
    }
  });

  t.test('the admin address must not clash with a listener', async (t) => {
    const clash = (listener: string, admin: string): string => yaml`
admin:
  listen: ${admin}
  allowRemote: true
listeners:
  - listen: 127.0.0.1:9000
    default: { backends: [127.0.0.1:1] }
  - listen: ${listener}
    default: { backends: [127.0.0.1:1] }
`;
    expectConfigError(
      t,
      clash('127.0.0.1:8443', '127.0.0.1:8443'),
      { line: 2, col: 11, at: '127.0.0.1:8443', message: 'admin address 127.0.0.1:8443 is already used by listener 2' },
      'the same address',
    );
    expectConfigError(
      t,
      clash('8443', '127.0.0.1:8443'),
      { line: 2, col: 11, at: '127.0.0.1:8443', message: 'admin address 127.0.0.1:8443 is already used by listener 2' },
      'a listener on all interfaces',
    );
    expectConfigError(
      t,
      clash('0.0.0.0:8443', '127.0.0.1:8443'),
      { line: 2, col: 11, at: '127.0.0.1:8443', message: 'admin address 127.0.0.1:8443 is already used by listener 2' },
      'a listener on 0.0.0.0',
    );
    expectConfigError(
      t,
      clash('127.0.0.1:8443', '8443'),
      { line: 2, col: 11, at: '8443', message: 'admin address :8443 is already used by listener 2' },
      'admin on all interfaces',
    );
    expectConfigError(
      t,
      clash('"[::1]:8443"', '"[::]:8443"'),
      { line: 2, col: 11, at: '"[::]:8443"', message: 'admin address [::]:8443 is already used by listener 2' },
      'admin on [::]',
    );
    expectConfigError(
      t,
      clash('"[::1]:8443"', '"[0:0:0:0:0:0:0:1]:8443"'),
      { line: 2, col: 11, at: '"[0:0:0:0:0:0:0:1]:8443"', message: 'admin address [::1]:8443 is already used by listener 2' },
      'the same IPv6 address spelt two ways',
    );
    t.equal(parseConfig(clash('127.0.0.1:8443', '127.0.0.2:8443'), FILE).admin?.listen.host, '127.0.0.2', 'another host on the same port is fine');
    t.equal(parseConfig(clash('127.0.0.1:8443', '127.0.0.1:8444'), FILE).admin?.listen.port, 8444, 'another port is fine');
    t.equal(parseConfig(clash('127.0.0.1:0', '127.0.0.1:0'), FILE).admin?.listen.port, 0, 'port 0 never clashes');
  });

  t.test('shape errors', async (t) => {
    expectConfigError(
      t,
      withAdmin('  listen: 127.0.0.1:9900\n  allowRemote: yes'),
      { line: 3, col: 16, at: 'yes', message: 'expected true or false, got string "yes"' },
      'allowRemote: yes',
    );
    expectConfigError(
      t,
      withAdmin('  listen: 127.0.0.1:9900\n  auth: token'),
      { line: 3, col: 3, at: 'auth', message: 'unknown key "auth" (expected one of: listen, allowRemote)' },
      'unknown key',
    );
    expectConfigError(t, withAdmin('  allowRemote: true'), { line: 2, col: 3, at: 'allowRemote', message: 'missing required key "listen"' }, 'no listen');
    expectConfigError(t, withAdmin('  listen: "127.0.0.1:"'), { line: 2, col: 11, at: '"127.0.0.1:"', message: 'missing port in "127.0.0.1:"' }, 'bad address');
    expectConfigError(
      t,
      'admin: 127.0.0.1:9900\nlisteners:\n  - listen: 8443\n    default: { backends: [127.0.0.1:1] }\n',
      { line: 1, col: 8, at: '127.0.0.1:9900', message: 'expected a mapping, got string "127.0.0.1:9900"' },
      'admin is a string',
    );
  });
});

t.test('ALPN routes', async (t) => {
  t.test('the same hostname with disjoint ALPN lists, or once without ALPN', async (t) => {
    const config = parseConfig(
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com, "*.example.com"]
        alpn: [h2]
        backends: [127.0.0.1:1]
      - hostnames: [a.example.com]
        alpn: [http/1.1, acme-tls/1]
        backends: [127.0.0.1:2]
      - hostnames: [a.example.com, "*.example.com"]
        backends: [127.0.0.1:3]
`,
      FILE,
    );
    t.strictSame(
      config.listeners[0]!.routes.map((route) => [route.hostnames, route.alpn]),
      [
        [['a.example.com', '*.example.com'], ['h2']],
        [['a.example.com'], ['http/1.1', 'acme-tls/1']],
        [['a.example.com', '*.example.com'], []],
      ],
    );
  });

  t.test('overlapping ALPN lists for the same hostname point at the second hostname', async (t) => {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        alpn: [http/1.1, h2]
        backends: [127.0.0.1:1]
      - hostnames: [b.example.com, A.Example.com]
        alpn: [h2]
        backends: [127.0.0.1:2]
`,
      { line: 7, col: 36, at: 'A.Example.com', message: 'hostname "a.example.com" with ALPN "h2" appears more than once in this listener (first at 4:21)' },
      'h2 twice',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: ["*.example.com"]
        alpn: [acme-tls/1]
        backends: [127.0.0.1:1]
      - hostnames: ["*.example.com"]
        alpn: [h2, acme-tls/1]
        backends: [127.0.0.1:2]
`,
      {
        line: 7,
        col: 21,
        at: '"*.example.com"',
        message: 'hostname "*.example.com" with ALPN "acme-tls/1" appears more than once in this listener (first at 4:21)',
      },
      'a wildcard, the shared protocol named',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: [127.0.0.1:1]
      - hostnames: [a.example.com]
        backends: [127.0.0.1:2]
        alpn: [h2]
      - hostnames: [a.example.com]
        backends: [127.0.0.1:3]
`,
      { line: 9, col: 21, at: 'a.example.com', message: 'hostname "a.example.com" appears more than once in this listener (first at 4:21)' },
      'without ALPN twice: no ALPN in the message',
    );
  });

  t.test('bad ALPN lists', async (t) => {
    const route = (alpn: string): string => yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        alpn: ${alpn}
        backends: [127.0.0.1:1]
`;
    expectConfigError(t, route('[]'), { line: 5, col: 15, at: '[]', message: '"alpn" needs at least one protocol' }, 'empty list');
    expectConfigError(t, route('h2'), { line: 5, col: 15, at: 'h2', message: 'expected a list, got string "h2"' }, 'a string');
    expectConfigError(
      t,
      route('[h2, "a b"]'),
      { line: 5, col: 20, at: '"a b"', message: 'invalid ALPN protocol "a b": expected a name like "h2", "http/1.1" or "acme-tls/1"' },
      'a space',
    );
    expectConfigError(
      t,
      route('[h2, 2]'),
      { line: 5, col: 20, at: '2', message: 'invalid ALPN protocol 2: expected a name like "h2", "http/1.1" or "acme-tls/1"' },
      'a number',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:1]
      alpn: [h2]
`,
      { line: 5, col: 7, at: 'alpn', message: /^unknown key "alpn" \(expected one of: backends\b/ },
      'not in a default route',
    );
  });
});

t.test('route options', async (t) => {
  t.test('defaults', async (t) => {
    const config = parseConfig(
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: [127.0.0.1:1]
      - hostnames: [b.example.com]
        backends: [127.0.0.1:2]
        balance: ~
        healthCheck:
    default: { backends: [127.0.0.1:3] }
`,
      FILE,
    );
    const listener = config.listeners[0]!;
    for (const route of [...listener.routes, listener.defaultRoute!]) {
      t.strictSame(
        {
          alpn: route.alpn,
          balance: route.balance,
          retries: route.retries,
          maxFails: route.maxFails,
          failTimeout: route.failTimeout,
          healthCheck: route.healthCheck,
          allow: route.allow,
          deny: route.deny,
        },
        { alpn: [], balance: 'roundrobin', retries: null, maxFails: 3, failTimeout: 10_000, healthCheck: null, allow: [], deny: [] },
        route.hostnames.join(', ') || 'default',
      );
    }
  });

  t.test('explicit values', async (t) => {
    const config = parseConfig(
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: [127.0.0.1:1]
        balance: leastconn
        retries: 0
        maxFails: 0
        failTimeout: 1m
        healthCheck: {}
      - hostnames: [b.example.com]
        backends: [127.0.0.1:2]
        balance: source
        retries: 100
        maxFails: 1000
        failTimeout: 0
        healthCheck: { interval: 1s, timeout: 250ms, rise: 1, fall: 100 }
    default:
      backends: [127.0.0.1:3]
      balance: roundrobin
      retries: 2
      healthCheck:
        interval: 30s
`,
      FILE,
    );
    const listener = config.listeners[0]!;
    const options = (route: RouteConfig): unknown => ({
      balance: route.balance,
      retries: route.retries,
      maxFails: route.maxFails,
      failTimeout: route.failTimeout,
      healthCheck: route.healthCheck,
    });
    t.strictSame(
      options(listener.routes[0]!),
      { balance: 'leastconn', retries: 0, maxFails: 0, failTimeout: 60_000, healthCheck: { interval: 5_000, timeout: 2_000, rise: 2, fall: 3 } },
      'healthCheck: {} takes every default',
    );
    t.strictSame(
      options(listener.routes[1]!),
      { balance: 'source', retries: 100, maxFails: 1000, failTimeout: 0, healthCheck: { interval: 1_000, timeout: 250, rise: 1, fall: 100 } },
      'every value set',
    );
    t.strictSame(
      options(listener.defaultRoute!),
      { balance: 'roundrobin', retries: 2, maxFails: 3, failTimeout: 10_000, healthCheck: { interval: 30_000, timeout: 2_000, rise: 2, fall: 3 } },
      'in the default route, partly set',
    );
  });

  t.test('bad values point at the value', async (t) => {
    const option = (text: string): string => yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:1]
      ${text}
`;
    expectConfigError(
      t,
      option('balance: random'),
      { line: 5, col: 16, at: 'random', message: 'expected one of roundrobin, leastconn, source, got string "random"' },
      'balance',
    );
    expectConfigError(t, option('retries: 101'), { line: 5, col: 16, at: '101', message: '101 is out of range (0-100)' }, 'retries');
    expectConfigError(t, option('retries: -1'), { line: 5, col: 16, at: '-1', message: '-1 is out of range (0-100)' }, 'negative retries');
    expectConfigError(t, option('maxFails: 1001'), { line: 5, col: 17, at: '1001', message: '1001 is out of range (0-1000)' }, 'maxFails');
    expectConfigError(t, option('maxFails: .nan'), { line: 5, col: 17, at: '.nan', message: 'expected an integer, got number NaN' }, 'maxFails .nan');
    expectConfigError(t, option('retries: .inf'), { line: 5, col: 16, at: '.inf', message: 'expected an integer, got number Infinity' }, 'retries .inf');
    expectConfigError(t, option('failTimeout: 10 s'), { line: 5, col: 20, at: '10 s', message: /^invalid duration "10 s"/ }, 'failTimeout');
    expectConfigError(t, option('healthCheck: { interval: 0 }'), { line: 5, col: 32, at: '0', message: 'must be longer than 0' }, 'healthCheck interval 0');
    expectConfigError(
      t,
      option('healthCheck: { interval: 0ms }'),
      { line: 5, col: 32, at: '0ms', message: 'must be longer than 0' },
      'healthCheck interval 0ms',
    );
    expectConfigError(
      t,
      option('healthCheck: { timeout: "0s" }'),
      { line: 5, col: 31, at: '"0s"', message: 'must be longer than 0' },
      'healthCheck timeout 0s',
    );
    expectConfigError(t, option('healthCheck: { rise: 0 }'), { line: 5, col: 28, at: '0', message: '0 is out of range (1-100)' }, 'healthCheck rise 0');
    expectConfigError(t, option('healthCheck: { fall: 101 }'), { line: 5, col: 28, at: '101', message: '101 is out of range (1-100)' }, 'healthCheck fall 101');
    expectConfigError(
      t,
      option('healthCheck: { path: /healthz }'),
      { line: 5, col: 22, at: 'path', message: 'unknown key "path" (expected one of: interval, timeout, rise, fall)' },
      'healthCheck unknown key',
    );
    expectConfigError(t, option('healthCheck: true'), { line: 5, col: 20, at: 'true', message: 'expected a mapping, got boolean true' }, 'healthCheck: true');
  });
});

t.test("PROXY protocol towards backends: the backend's own, else the route's, else none", async (t) => {
  const config = parseConfig(
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        proxyProtocol: v2
        backends:
          - 127.0.0.1:1
          - { address: 127.0.0.1:2, proxyProtocol: v1 }
          - { address: 127.0.0.1:3, weight: 2 }
      - hostnames: [b.example.com]
        backends:
          - 127.0.0.1:4
          - { address: 127.0.0.1:5, proxyProtocol: v2 }
    default:
      proxyProtocol: v1
      backends: [127.0.0.1:6, { address: 127.0.0.1:7, proxyProtocol: v2 }]
`,
    FILE,
  );
  const listener = config.listeners[0]!;
  const versions = (route: RouteConfig): unknown => route.backends.map((entry) => [entry.address, entry.proxyProtocol]);
  t.strictSame(
    versions(listener.routes[0]!),
    [
      ['127.0.0.1:1', 'v2'],
      ['127.0.0.1:2', 'v1'],
      ['127.0.0.1:3', 'v2'],
    ],
    'route v2: inherited unless the backend says otherwise',
  );
  t.strictSame(
    versions(listener.routes[1]!),
    [
      ['127.0.0.1:4', null],
      ['127.0.0.1:5', 'v2'],
    ],
    'no route setting: only the backend that asks',
  );
  t.strictSame(
    versions(listener.defaultRoute!),
    [
      ['127.0.0.1:6', 'v1'],
      ['127.0.0.1:7', 'v2'],
    ],
    'the default route too',
  );
  t.equal(listener.routes[0]!.backends[2]!.weight, 2, 'weight unaffected');
  t.notOk('proxyProtocol' in listener.routes[0]!, 'the route keeps no proxyProtocol of its own: it is resolved into the backends');

  const bad = (text: string): string => yaml`
listeners:
  - listen: 8443
    default:
      ${text}
`;
  expectConfigError(
    t,
    bad('backends: [{ address: 127.0.0.1:1, proxyProtocol: v3 }]'),
    { line: 4, col: 57, at: 'v3', message: 'expected one of v1, v2, got string "v3"' },
    'backend v3',
  );
  expectConfigError(
    t,
    bad('proxyProtocol: 2\n      backends: [127.0.0.1:1]'),
    { line: 4, col: 22, at: '2', message: 'expected one of v1, v2, got number 2' },
    'route 2',
  );
  expectConfigError(
    t,
    bad('proxyProtocol: V1\n      backends: [127.0.0.1:1]'),
    { line: 4, col: 22, at: 'V1', message: 'expected one of v1, v2, got string "V1"' },
    'case-sensitive',
  );
});

t.test('listener traffic settings', async (t) => {
  t.test('defaults', async (t) => {
    const listener = parseConfig('listeners:\n  - listen: 8443\n    default: { backends: [127.0.0.1:1] }\n', FILE).listeners[0]!;
    t.strictSame(
      {
        acceptProxyProtocol: listener.acceptProxyProtocol,
        proxyProtocolFrom: listener.proxyProtocolFrom,
        maxConnections: listener.maxConnections,
        maxConnectionsPerClient: listener.maxConnectionsPerClient,
        allow: listener.allow,
        deny: listener.deny,
      },
      { acceptProxyProtocol: false, proxyProtocolFrom: [], maxConnections: 0, maxConnectionsPerClient: 0, allow: [], deny: [] },
    );
  });

  t.test('explicit values, CIDRs in canonical form', async (t) => {
    const config = parseConfig(
      yaml`
listeners:
  - listen: 8443
    acceptProxyProtocol: true
    proxyProtocolFrom: [10.0.0.0/8, "2001:DB8::/32", 192.0.2.1]
    maxConnections: 10000000
    maxConnectionsPerClient: 10
    allow: [10.0.0.0/8, 192.0.2.7, "2001:DB8:0:0::/32", "0:0:0:0:0:0:0:1", " 172.16.0.0/012 "]
    deny:
      - 10.1.0.0/16
      - "::/0"
    routes:
      - hostnames: [a.example.com]
        backends: [127.0.0.1:1]
        allow: ["FE80::1/64"]
        deny: [0.0.0.0/0]
    default:
      backends: [127.0.0.1:2]
      allow: [127.0.0.1]
  - listen: 8444
    acceptProxyProtocol: false
    maxConnections: 0
    allow: []
    deny: ~
    default: { backends: [127.0.0.1:3] }
`,
      FILE,
    );
    const [first, second] = config.listeners;
    t.strictSame(
      { acceptProxyProtocol: first!.acceptProxyProtocol, maxConnections: first!.maxConnections, maxConnectionsPerClient: first!.maxConnectionsPerClient },
      { acceptProxyProtocol: true, maxConnections: 10_000_000, maxConnectionsPerClient: 10 },
    );
    t.strictSame(first!.proxyProtocolFrom, ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1/32'], 'proxyProtocolFrom');
    t.strictSame(first!.allow, ['10.0.0.0/8', '192.0.2.7/32', '2001:db8::/32', '::1/128', '172.16.0.0/12'], 'listener allow');
    t.strictSame(first!.deny, ['10.1.0.0/16', '::/0'], 'listener deny');
    t.strictSame([first!.routes[0]!.allow, first!.routes[0]!.deny], [['fe80::1/64'], ['0.0.0.0/0']], 'route allow and deny (host bits kept)');
    t.strictSame([first!.defaultRoute!.allow, first!.defaultRoute!.deny], [['127.0.0.1/32'], []], 'default route');
    t.strictSame(
      {
        acceptProxyProtocol: second!.acceptProxyProtocol,
        maxConnections: second!.maxConnections,
        maxConnectionsPerClient: second!.maxConnectionsPerClient,
        allow: second!.allow,
        deny: second!.deny,
      },
      { acceptProxyProtocol: false, maxConnections: 0, maxConnectionsPerClient: 0, allow: [], deny: [] },
      'explicit zero, empty and null values',
    );
  });

  t.test('bad values point at the value', async (t) => {
    const setting = (text: string): string => yaml`
listeners:
  - listen: 8443
    ${text}
    default: { backends: [127.0.0.1:1] }
`;
    expectConfigError(
      t,
      setting('acceptProxyProtocol: yes'),
      { line: 3, col: 26, at: 'yes', message: 'expected true or false, got string "yes"' },
      'acceptProxyProtocol: yes',
    );
    expectConfigError(t, setting('maxConnections: -1'), { line: 3, col: 21, at: '-1', message: '-1 is out of range (0-10000000)' }, 'negative maxConnections');
    expectConfigError(
      t,
      setting('maxConnections: 10000001'),
      { line: 3, col: 21, at: '10000001', message: '10000001 is out of range (0-10000000)' },
      'maxConnections too big',
    );
    expectConfigError(
      t,
      setting('maxConnectionsPerClient: 1.5'),
      { line: 3, col: 30, at: '1.5', message: 'expected an integer, got number 1.5' },
      'maxConnectionsPerClient fraction',
    );
    expectConfigError(
      t,
      setting('allow: 10.0.0.0/8'),
      { line: 3, col: 12, at: '10.0.0.0/8', message: 'expected a list, got string "10.0.0.0/8"' },
      'allow is a string',
    );
    expectConfigError(
      t,
      setting('proxyProtocolFrom: [10.0.0.0/8]'),
      { line: 3, col: 24, at: '[10.0.0.0/8]', message: '"proxyProtocolFrom" lists who may send a PROXY header: it needs "acceptProxyProtocol: true"' },
      'proxyProtocolFrom without acceptProxyProtocol',
    );
    expectConfigError(
      t,
      setting('acceptProxyProtocol: true\n    proxyProtocolFrom: [10.0.0.0/33]'),
      { line: 4, col: 25, at: '10.0.0.0/33', message: /10\.0\.0\.0\/33/ },
      'a bad CIDR in proxyProtocolFrom',
    );
  });

  t.test('bad CIDRs point at the entry', async (t) => {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    allow: [10.0.0.0/8, 10.0.0.0/33]
    default: { backends: [127.0.0.1:1] }
`,
      { line: 3, col: 25, at: '10.0.0.0/33', message: 'prefix length /33 in "10.0.0.0/33" is too long for IPv4 (max /32)' },
      'listener allow, second entry',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    deny:
      - 10.0.0.0/8
      - example.com/8
    default: { backends: [127.0.0.1:1] }
`,
      { line: 5, col: 9, at: 'example.com/8', message: 'invalid address range "example.com/8": "example.com" is not an IPv4 or IPv6 address' },
      'listener deny, block style',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backends: [127.0.0.1:1]
        allow: ["::/129"]
`,
      { line: 6, col: 17, at: '"::/129"', message: 'prefix length /129 in "::/129" is too long for IPv6 (max /128)' },
      'route allow, IPv6',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    default:
      backends: [127.0.0.1:1]
      deny: [10.0.0.256/8]
`,
      { line: 5, col: 14, at: '10.0.0.256/8', message: 'invalid address range "10.0.0.256/8": "10.0.0.256" is not an IPv4 or IPv6 address' },
      'default deny, bad octet',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    allow: [10.0.0.0/x]
    default: { backends: [127.0.0.1:1] }
`,
      { line: 3, col: 13, at: '10.0.0.0/x', message: 'invalid prefix length in "10.0.0.0/x"' },
      'letters in the prefix',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    allow: [8]
    default: { backends: [127.0.0.1:1] }
`,
      { line: 3, col: 13, at: '8', message: 'an address range must be a string like "10.0.0.0/8" or "::1"' },
      'a number',
    );
  });
});

t.test('plain-HTTP listeners', async (t) => {
  t.test('protocol, redirect, redirectPort and acmeChallenge', async (t) => {
    const config = parseConfig(
      yaml`
listeners:
  - listen: 8443
    default: { backends: [127.0.0.1:1] }
  - listen: 8080
    protocol: http
    routes:
      - hostnames: [app.example.com]
        proxyProtocol: v1
        acmeChallenge: [127.0.0.1:8089, { address: 127.0.0.1:8090, proxyProtocol: v2 }]
        backends: [127.0.0.1:2]
      - hostnames: ["*.example.com"]
        redirect: https
        redirectPort: 8443
    default:
      redirect: https
`,
      FILE,
    );
    const [tls, http] = config.listeners as [ListenerConfig, ListenerConfig];
    t.equal(tls.protocol, 'tls', 'tls by default');
    t.equal(http.protocol, 'http');
    const [app, wildcard] = http.routes as [RouteConfig, RouteConfig];
    t.strictSame([app.redirect, app.backends.map((entry) => [entry.address, entry.proxyProtocol])], [null, [['127.0.0.1:2', 'v1']]]);
    t.strictSame(
      app.acmeChallenge.map((entry) => [entry.address, entry.proxyProtocol]),
      [
        ['127.0.0.1:8089', null],
        ['127.0.0.1:8090', 'v2'],
      ],
      "the certificate manager's backends, without the route's PROXY setting",
    );
    t.strictSame([wildcard.redirect, wildcard.backends, wildcard.acmeChallenge], [{ scheme: 'https', port: 8443 }, [], []]);
    t.strictSame([http.defaultRoute!.redirect, tls.defaultRoute!.redirect, tls.defaultRoute!.acmeChallenge], [{ scheme: 'https', port: 443 }, null, []]);
  });

  t.test('a route redirects or passes to backends: one of them, not both', async (t) => {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8080
    protocol: http
    routes:
      - hostnames: [a.example.com]
        redirect: https
        backends: [127.0.0.1:1]
`,
      { line: 6, col: 19, at: 'https', message: 'a route either redirects or passes to backends: remove "redirect" or "backends"' },
      'both',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8080
    protocol: http
    default:
      acmeChallenge: [127.0.0.1:1]
`,
      { line: 5, col: 7, at: 'acmeChallenge', message: 'missing required key "backends" (or "redirect: https")' },
      'neither (an ACME challenge alone is not a route)',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        balance: source
`,
      { line: 4, col: 9, at: 'hostnames', message: 'missing required key "backends"' },
      'neither, on a tls listener: as before',
    );
  });

  t.test('redirectPort needs redirect, and is a port', async (t) => {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8080
    protocol: http
    default:
      redirectPort: 8443
      backends: [127.0.0.1:1]
`,
      { line: 5, col: 21, at: '8443', message: '"redirectPort" is the port of a redirect: it needs "redirect: https"' },
      'without redirect',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8080
    protocol: http
    default: { redirect: https, redirectPort: 0 }
`,
      { line: 4, col: 47, at: '0', message: '0 is out of range (1-65535)' },
      'port 0',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8080
    protocol: http
    default: { redirect: http }
`,
      { line: 4, col: 26, at: 'http', message: 'expected one of https, got string "http"' },
      'only to https',
    );
  });

  t.test('what an http listener cannot act on, and what a tls listener cannot', async (t) => {
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8080
    protocol: http
    routes:
      - hostnames: [a.example.com]
        alpn: [h2]
        backends: [127.0.0.1:1]
`,
      { line: 6, col: 15, at: '[h2]', message: '"alpn" is a TLS setting: an http listener routes by the Host header only' },
      'alpn on http',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8080
    protocol: http
    routes:
      - hostnames: [a.example.com]
        tls: internal
        backends: [127.0.0.1:1]
`,
      { line: 6, col: 14, at: 'internal', message: '"tls" terminates TLS: an http listener\'s clients speak plain HTTP' },
      'tls on http',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        backendTls: { verify: false }
        backends: [127.0.0.1:1]
`,
      { line: 5, col: 21, at: '{', message: '"backendTls" re-encrypts what a terminating route decrypted: it needs "tls" on the same route' },
      'backendTls without tls',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        redirect: https
`,
      { line: 5, col: 19, at: 'https', message: '"redirect" answers plain HTTP: it needs "protocol: http" on the listener' },
      'redirect on tls',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    protocol: tls
    default:
      backends: [127.0.0.1:1]
      acmeChallenge: [127.0.0.1:2]
`,
      {
        line: 6,
        col: 22,
        at: '[127.0.0.1:2]',
        message:
          '"acmeChallenge" routes plain-HTTP requests by path: it needs "protocol: http" on the listener (for TLS-ALPN-01, add a route with "alpn: [acme-tls/1]")',
      },
      'acmeChallenge on tls',
    );
    expectConfigError(
      t,
      yaml`
listeners:
  - listen: 8443
    protocol: quic
    default: { backends: [127.0.0.1:1] }
`,
      { line: 3, col: 15, at: 'quic', message: 'expected one of tls, http, got string "quic"' },
      'an unknown protocol',
    );
  });
});

t.test('config.example.yaml loads, and so does every option it shows in comments once uncommented', async (t) => {
  const file = join(import.meta.dirname, '..', '..', 'config.example.yaml');
  const text = await readFile(file, 'utf8');
  t.equal(parseConfig(text, file).listeners[0]!.name, 'public');
  // Commented-out settings are written as "# key: value" (or "# - hostnames:" for a route): turn them on.
  const settings =
    /^(\s*)# (?=admin:| {2}listen:|allow:|deny:|max|accept|balance:|retries:|failTimeout:|healthCheck:|proxyProtocol:|- hostnames:| {2}alpn:| {2}backends:|- name:| {2}protocol:| {2}routes:| {4}- hostnames:| {6}backends:| {2}default:| {4}redirect| {4}acmeChallenge:)/;
  const uncommented = text
    .split('\n')
    .map((line) => line.replace(settings, '$1'))
    .join('\n');
  t.not(uncommented, text, 'the example shows optional settings in comments');
  const full = parseConfig(uncommented, 'config.example.yaml');
  const listener = full.listeners[0]!;
  t.ok(full.admin, 'admin');
  t.ok(
    listener.acceptProxyProtocol &&
      listener.maxConnections > 0 &&
      listener.maxConnectionsPerClient > 0 &&
      listener.allow.length > 0 &&
      listener.deny.length > 0,
    'listener options',
  );
  t.ok(listener.routes[0]!.healthCheck && listener.routes[0]!.retries !== null && listener.routes[0]!.backends[0]!.proxyProtocol === 'v2', 'route options');
  t.ok(
    listener.routes.some((route) => route.alpn.includes('acme-tls/1')),
    'the ALPN route',
  );
  const web = full.listeners[1]!;
  t.ok(
    web.protocol === 'http' && web.routes[0]!.backends.length > 0 && web.defaultRoute!.redirect?.port === 8443 && web.defaultRoute!.acmeChallenge.length > 0,
    'the plain-HTTP listener: a route, a redirect, ACME challenges',
  );
});

t.test('terminating routes: tls in its three forms, backendTls, file paths relative to the config file', async (t) => {
  const config = parseConfig(
    yaml`
listeners:
  - listen: 8443
    routes:
      - hostnames: [a.example.com]
        tls: { cert: certs/a.pem, key: /etc/keys/a.key }
        backends: [127.0.0.1:1]
      - hostnames: [b.example.com]
        tls:
          - { cert: rsa.pem, key: rsa.key, alpn: [h2, http/1.1] }
          - { cert: ec.pem, key: ec.key }
        backendTls: { ca: ca.pem, servername: b.internal }
        backends: [127.0.0.1:2]
      - hostnames: [c.example.com]
        tls: internal
        backends: [127.0.0.1:3]
    default:
      tls: { internal: true, alpn: [h2] }
      backendTls: { verify: false }
      backends: [127.0.0.1:4]
`,
    '/srv/proxy/proxy.yaml',
  );
  const [a, b, c] = config.listeners[0]!.routes;
  t.same(a!.tls, { certificates: [{ cert: '/srv/proxy/certs/a.pem', key: '/etc/keys/a.key' }], alpn: ['http/1.1'], position: { line: 5, col: 14 } });
  t.equal(a!.backendTls, null);
  t.same(b!.tls?.certificates, [
    { cert: '/srv/proxy/rsa.pem', key: '/srv/proxy/rsa.key' },
    { cert: '/srv/proxy/ec.pem', key: '/srv/proxy/ec.key' },
  ]);
  t.same(b!.tls?.alpn, ['h2', 'http/1.1'], 'the ALPN given once applies to the route');
  t.match(b!.backendTls, { ca: '/srv/proxy/ca.pem', servername: 'b.internal', verify: true });
  t.same(c!.tls, { certificates: 'internal', alpn: ['http/1.1'], position: { line: 14, col: 14 } });
  t.match(config.listeners[0]!.defaultRoute, { tls: { certificates: 'internal', alpn: ['h2'] }, backendTls: { ca: null, servername: null, verify: false } });
  t.equal(config.stateDir, null);
  t.equal(
    parseConfig('stateDir: state\nlisteners:\n  - listen: 8443\n    default: { backends: [127.0.0.1:1] }\n', '/srv/proxy/proxy.yaml').stateDir,
    '/srv/proxy/state',
  );

  for (const [label, tls, message] of [
    ['neither files nor internal', '{ alpn: [h2] }', '"tls" needs "cert" and "key" (PEM files), or "internal: true" for the local CA'],
    ['files and internal', '{ cert: a.pem, key: a.key, internal: true }', '"tls" takes either "cert" and "key" or "internal: true", not both'],
    ['a cert without its key', '{ cert: a.pem }', '"tls" needs "cert" and "key" (PEM files), or "internal: true" for the local CA'],
    [
      'two ALPN lists',
      '[{ cert: a.pem, key: a.key, alpn: [h2] }, { cert: b.pem, key: b.key, alpn: [http/1.1] }]',
      'the certificates of one route must offer the same "alpn" (or give it once)',
    ],
    ['another word', 'external', 'expected one of internal, got string "external"'],
  ] as const) {
    expectConfigError(
      t,
      `listeners:\n  - listen: 8443\n    default:\n      tls: ${tls}\n      backends: [127.0.0.1:1]\n`,
      { line: 4, col: 12, at: tls.slice(0, 1), message },
      label,
    );
  }
});

t.test('workers: a number or auto, 1 by default', async (t) => {
  const listeners = 'listeners:\n  - listen: 8443\n    default: { backends: [127.0.0.1:1] }\n';
  t.equal(parseConfig(listeners, FILE).workers, 1, 'default: one process');
  t.equal(parseConfig(`workers: 4\n${listeners}`, FILE).workers, 4);
  t.equal(parseConfig(`workers: auto\n${listeners}`, FILE).workers, 'auto');
  expectConfigError(
    t,
    `workers: 0\n${listeners}`,
    { line: 1, col: 10, at: '0', message: /^invalid workers 0: use "auto" \(one per CPU\) or a number from 1 to 1024$/ },
    'zero',
  );
  expectConfigError(t, `workers: many\n${listeners}`, { line: 1, col: 10, at: 'many', message: /^invalid workers "many"/ }, 'a word');
  expectConfigError(t, `workers: 2.5\n${listeners}`, { line: 1, col: 10, at: '2.5', message: /^invalid workers 2.5/ }, 'a fraction');
  expectConfigError(t, `workers: 5000\n${listeners}`, { line: 1, col: 10, at: '5000', message: /^invalid workers 5000/ }, 'too many');
});
