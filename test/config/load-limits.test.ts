// lib/config/load.ts beyond what load.test.ts covers: the YAML limits
// (nesting, aliases) and the messages for the likeliest YAML mistakes, each
// one line at FILE:LINE:COL with its code; and the fast path (js-yaml) agreeing
// with the precise one (yaml) on every config.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { MAX_ALIASED_NODES, MAX_NESTING_DEPTH, parseConfig, parseConfigPrecisely, parsePlainConfig } from '../../lib/config/load.js';
import { ConfigError, type ConfigErrorCode } from '../../lib/errors.js';
import { projectRoot } from '../helpers/proxy-process.js';

const FILE = 'proxy.yaml';

/** The ConfigError that parsing `text` throws (a test failure if it does not). */
function errorOf(t: Test, text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    t.fail(`expected a ConfigError, got ${String(error)}`);
    throw error;
  }
  t.fail('expected a ConfigError, the config loaded');
  throw new Error('no error');
}

/** Checks code, position (and the text found there), and that the whole message is one line. */
function expectError(t: Test, text: string, expected: { line: number; col: number; at: string; code: ConfigErrorCode; message: RegExp }): void {
  const error = errorOf(t, text);
  t.equal(error.code, expected.code, 'code');
  t.same(error.position, { line: expected.line, col: expected.col }, 'position');
  t.equal((text.split('\n')[expected.line - 1] ?? '').slice(expected.col - 1, expected.col - 1 + expected.at.length), expected.at, 'points at the node');
  t.match(error.detail, expected.message);
  t.equal(error.message, `${FILE}:${expected.line}:${expected.col}: ${error.detail}`, 'FILE:LINE:COL: message');
  t.notMatch(error.message, /\n/, 'one line');
}

const route = (hostnames: string): string => `listeners:\n  - listen: 8443\n    routes:\n      - hostnames: ${hostnames}\n        backends: [127.0.0.1:1]\n`;

t.test('an unquoted wildcard hostname: say to quote it', async (t) => {
  t.test('in a flow list', async (t) => {
    expectError(t, route('[*.preview.localhost]'), {
      line: 4,
      col: 21,
      at: '*.preview.localhost',
      code: 'SNIP_CONFIG_SYNTAX',
      message: /^\*\.preview\.localhost must be quoted: .*write "\*\.preview\.localhost"$/,
    });
  });
  t.test('in a block list', async (t) => {
    const text = 'listeners:\n  - listen: 8443\n    routes:\n      - hostnames:\n          - *.preview.localhost\n        backends: [127.0.0.1:1]\n';
    expectError(t, text, { line: 5, col: 13, at: '*.preview', code: 'SNIP_CONFIG_SYNTAX', message: /must be quoted/ });
  });
  t.test('quoted, it loads', async (t) => {
    t.same(parseConfig(route('["*.preview.localhost"]'), FILE).listeners[0]!.routes[0]!.hostnames, ['*.preview.localhost']);
  });
});

t.test('an alias without its anchor', async (t) => {
  const text = 'listeners:\n  - listen: 8443\n    default:\n      backends: *pool\n';
  expectError(t, text, { line: 4, col: 17, at: '*pool', code: 'SNIP_CONFIG_SYNTAX', message: /^unknown alias \*pool: no anchor &pool before it/ });
});

t.test('an alias inside the node it refers to', async (t) => {
  const text = 'listeners: &all\n  - listen: 8443\n    default:\n      backends: [127.0.0.1:1]\n    routes: *all\n';
  expectError(t, text, { line: 5, col: 13, at: '*all', code: 'SNIP_CONFIG_SYNTAX', message: /inside the node it refers to/ });
});

t.test('aliases: an alias bomb is refused where it goes off; honest reuse is not', async (t) => {
  t.test('nine levels of nine aliases', async (t) => {
    const levels = 'abcdefghi'.split('');
    const lines = levels.map((name, index) =>
      index === 0
        ? `${name}: &${name} [${Array(9).fill('"lol"').join(',')}]`
        : `${name}: &${name} [${Array(9)
            .fill(`*${levels[index - 1]}`)
            .join(',')}]`,
    );
    const text = `${lines.join('\n')}\nlisteners: *i\n`;
    const error = errorOf(t, text);
    t.equal(error.code, 'SNIP_CONFIG_SYNTAX');
    t.match(error.detail, new RegExp(`more than ${MAX_ALIASED_NODES} values`));
    t.equal(text.split('\n')[error.position!.line - 1]![error.position!.col - 1], '*', 'points at an alias');
    t.ok(error.position!.line < levels.length, 'before the document is expanded');
  });
  t.test('one anchored list of backends used by 500 routes', async (t) => {
    const routes = Array.from({ length: 500 }, (_, index) => `      - hostnames: [h${index}.example.com]\n        backends: *pool\n`);
    const text = `listeners:\n  - listen: 8443\n    routes:\n      - hostnames: [first.example.com]\n        backends: &pool [127.0.0.1:1, 127.0.0.1:2]\n${routes.join('')}`;
    const config = parseConfig(text, FILE);
    t.equal(config.listeners[0]!.routes.length, 501);
    t.same(
      config.listeners[0]!.routes[500]!.backends.map((backend) => backend.address),
      ['127.0.0.1:1', '127.0.0.1:2'],
    );
  });
});

t.test('nesting deeper than the limit', async (t) => {
  t.test('200,000 nested flow lists: at the bracket that goes too deep', async (t) => {
    const text = `listeners: ${'['.repeat(200_000)}\n`;
    const error = errorOf(t, text);
    t.equal(error.code, 'SNIP_CONFIG_SYNTAX');
    t.equal(error.detail, `nesting deeper than ${MAX_NESTING_DEPTH} levels`);
    t.equal(error.position!.line, 1);
    t.equal(text[error.position!.col - 1], '[');
    t.ok(error.position!.col <= 'listeners: '.length + MAX_NESTING_DEPTH + 1, `within the first levels (col ${error.position!.col})`);
  });
  t.test('nested block lists', async (t) => {
    const text = `listeners:\n${'- '.repeat(1000)}x\n`;
    const error = errorOf(t, text);
    t.equal(error.code, 'SNIP_CONFIG_SYNTAX');
    t.equal(error.detail, `nesting deeper than ${MAX_NESTING_DEPTH} levels`);
    t.equal(error.position!.line, 2);
  });
  t.test('deep but within the limit: an ordinary shape error', async (t) => {
    const text = `listeners: ${'['.repeat(20)}${']'.repeat(20)}\n`;
    t.equal(errorOf(t, text).code, 'SNIP_CONFIG_INVALID');
  });
});

t.test('tabs and bad indentation are syntax errors on one line', async (t) => {
  expectError(t, 'listeners:\n\t- listen: 8443\n', { line: 2, col: 1, at: '\t', code: 'SNIP_CONFIG_SYNTAX', message: /tab/i });
  expectError(t, 'listeners:\n  - listen: 8443\n   default: { backends: [127.0.0.1:1] }\n', {
    line: 3,
    col: 1,
    at: '   default',
    code: 'SNIP_CONFIG_SYNTAX',
    message: /indicator/,
  });
});

t.test('a URL where host:port belongs says so', async (t) => {
  const backend = (value: string): string => `listeners:\n  - listen: 8443\n    default:\n      backends: [${value}]\n`;
  expectError(t, backend('https://127.0.0.1:22002'), {
    line: 4,
    col: 18,
    at: 'https://127.0.0.1:22002',
    code: 'SNIP_CONFIG_INVALID',
    message: /^"https:\/\/127\.0\.0\.1:22002" is a URL: write host:port without a scheme, e\.g\. "127\.0\.0\.1:22002"$/,
  });
  expectError(t, backend('http://app.internal/path'), {
    line: 4,
    col: 18,
    at: 'http://app.internal',
    code: 'SNIP_CONFIG_INVALID',
    message: /^"http:\/\/app\.internal\/path" is a URL: write host:port without a scheme$/,
  });
  expectError(t, 'listeners:\n  - listen: tcp://0.0.0.0:8443\n    default: { backends: [127.0.0.1:1] }\n', {
    line: 2,
    col: 13,
    at: 'tcp://',
    code: 'SNIP_CONFIG_INVALID',
    message: /is a URL: write host:port without a scheme, e\.g\. "0\.0\.0\.0:8443"/,
  });
});

t.test('the precise path decides what the fast path does not read', async (t) => {
  t.test('a YAML 1.1 document (yes is true there)', async (t) => {
    const text = '%YAML 1.1\n---\nlisteners:\n  - listen: 8443\n    acceptProxyProtocol: yes\n    default: { backends: [127.0.0.1:1] }\n';
    t.equal(parsePlainConfig(text), null, 'the fast path leaves directives alone');
    t.equal(parseConfig(text, FILE).listeners[0]!.acceptProxyProtocol, true);
  });
  t.test('anchors and tags', async (t) => {
    const text = 'listeners:\n  - listen: !!str 8443\n    default: &d { backends: [127.0.0.1:1] }\n';
    t.equal(parsePlainConfig(text), null);
    t.equal(parseConfig(text, FILE).listeners[0]!.listen.port, 8443);
  });
  t.test('invalid text: null from the fast path, the error from the precise one', async (t) => {
    const text = 'listeners:\n  - listen: 8443\n    colour: blue\n';
    t.equal(parsePlainConfig(text), null);
    t.throws(() => parseConfigPrecisely(text, FILE), { code: 'SNIP_CONFIG_INVALID', position: { line: 3, col: 5 } });
  });
});

/** Both paths on `text`: the same config, or both refuse. */
function expectAgreement(t: Test, text: string, label: string): void {
  const fast = parsePlainConfig(text);
  let precise: unknown;
  try {
    precise = parseConfigPrecisely(text, FILE);
  } catch (error) {
    t.equal(fast, null, `${label}: refused by both (${(error as Error).message})`);
    return;
  }
  // The fast path may decline (a route with certificate files needs positions it does not keep); what it returns must agree.
  if (fast === null) t.match(text, /\btls:|backendTls:/, `${label}: declined by the fast path only for certificates`);
  else t.strictSame(fast, precise, `${label}: the same config`);
}

t.test('fast and precise paths agree', async (t) => {
  t.test('on the example config and every YAML block of the README', async (t) => {
    expectAgreement(t, await readFile(join(projectRoot, 'config.example.yaml'), 'utf8'), 'config.example.yaml');
    const readme = await readFile(join(projectRoot, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1]!).filter((block) => /^listeners:/m.test(block));
    t.ok(blocks.length > 0, 'the README has configs');
    for (const [index, block] of blocks.entries()) expectAgreement(t, block, `README block ${index + 1}`);
  });

  t.test('on generated configs, valid and not', async (t) => {
    const hostname = fc.oneof(
      fc.constantFrom('a.example.com', 'B.Example.COM.', '*.example.com', 'bücher.example', 'xn--bcher-kva.example', 'x', '*', 'bad_name-.com', '10.0.0.1'),
      fc.domain(),
    );
    const backend = fc.oneof(
      fc.constantFrom('127.0.0.1:9443', '[::1]:9443', 'app.internal:443', 'https://127.0.0.1:1', '127.0.0.1', ':80', 443, null),
      fc.record({ address: fc.constantFrom('127.0.0.1:1', '[::1]:2'), weight: fc.constantFrom(0, 1, 5, -1, 'x') }, { requiredKeys: ['address'] }),
    );
    const routeShape = fc.record(
      {
        hostnames: fc.array(hostname, { minLength: 0, maxLength: 3 }),
        backends: fc.array(backend, { minLength: 0, maxLength: 3 }),
        alpn: fc.array(fc.constantFrom('h2', 'http/1.1', ''), { minLength: 1, maxLength: 2 }),
        balance: fc.constantFrom('roundrobin', 'leastconn', 'source', 'random'),
        failTimeout: fc.constantFrom('10s', 250, '1m30s', 'soon', 0),
        allow: fc.array(fc.constantFrom('10.0.0.0/8', '::1', '300.0.0.0/8'), { maxLength: 2 }),
      },
      { requiredKeys: ['hostnames', 'backends'] },
    );
    const listener = fc.record(
      {
        name: fc.constantFrom('public', 'internal', ''),
        listen: fc.constantFrom('127.0.0.1:8443', ':8443', 8444, '[::1]:0', 0, 'localhost:70000'),
        routes: fc.array(routeShape, { maxLength: 4 }),
        default: fc.record({ backends: fc.array(backend, { minLength: 1, maxLength: 2 }) }),
        idleTimeout: fc.constantFrom('5m', 0, '-1s'),
        maxConnections: fc.constantFrom(0, 100, 1.5),
        acceptProxyProtocol: fc.boolean(),
      },
      { requiredKeys: ['listen'] },
    );
    const config = fc.record(
      { listeners: fc.array(listener, { minLength: 0, maxLength: 3 }), defaults: fc.record({ connectTimeout: fc.constantFrom('5s', 100) }) },
      { requiredKeys: ['listeners'] },
    );
    fc.assert(
      fc.property(config, fc.constantFrom<'block' | 'flow'>('block', 'flow'), (value, style) => {
        const text = stringify(value, style === 'flow' ? { collectionStyle: 'flow' } : {});
        const fast = parsePlainConfig(text);
        let precise: unknown = null;
        try {
          precise = parseConfigPrecisely(text, FILE);
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
        }
        if (precise === null ? fast !== null : JSON.stringify(fast) !== JSON.stringify(precise)) {
          throw new Error(`the paths disagree on:\n${text}\nfast: ${JSON.stringify(fast)}\nprecise: ${JSON.stringify(precise)}`);
        }
      }),
      { numRuns: 300 },
    );
    t.pass('300 configs, the same verdict and result from both');
  });
});
