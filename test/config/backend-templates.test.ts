// Templated backends ("{sni}:443", "{1}.internal:8443") and `resolvers` in
// the config: the template grammar (lib/config/values.ts), and the loader's
// rules that keep templates to names a route matched, each error at
// FILE:LINE:COL with its code.
import t, { type Test } from 'tap';
import { describeConfig } from '../../lib/config/describe.js';
import { parseConfig } from '../../lib/config/load.js';
import { isHostTemplate, parseBackendAddress, parseHostTemplate, parseResolverAddress } from '../../lib/config/values.js';
import { ConfigError, ValueError } from '../../lib/errors.js';
import { positionOf } from '../helpers/text-position.js';

const FILE = 'proxy.yaml';

function rejects(t: Test, run: () => unknown, message: RegExp, label: string): void {
  try {
    const value = run();
    t.fail(`${label}: expected a ValueError, got ${JSON.stringify(value)}`);
  } catch (error) {
    t.ok(error instanceof ValueError, `${label}: a ValueError`);
    t.equal((error as ValueError).code, 'SNIP_CONFIG_VALUE', `${label}: code`);
    t.match((error as Error).message, message, `${label}: message`);
  }
}

/** Expects `text` to fail with a ConfigError (code SNIP_CONFIG_INVALID) at the first occurrence of `at`, with `message`. */
function expectError(t: Test, text: string, at: string, message: RegExp, label: string): void {
  try {
    parseConfig(text, FILE);
    t.fail(`${label}: expected a ConfigError`);
  } catch (error) {
    t.ok(error instanceof ConfigError, `${label}: a ConfigError`);
    const configError = error as ConfigError;
    t.equal(configError.code, 'SNIP_CONFIG_INVALID', `${label}: code`);
    const { line, col } = positionOf(text, at);
    t.same(configError.position, { line, col }, `${label}: points at ${at}`);
    t.ok(configError.message.startsWith(`${FILE}:${line}:${col}: `), `${label}: FILE:LINE:COL prefix (${configError.message})`);
    t.match(configError.detail, message, `${label}: message`);
  }
}

/** A config with one listener whose `routes`/`default` are the given YAML lines (indented under the listener). */
function listenerYaml(lines: string[], top: string[] = []): string {
  return [...top, 'listeners:', '  - listen: 127.0.0.1:0', ...lines.map((line) => `    ${line}`), ''].join('\n');
}

t.test('the template grammar', async (t) => {
  t.same(parseHostTemplate('{1}.internal'), [1, '.internal']);
  t.same(parseHostTemplate('{sni}'), [0]);
  t.same(parseHostTemplate('app-{2}.{1}.svc'), ['app-', 2, '.', 1, '.svc']);
  t.same(parseHostTemplate('{1}'), [1], 'a bare label (the resolver’s search domains complete it)');
  t.ok(isHostTemplate('{1}.x'));
  t.notOk(isHostTemplate('app.internal'));

  rejects(t, () => parseHostTemplate('{0}.x'), /unknown placeholder "\{0\}"/, '{0}: labels count from 1');
  rejects(t, () => parseHostTemplate('{host}.x'), /unknown placeholder "\{host\}".*\{sni\}.*\{1\}/, 'an unknown name');
  rejects(t, () => parseHostTemplate('{128}.x'), /unknown placeholder "\{128\}"/, 'more labels than a name can have');
  rejects(t, () => parseHostTemplate('{1.x'), /unclosed "\{"/, 'unclosed');
  rejects(t, () => parseHostTemplate('1}.x'), /"\}" without "\{"/, 'stray close');
  rejects(t, () => parseHostTemplate('{1}..x'), /does not make a DNS name/, 'an empty label');
  rejects(t, () => parseHostTemplate('{1}.x/y'), /does not make a DNS name/, 'a slash');
  rejects(t, () => parseHostTemplate('{1}.10'), /does not make a DNS name/, 'a numeric last label');
});

t.test('backend addresses with templates', async (t) => {
  t.same(parseBackendAddress('{sni}:443'), { host: '{sni}', port: 443 });
  t.same(parseBackendAddress('{1}.Internal:8443'), { host: '{1}.internal', port: 8443 }, 'lower-cased like any name');
  rejects(t, () => parseBackendAddress('{1}.internal'), /needs a port after the name, e.g. "\{1\}.internal:443"/, 'the port is required');
  rejects(t, () => parseBackendAddress('{1}.internal:{2}'), /port of backend template .* must be a number/, 'no placeholder in the port');
  rejects(t, () => parseBackendAddress('{1}.internal:0'), /out of range/, 'port 0');
  rejects(t, () => parseBackendAddress('{1}:x.internal:443'), /does not make a DNS name/, 'a colon in the host');
});

t.test('resolver addresses', async (t) => {
  t.equal(parseResolverAddress('10.0.0.2'), '10.0.0.2:53', 'port 53 by default');
  t.equal(parseResolverAddress('10.0.0.2:5353'), '10.0.0.2:5353');
  t.equal(parseResolverAddress('2001:db8::0:53'), '[2001:db8::53]:53', 'a bare IPv6 address, canonical');
  t.equal(parseResolverAddress('[::1]:5353'), '[::1]:5353');
  rejects(t, () => parseResolverAddress('dns.internal:53'), /must be an IP address/, 'a name');
  rejects(t, () => parseResolverAddress('10.0.0.2:99999'), /out of range/, 'a bad port');
  rejects(t, () => parseResolverAddress(53), /must be a string/, 'a number');
});

t.test('a valid config with templates and resolvers', async (t) => {
  const config = parseConfig(
    listenerYaml(
      [
        'routes:',
        '  - hostnames: ["*.apps.example.com", "*.apps.example.org"]',
        '    backends: ["{1}.internal:8443", { address: "{sni}:443", weight: 2 }, "fallback.internal:443"]',
        '    healthCheck: {}',
        '  - hostnames: [exact.example.com]',
        '    backends: ["{sni}:9443"]',
      ],
      ['resolvers: ["127.0.0.1:5353", "::1"]'],
    ),
    FILE,
  );
  t.same(config.resolvers, ['127.0.0.1:5353', '[::1]:53']);
  const [wild, exact] = config.listeners[0]!.routes;
  t.same(
    wild!.backends.map((backend) => [backend.address, backend.host, backend.port, backend.weight]),
    [
      ['{1}.internal:8443', '{1}.internal', 8443, 1],
      ['{sni}:443', '{sni}', 443, 2],
      ['fallback.internal:443', 'fallback.internal', 443, 1],
    ],
  );
  t.same(exact!.backends[0]!.address, '{sni}:9443', '{sni} on an exact name is that name');
  t.same(
    describeConfig(config).split('\n').slice(2),
    [
      '    *.apps.example.com, *.apps.example.org -> {1}.internal:8443, {sni}:443 (weight 2), fallback.internal:443',
      '        roundrobin, maxFails 3/10s, health check every 5s',
      '    exact.example.com -> {sni}:9443',
      '        roundrobin, maxFails 3/10s',
      '    default -> (none: unrecognized_name alert)',
      'backend names resolved by 127.0.0.1:5353, [::1]:53 (answers kept for their TTL)',
    ],
    '`check` shows templates as written, and the resolvers',
  );
  t.same(parseConfig(listenerYaml(['default: { backends: ["127.0.0.1:1"] }']), FILE).resolvers, [], 'no resolvers: the system resolver');
});

t.test('templates only from names a route matched', async (t) => {
  expectError(
    t,
    listenerYaml(['default:', '  backends: ["{sni}:443"]']),
    '"{sni}:443"',
    /backend template "\{sni\}" takes the name a route matched: the default route matches any name \(or none\), so it cannot use one/,
    '{sni} on the default route would be an open proxy',
  );
  expectError(
    t,
    listenerYaml(['routes:', '  - hostnames: ["*.example.com", app.example.org]', '    backends: [127.0.0.1:1, "{1}.internal:443"]']),
    '"{1}.internal:443"',
    /uses \{1\}, a label matched by "\*": every hostname of its route must be a wildcard, and "app.example.org" is not/,
    'a label placeholder needs every hostname to be a wildcard',
  );
  expectError(
    t,
    listenerYaml(['routes:', '  - hostnames: [app.example.com]', '    backends:', '      - address: "{2}.internal:443"']),
    'address: "{2}',
    /uses \{2\}/,
    'the mapping form points at the entry',
  );
  expectError(
    t,
    listenerYaml(['protocol: http', 'routes:', '  - hostnames: ["*.example.com"]', '    backends: [127.0.0.1:1]', '    acmeChallenge: ["{1}.acme:80"]']),
    '"{1}.acme:80"',
    /acmeChallenge backends cannot be templates/,
    'not on acmeChallenge',
  );
  expectError(
    t,
    listenerYaml(['routes:', '  - hostnames: ["*.example.com"]', '    backends: ["{1}.internal:443"]', '    healthCheck: { interval: 1s }']),
    '{ interval',
    /"healthCheck" has nothing to check: templated backends are named per connection/,
    'an active check with nothing to check',
  );
  expectError(
    t,
    listenerYaml(['routes:', '  - hostnames: ["*.example.com"]', '    backends: ["{1}.internal"]']),
    '"{1}.internal"',
    /needs a port after the name/,
    'the port is required',
  );
  expectError(
    t,
    listenerYaml(['routes:', '  - hostnames: ["*.example.com"]', '    backends: ["{label}.internal:443"]']),
    '"{label}',
    /unknown placeholder "\{label\}"/,
    'an unknown placeholder',
  );
  expectError(
    t,
    listenerYaml(['default: { backends: ["127.0.0.1:1"] }'], ['resolvers: [dns.example.com]']),
    'dns.example.com',
    /must be an IP address/,
    'a resolver by name',
  );
  expectError(t, listenerYaml(['default: { backends: ["127.0.0.1:1"] }'], ['resolvers: []']), '[]', /"resolvers" needs at least one resolver/, 'an empty list');
});
