// schema/config.schema.json: generated from lib/config/json-schema.ts (never
// edited by hand), strict (`additionalProperties: false` on every object),
// and in agreement with config.example.yaml, the README's config reference
// and its YAML examples, and the loader itself. No JSON Schema library is a
// dependency: a minimal validator for the keywords this schema uses is below,
// and it refuses any keyword it does not know, so it cannot silently pass.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { configJsonSchema } from '../../lib/config/json-schema.js';
import { parseConfig } from '../../lib/config/load.js';
import { projectRoot } from '../helpers/proxy-process.js';

type Schema = Record<string, unknown>;

const schemaFile = join(projectRoot, 'schema', 'config.schema.json');
const committedText = await readFile(schemaFile, 'utf8');
const schema = JSON.parse(committedText) as Schema;
const readme = await readFile(join(projectRoot, 'README.md'), 'utf8');
const exampleText = await readFile(join(projectRoot, 'config.example.yaml'), 'utf8');

// ---- a minimal JSON Schema validator (the keywords this schema uses) ----

const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', 'examples', 'default']);
const ASSERTIONS = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'anyOf',
  'oneOf',
  'dependentRequired',
  'enum',
  'pattern',
  'minLength',
  'minimum',
  'maximum',
  'minItems',
]);

function typeMatches(type: string, value: unknown): boolean {
  switch (type) {
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'null':
      return value === null;
    default:
      throw new Error(`unknown type ${type}`);
  }
}

/** Errors of `value` against `node` ("path: message"); empty when valid. */
function validate(value: unknown, node: Schema, path = '$'): string[] {
  for (const keyword of Object.keys(node)) {
    if (!ANNOTATIONS.has(keyword) && !ASSERTIONS.has(keyword))
      throw new Error(`the test's validator does not know the keyword "${keyword}" (at ${path}): extend it`);
  }
  if (node.anyOf !== undefined) {
    const branches = (node.anyOf as Schema[]).map((branch) => validate(value, branch, path));
    if (!branches.some((errors) => errors.length === 0)) {
      return [`${path}: matches no alternative (${branches.map((errors) => errors.join('; ')).join(' | ')})`];
    }
  }
  if (node.oneOf !== undefined) {
    const matching = (node.oneOf as Schema[]).filter((branch) => validate(value, branch, path).length === 0).length;
    if (matching !== 1) return [`${path}: matches ${matching} of the oneOf alternatives, not exactly one`];
  }
  if (node.type !== undefined) {
    const types = Array.isArray(node.type) ? (node.type as string[]) : [node.type as string];
    if (!types.some((type) => typeMatches(type, value))) return [`${path}: expected ${types.join(' or ')}, got ${JSON.stringify(value)}`];
  }
  const errors: string[] = [];
  if (node.enum !== undefined && !(node.enum as unknown[]).includes(value))
    errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(node.enum)}`);
  if (typeof value === 'string') {
    if (node.pattern !== undefined && !new RegExp(node.pattern as string, 'u').test(value))
      errors.push(`${path}: ${JSON.stringify(value)} does not match ${node.pattern as string}`);
    if (node.minLength !== undefined && [...value].length < (node.minLength as number)) errors.push(`${path}: shorter than ${node.minLength as number}`);
  }
  if (typeof value === 'number') {
    if (node.minimum !== undefined && value < (node.minimum as number)) errors.push(`${path}: below ${node.minimum as number}`);
    if (node.maximum !== undefined && value > (node.maximum as number)) errors.push(`${path}: above ${node.maximum as number}`);
  }
  if (Array.isArray(value)) {
    if (node.minItems !== undefined && value.length < (node.minItems as number)) errors.push(`${path}: fewer than ${node.minItems as number} items`);
    if (node.items !== undefined)
      value.forEach((item, index) => {
        errors.push(...validate(item, node.items as Schema, `${path}[${index}]`));
      });
  }
  if (typeMatches('object', value)) {
    const object = value as Record<string, unknown>;
    const properties = (node.properties ?? {}) as Record<string, Schema>;
    for (const key of (node.required ?? []) as string[]) if (!(key in object)) errors.push(`${path}: missing "${key}"`);
    for (const [key, needed] of Object.entries((node.dependentRequired ?? {}) as Record<string, string[]>)) {
      if (key in object) for (const other of needed) if (!(other in object)) errors.push(`${path}: "${key}" needs "${other}"`);
    }
    for (const [key, child] of Object.entries(object)) {
      if (key in properties) errors.push(...validate(child, properties[key]!, `${path}.${key}`));
      else if (node.additionalProperties === false) errors.push(`${path}: unknown key "${key}"`);
    }
  }
  return errors;
}

/** The object-typed schema at `node` (through `anyOf` when one branch is the object form). */
function objectForm(node: Schema | undefined): Schema | undefined {
  if (node === undefined) return undefined;
  if (node.type === 'object' || node.properties !== undefined) return node;
  if (node.type === 'array') return objectForm(node.items as Schema);
  for (const branch of (node.anyOf ?? []) as Schema[]) {
    const found = objectForm(branch);
    if (found) return found;
  }
  return undefined;
}

/** The schema node at a dotted path from `node`: "listeners", "routes.backends", "healthCheck.interval"; arrays are stepped through. */
function at(node: Schema | undefined, path: string): Schema | undefined {
  let current = node;
  for (const segment of path.split('.')) {
    const object = objectForm(current);
    current = (object?.properties as Record<string, Schema> | undefined)?.[segment.replace(/\[\]$/, '')];
    if (current === undefined) return undefined;
  }
  return current;
}

const listenerSchema = objectForm(at(schema, 'listeners'))!;
const routeSchema = objectForm(at(listenerSchema, 'routes'))!;
const defaultRouteSchema = objectForm(at(listenerSchema, 'default'))!;

// ---- the tests ----

t.test('schema/config.schema.json is exactly what lib/config/json-schema.ts generates', async (t) => {
  t.equal(committedText, `${JSON.stringify(configJsonSchema(), null, 2)}\n`, 'the working-tree file (what is packed)');
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.equal(schema.type, 'object');
  t.same(schema.required, ['listeners']);

  // `npm run build` rewrites the file, so in a built tree the check above cannot see a hand edit; the committed version can.
  const head = await new Promise<{ ok: boolean; text: string; reason: string }>((resolve) => {
    execFile('git', ['show', 'HEAD:schema/config.schema.json'], { cwd: projectRoot, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ ok: !error, text: String(stdout), reason: error ? String(stderr).trim() || error.message : '' }),
    );
  });
  t.test('the version committed at HEAD too', { skip: head.ok ? false : `no committed version to compare (${head.reason})` }, async (t) => {
    t.equal(head.text, `${JSON.stringify(configJsonSchema(), null, 2)}\n`, 'HEAD:schema/config.schema.json (regenerate with `npm run build` and commit both)');
  });
});

t.test('every object in the schema sets additionalProperties: false', async (t) => {
  const objects: Array<{ path: string; node: Schema }> = [];
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) {
      node.forEach((item, index) => walk(item, `${path}[${index}]`));
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const schemaNode = node as Schema;
    if (schemaNode.type === 'object' || schemaNode.properties !== undefined) objects.push({ path, node: schemaNode });
    for (const [key, child] of Object.entries(schemaNode)) {
      if (key === 'properties') for (const [name, property] of Object.entries(child as Record<string, unknown>)) walk(property, `${path}.${name}`);
      else if (key !== 'examples' && key !== 'enum') walk(child, `${path}/${key}`);
    }
  };
  walk(schema, '$');
  t.ok(objects.length >= 7, `${objects.length} object schemas (top level, admin, defaults, listener, route, default, backend, healthCheck)`);
  t.same(
    objects.filter(({ node }) => node.additionalProperties !== false).map(({ path }) => path),
    [],
    'none lets unknown keys through',
  );
  t.same(
    objects.filter(({ node }) => node.type !== 'object').map(({ path }) => path),
    [],
    'and each says type: object',
  );
});

t.test('the validator used here is not vacuous', async (t) => {
  const valid = { listeners: [{ listen: ':443', default: { backends: ['10.0.0.1:443'] } }] };
  t.same(validate(valid, schema), [], 'a minimal config is valid');
  const cases: Array<[string, unknown, RegExp]> = [
    ['no listeners', {}, /missing "listeners"/],
    ['unknown top-level key', { ...valid, bogus: 1 }, /unknown key "bogus"/],
    ['unknown listener key', { listeners: [{ listen: ':443', bogus: 1, default: { backends: ['a:1'] } }] }, /\$\.listeners\[0\]: unknown key "bogus"/],
    ['unknown backend key', { listeners: [{ listen: ':443', default: { backends: [{ address: 'a:1', bogus: 1 }] } }] }, /matches no alternative/],
    ['hostnames in default', { listeners: [{ listen: ':443', default: { hostnames: ['a.b'], backends: ['a:1'] } }] }, /unknown key "hostnames"/],
    ['bad balance', { listeners: [{ listen: ':443', default: { balance: 'random', backends: ['a:1'] } }] }, /is not one of/],
    ['bad duration', { defaults: { connectTimeout: '5 parsecs' }, ...valid }, /matches no alternative/],
    ['port out of range', { listeners: [{ listen: 70000, default: { backends: ['a:1'] } }] }, /matches no alternative/],
    ['boolean as string', { ...valid, admin: { listen: '127.0.0.1:9900', allowRemote: 'yes' } }, /expected boolean/],
    ['neither backends nor redirect', { listeners: [{ listen: ':80', protocol: 'http', default: { balance: 'source' } }] }, /matches 0 of the oneOf/],
    ['both backends and redirect', { listeners: [{ listen: ':80', protocol: 'http', default: { redirect: 'https', backends: ['a:1'] } }] }, /matches 2 of/],
    [
      'redirectPort without redirect',
      { listeners: [{ listen: ':80', protocol: 'http', default: { redirectPort: 8443, backends: ['a:1'] } }] },
      /"redirectPort" needs "redirect"/,
    ],
    ['a protocol that is not one', { listeners: [{ listen: ':80', protocol: 'h3', default: { backends: ['a:1'] } }] }, /is not one of/],
  ];
  for (const [name, config, expected] of cases) {
    t.match(validate(config, schema).join('\n'), expected, name);
  }
  t.throws(() => validate(1, { type: 'integer', multipleOf: 2 }), /does not know the keyword "multipleOf"/, 'unknown keywords are refused, not ignored');
});

t.test('config.example.yaml is valid against the schema, and its keys sit at the right level', async (t) => {
  t.match(exampleText, /^# yaml-language-server: \$schema=\.\/schema\/config\.schema\.json$/m, 'the example points editors at the schema');
  const example = parse(exampleText) as unknown;
  t.same(validate(example, schema), [], 'valid');
  // The same check key by key, with the schema level each key was found at.
  const misplaced: string[] = [];
  const walk = (value: unknown, node: Schema | undefined, path: string): void => {
    if (Array.isArray(value)) {
      value.forEach((item, index) =>
        walk(item, objectForm(node) === undefined ? undefined : ((node?.items as Schema | undefined) ?? node), `${path}[${index}]`),
      );
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    const object = objectForm(node);
    for (const [key, child] of Object.entries(value)) {
      const property = (object?.properties as Record<string, Schema> | undefined)?.[key];
      if (property === undefined) misplaced.push(`${path}.${key}`);
      else walk(child, property, `${path}.${key}`);
    }
  };
  walk(example, schema, '$');
  t.same(misplaced, [], 'every key of the example is a property of the schema at its level');
  t.doesNotThrow(() => parseConfig(exampleText, 'config.example.yaml'), 'and the loader accepts it');
});

/** The README's "Configuration reference" section. */
function referenceSection(): string {
  const start = readme.indexOf('## Configuration reference');
  const end = readme.indexOf('\n## ', start + 1);
  if (start < 0) throw new Error('README has no "## Configuration reference"');
  return readme.slice(start, end < 0 ? undefined : end);
}

/** Rows of the markdown table under `### heading` in `section`: cells split on unescaped "|". */
function tableRows(section: string, heading: string): string[][] {
  const start = section.indexOf(`### ${heading}`);
  if (start < 0) throw new Error(`README reference has no "### ${heading}"`);
  const end = section.indexOf('\n### ', start + 1);
  const lines = section.slice(start, end < 0 ? undefined : end).split('\n');
  return lines
    .filter((line) => line.startsWith('|'))
    .slice(2) // header and separator
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim()),
    );
}

const backticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);

t.test("every key in the README's config reference exists in the schema at its level", async (t) => {
  const section = referenceSection();
  const tables: Array<{ heading: string; base: Schema; also?: Schema }> = [
    { heading: 'Top level', base: schema },
    { heading: 'Listener', base: listenerSchema },
    { heading: 'Route (and `default`)', base: routeSchema, also: defaultRouteSchema },
  ];
  const documented = new Set<string>();
  /** Keys of the Route table found, or not, in the schema of `default` ("route options without `hostnames`"). */
  const inDefault: string[] = [];
  const notInDefault: string[] = [];
  for (const { heading, base, also } of tables) {
    const rows = tableRows(section, heading);
    t.ok(rows.length > 0, `${heading}: ${rows.length} rows`);
    for (const [keyCell = '', defaultCell = '', meaning = ''] of rows) {
      const keys = backticked(keyCell);
      t.ok(keys.length > 0, `${heading}: a key in ${keyCell}`);
      for (const key of keys) {
        const path = key.replace(/\[\]/g, '');
        const node = at(base, path);
        t.ok(node, `${heading}: "${key}" is in the schema`);
        documented.add(`${heading}:${path}`);
        if (also && defaultCell.includes('not in `default`')) t.notOk(at(also, path), `\`${key}\` is not allowed in \`default\`, as the table says`);
        else if (also) (at(also, path) ? inDefault : notInDefault).push(key);
        // Keys named inside the meaning: `{ interval: 5s, ... }` literals, and for `defaults` the timeout names.
        for (const code of backticked(meaning)) {
          const literal = /^\{(.*)\}$/.exec(code.trim());
          const inner = literal
            ? literal[1]!.split(',').map((part) => part.split(':')[0]!.trim())
            : key === 'defaults' && /^[a-z][A-Za-z]+$/.test(code)
              ? [code]
              : [];
          for (const name of inner) {
            t.ok(at(base, `${path}.${name}`), `${heading}: "${key}.${name}" (from the meaning column) is in the schema`);
            documented.add(`${heading}:${path}.${name}`);
          }
        }
      }
    }
  }

  // And the other way round: the reference is complete (each schema property is documented).
  const undocumented: string[] = [];
  const expect = (heading: string, prefix: string, node: Schema | undefined): void => {
    const object = objectForm(node);
    for (const [name, child] of Object.entries((object?.properties ?? {}) as Record<string, Schema>)) {
      const path = prefix ? `${prefix}.${name}` : name;
      const nested = objectForm(child);
      // Documented as a whole or key by key.
      if (!documented.has(`${heading}:${path}`) && !(nested && [...documented].some((entry) => entry.startsWith(`${heading}:${path}.`))))
        undocumented.push(`${heading}: ${path}`);
      if (nested && heading === 'Route (and `default`)' && (name === 'backends' || name === 'healthCheck')) expect(heading, path, child);
    }
  };
  expect('Top level', '', schema);
  expect('Top level', 'admin', at(schema, 'admin'));
  expect('Top level', 'defaults', at(schema, 'defaults'));
  expect('Listener', '', listenerSchema);
  expect('Route (and `default`)', '', routeSchema);
  t.same(undocumented, [], 'every schema property appears in the reference');
  t.ok(inDefault.length >= 10, `${inDefault.length} Route-table keys are allowed in \`default\` too`);

  t.test('every Route-table key but `hostnames` is allowed in `default`, as the table heading says', async (t) => {
    t.same(notInDefault, [], 'Route-table keys missing from the schema of `default`');
  });
});

t.test("the README's YAML configs are valid against the schema and accepted by the loader", async (t) => {
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1]!).filter((block) => /^listeners:/m.test(block));
  t.ok(blocks.length >= 3, `${blocks.length} YAML configs (reference, *.localhost, PROXY protocol)`);
  const reference = referenceSection();
  t.match(reference, /# yaml-language-server: \$schema=/, 'the reference shows the yaml-language-server line');
  for (const [index, block] of blocks.entries()) {
    t.same(validate(parse(block), schema), [], `README YAML config #${index + 1} is valid`);
    t.doesNotThrow(() => parseConfig(block, `README.md#${index + 1}`), `README YAML config #${index + 1} loads`);
  }
});

t.test('the schema and the loader agree on what is wrong', async (t) => {
  // Each of these is refused by both: the schema comes from the loader's own definition.
  const invalid = [
    'listeners: []\n',
    'listeners:\n  - listen: 127.0.0.1:0\n    bogus: 1\n    default: { backends: [127.0.0.1:1] }\n',
    'listeners:\n  - listen: 127.0.0.1:0\n    default: { backends: [127.0.0.1:1], balance: random }\n',
    'listeners:\n  - listen: 127.0.0.1:0\n    routes:\n      - backends: [127.0.0.1:1]\n',
    'listeners:\n  - listen: 127.0.0.1:0\n    default: { backends: [{ address: 127.0.0.1:1, weight: -1 }] }\n',
    'listeners:\n  - listen: 127.0.0.1:0\n    default: { backends: [127.0.0.1:1], proxyProtocol: v3 }\n',
    'defaults: { drainTimeout: soon }\nlisteners:\n  - listen: 127.0.0.1:0\n    default: { backends: [127.0.0.1:1] }\n',
    'admin: { allowRemote: true }\nlisteners:\n  - listen: 127.0.0.1:0\n    default: { backends: [127.0.0.1:1] }\n',
    'listeners:\n  - listen: 127.0.0.1:0\n    protocol: http\n    default: { redirect: https, backends: [127.0.0.1:1] }\n',
    'listeners:\n  - listen: 127.0.0.1:0\n    protocol: http\n    default: { acmeChallenge: [127.0.0.1:1] }\n',
    'listeners:\n  - listen: 127.0.0.1:0\n    protocol: http\n    default: { redirectPort: 8443, backends: [127.0.0.1:1] }\n',
  ];
  for (const text of invalid) {
    t.not(validate(parse(text), schema).length, 0, `schema refuses: ${JSON.stringify(text)}`);
    t.throws(() => parseConfig(text, 'x.yaml'), `loader refuses: ${JSON.stringify(text)}`);
  }
  const valid = [
    'listeners:\n  - listen: 127.0.0.1:0\n    default: { backends: [127.0.0.1:1] }\n',
    'listeners:\n  - listen: 8443\n    idleTimeout: 1m30s\n    routes:\n      - hostnames: ["*.example.com"]\n        alpn: [h2]\n        balance: leastconn\n        healthCheck: { interval: 5s, timeout: 2s, rise: 2, fall: 3 }\n        backends: [{ address: 10.0.0.1:443, weight: 0, proxyProtocol: v2 }]\n',
    'listeners:\n  - listen: 80\n    protocol: http\n    routes:\n      - hostnames: [app.example.com]\n        backends: [127.0.0.1:8080]\n    default: { redirect: https, redirectPort: 8443, acmeChallenge: [127.0.0.1:8089] }\n',
  ];
  for (const text of valid) {
    t.same(validate(parse(text), schema), [], `schema accepts: ${JSON.stringify(text)}`);
    t.doesNotThrow(() => parseConfig(text, 'x.yaml'), `loader accepts: ${JSON.stringify(text)}`);
  }
});
