import t, { type Test } from 'tap';
import { boolean, integer, list, object, oneOf, optional, required, scalar, scalarOrObject, string, type Path, type Shape } from '../../lib/config/shape.js';
import { ShapeError, ValueError } from '../../lib/errors.js';
import { parseDuration } from '../../lib/config/values.js';

/** Asserts reading `value` fails with a ShapeError at `path` (on the key when `onKey`) with `message`. */
function fails(t: Test, shape: Shape<unknown>, value: unknown, expected: { path: Path; message: string | RegExp; onKey?: boolean }, label: string): void {
  try {
    const result = shape.read(value, ['root']);
    t.fail(`${label}: expected a ShapeError, got ${JSON.stringify(result)}`);
  } catch (error) {
    t.ok(error instanceof ShapeError, `${label}: a ShapeError`);
    const shapeError = error as ShapeError;
    t.same(shapeError.path, expected.path, `${label}: path`);
    if (typeof expected.message === 'string') t.equal(shapeError.message, expected.message, `${label}: message`);
    else t.match(shapeError.message, expected.message, `${label}: message`);
    t.equal(shapeError.onKey, expected.onKey ?? false, `${label}: onKey`);
  }
}

t.test('ShapeError carries its path and whether it points at a key', async (t) => {
  const error = new ShapeError(['listeners', 0, 'listen'], 'bad');
  t.ok(error instanceof Error);
  t.same(error.path, ['listeners', 0, 'listen']);
  t.equal(error.message, 'bad');
  t.equal(error.onKey, false, 'on the value by default');
  t.equal(new ShapeError(['x'], 'unknown', true).onKey, true);
});

t.test('scalar', async (t) => {
  const duration = scalar({ type: 'string' }, parseDuration);
  t.equal(duration.read('10s', []), 10_000, 'parses with the given parser');
  t.same(duration.jsonSchema(), { type: 'string' }, 'its schema is the one given');
  fails(t, duration, '5 sec', { path: ['root'], message: /^invalid duration "5 sec"/ }, 'ValueError becomes a ShapeError at the path');

  t.test('other errors are not disguised as config errors', async (t) => {
    const broken = scalar({}, () => {
      throw new TypeError('a bug');
    });
    t.throws(() => broken.read(1, ['x']), { message: 'a bug' });
    try {
      broken.read(1, ['x']);
    } catch (error) {
      t.ok(error instanceof TypeError, 'the original error');
      t.notOk(error instanceof ShapeError, 'not wrapped');
      t.equal((error as Error).message, 'a bug');
    }
  });
});

t.test('string', async (t) => {
  t.equal(string().read('public', []), 'public');
  t.equal(string().read('', []), '', 'empty strings pass (minLength is for the JSON Schema)');
  t.same(string().jsonSchema(), { type: 'string' });
  t.same(string({ minLength: 1 }).jsonSchema(), { type: 'string', minLength: 1 });
  fails(t, string(), 5, { path: ['root'], message: 'expected a string, got number 5' }, 'number');
  fails(t, string(), true, { path: ['root'], message: 'expected a string, got boolean true' }, 'boolean');
  fails(t, string(), null, { path: ['root'], message: 'expected a string, got null' }, 'null');
  fails(t, string(), ['a'], { path: ['root'], message: 'expected a string, got a list' }, 'list');
  fails(t, string(), { a: 1 }, { path: ['root'], message: 'expected a string, got a mapping' }, 'mapping');
});

t.test('integer', async (t) => {
  const weight = integer(0, 1000);
  t.equal(weight.read(0, []), 0, 'minimum');
  t.equal(weight.read(1000, []), 1000, 'maximum');
  t.equal(weight.read(2, []), 2);
  t.same(weight.jsonSchema(), { type: 'integer', minimum: 0, maximum: 1000 });
  t.same(integer(1, 5, { description: 'd' }).jsonSchema(), { type: 'integer', minimum: 1, maximum: 5, description: 'd' });
  fails(t, weight, -1, { path: ['root'], message: '-1 is out of range (0-1000)' }, 'below');
  fails(t, weight, 1001, { path: ['root'], message: '1001 is out of range (0-1000)' }, 'above');
  fails(t, weight, 1.5, { path: ['root'], message: 'expected an integer, got number 1.5' }, 'fraction');
  fails(t, weight, '2', { path: ['root'], message: 'expected an integer, got string "2"' }, 'numeric string');
  t.test('a non-finite number is named as such', async (t) => {
    fails(t, weight, Number.NaN, { path: ['root'], message: 'expected an integer, got number NaN' }, '.nan');
    fails(t, weight, Number.POSITIVE_INFINITY, { path: ['root'], message: 'expected an integer, got number Infinity' }, '.inf');
    fails(t, weight, Number.NEGATIVE_INFINITY, { path: ['root'], message: 'expected an integer, got number -Infinity' }, '-.inf');
    fails(t, string(), Number.NaN, { path: ['root'], message: 'expected a string, got number NaN' }, 'string shape, .nan');
  });
});

t.test('boolean', async (t) => {
  t.equal(boolean().read(true, []), true);
  t.equal(boolean().read(false, []), false);
  t.same(boolean().jsonSchema(), { type: 'boolean' });
  fails(t, boolean(), 'yes', { path: ['root'], message: 'expected true or false, got string "yes"' }, 'YAML 1.1 "yes" is a string');
  fails(t, boolean(), 1, { path: ['root'], message: 'expected true or false, got number 1' }, 'number');
});

t.test('oneOf', async (t) => {
  const balance = oneOf(['roundrobin', 'leastconn', 'source'] as const);
  t.equal(balance.read('leastconn', []), 'leastconn');
  t.same(balance.jsonSchema(), { enum: ['roundrobin', 'leastconn', 'source'] });
  fails(t, balance, 'random', { path: ['root'], message: 'expected one of roundrobin, leastconn, source, got string "random"' }, 'not a choice');
  fails(t, balance, 'RoundRobin', { path: ['root'], message: /got string "RoundRobin"$/ }, 'case-sensitive');
  fails(t, balance, 1, { path: ['root'], message: 'expected one of roundrobin, leastconn, source, got number 1' }, 'number');
});

t.test('list', async (t) => {
  const names = list(string(), { minItems: 1, description: 'names' });
  t.same(names.read(['a', 'b'], []), ['a', 'b']);
  t.same(list(string()).read([], []), [], 'no minimum: empty is fine');
  fails(t, names, [], { path: ['root'], message: '"root" needs at least one item' }, 'below minItems');
  fails(t, list(string(), { minItems: 2 }), ['a'], { path: ['root'], message: '"root" needs at least 2 items' }, 'plural');

  t.test('the message names the list by its key and its entries by itemName', async (t) => {
    const backends = list(string(), { minItems: 1, itemName: 'backend' });
    t.throws(() => backends.read([], ['listeners', 0, 'backends']), { message: '"backends" needs at least one backend' });
    const pairs = list(string(), { minItems: 2, itemName: 'backend' });
    t.throws(() => pairs.read(['a'], ['backends']), { message: '"backends" needs at least 2 backends' });
    for (const path of [[0], ['matrix', 3], []] as Path[]) {
      try {
        backends.read([], path);
        t.fail(`${JSON.stringify(path)}: expected a ShapeError`);
      } catch (error) {
        t.ok(error instanceof ShapeError, `${JSON.stringify(path)}: a ShapeError`);
        t.equal((error as ShapeError).message, 'this list needs at least one backend', `${JSON.stringify(path)}: no key to name, "this list"`);
        t.same((error as ShapeError).path, path, `${JSON.stringify(path)}: at the list`);
      }
    }
    t.throws(() => list(string(), { minItems: 1 }).read([], [0]), { message: 'this list needs at least one item' }, 'default itemName, no key');
    t.same(backends.jsonSchema(), { type: 'array', items: { type: 'string' }, minItems: 1 }, 'itemName is not part of the JSON Schema');
  });
  fails(t, names, 'a', { path: ['root'], message: 'expected a list, got string "a"' }, 'scalar');
  fails(t, names, { a: 1 }, { path: ['root'], message: 'expected a list, got a mapping' }, 'mapping');
  fails(t, names, ['a', 'b', 3], { path: ['root', 2], message: 'expected a string, got number 3' }, 'an item error carries its index');
  t.same(names.jsonSchema(), { type: 'array', items: { type: 'string' }, minItems: 1, description: 'names' });
  t.same(list(string()).jsonSchema(), { type: 'array', items: { type: 'string' } }, 'no minItems 0, no empty description');
});

t.test('object', async (t) => {
  const backend = object(
    {
      address: required(string(), 'where'),
      weight: optional(integer(0, 1000), 'share'),
    },
    { description: 'a backend' },
  );

  t.test('reads known keys, leaves absent optional ones out', async (t) => {
    t.same(backend.read({ address: 'a:1', weight: 2 }, []), { address: 'a:1', weight: 2 });
    const withoutWeight = backend.read({ address: 'a:1' }, []);
    t.same(withoutWeight, { address: 'a:1' });
    t.notOk(Object.hasOwn(withoutWeight, 'weight'), 'absent key not set to undefined');
    t.same(backend.read({ address: 'a:1', weight: null }, []), { address: 'a:1' }, 'null (an empty YAML value) counts as absent');
  });

  t.test('unknown keys point at the key and list the known ones', async (t) => {
    fails(
      t,
      backend,
      { address: 'a:1', wieght: 2 },
      { path: ['root', 'wieght'], message: 'unknown key "wieght" (expected one of: address, weight)', onKey: true },
      'typo',
    );
    fails(
      t,
      backend,
      { address: 'a:1', toString: 1 },
      { path: ['root', 'toString'], message: /^unknown key "toString"/, onKey: true },
      'Object.prototype names are not known keys',
    );
    fails(
      t,
      backend,
      { wieght: 2 },
      { path: ['root', 'wieght'], message: /^unknown key "wieght"/, onKey: true },
      'unknown key is reported before a missing one',
    );
  });

  t.test('missing required keys point at the mapping', async (t) => {
    fails(t, backend, {}, { path: ['root'], message: 'missing required key "address"' }, 'empty mapping');
  });

  t.test('a required key that is present but empty points at the key', async (t) => {
    fails(t, backend, { address: null }, { path: ['root', 'address'], message: '"address" is empty', onKey: true }, 'null value');
    fails(
      t,
      backend,
      { address: null, wieght: 1 },
      { path: ['root', 'wieght'], message: /^unknown key "wieght"/, onKey: true },
      'an unknown key is still reported first',
    );
    fails(t, backend, { address: undefined }, { path: ['root'], message: 'missing required key "address"' }, 'undefined counts as missing');
  });

  t.test('an unknown key that YAML read as a number is named as the string it became', async (t) => {
    fails(t, backend, { address: 'a:1', 5: 'x' }, { path: ['root', '5'], message: 'unknown key "5" (expected one of: address, weight)', onKey: true }, '5: x');
  });

  t.test('field errors carry the field path', async (t) => {
    fails(t, backend, { address: 'a:1', weight: -1 }, { path: ['root', 'weight'], message: '-1 is out of range (0-1000)' }, 'bad weight');
    fails(
      t,
      object({ inner: required(backend, 'x') }),
      { inner: { address: 5 } },
      { path: ['root', 'inner', 'address'], message: 'expected a string, got number 5' },
      'nested',
    );
  });

  t.test('non-mappings are refused', async (t) => {
    fails(t, backend, 'a:1', { path: ['root'], message: 'expected a mapping, got string "a:1"' }, 'string');
    fails(t, backend, ['a:1'], { path: ['root'], message: 'expected a mapping, got a list' }, 'list');
    fails(t, backend, null, { path: ['root'], message: 'expected a mapping, got null' }, 'null');
  });

  t.test('as JSON Schema: properties with descriptions, required, no additional keys', async (t) => {
    t.same(backend.jsonSchema(), {
      type: 'object',
      description: 'a backend',
      properties: {
        address: { description: 'where', type: 'string' },
        weight: { description: 'share', type: 'integer', minimum: 0, maximum: 1000 },
      },
      required: ['address'],
      additionalProperties: false,
    });
    t.same(object({ a: optional(boolean(), 'flag') }).jsonSchema(), {
      type: 'object',
      properties: { a: { description: 'flag', type: 'boolean' } },
      required: [],
      additionalProperties: false,
    });
  });
});

t.test('scalarOrObject', async (t) => {
  const full = object({ address: required(string(), 'where'), weight: optional(integer(0, 1000), 'share') });
  const shorthand = scalar({ type: 'string' }, (value) => {
    if (typeof value !== 'string') throw new ValueError('a backend must be "host:port"');
    return { address: value, weight: undefined as number | undefined };
  });
  const backend = scalarOrObject(shorthand, full);
  t.same(backend.read('a:1', []), { address: 'a:1', weight: undefined }, 'a scalar goes to the shorthand');
  t.same(backend.read({ address: 'a:1', weight: 2 }, []), { address: 'a:1', weight: 2 }, 'a mapping goes to the full form');
  fails(t, backend, 9443, { path: ['root'], message: 'a backend must be "host:port"' }, 'a number goes to the shorthand');
  fails(t, backend, ['a:1'], { path: ['root'], message: 'a backend must be "host:port"' }, 'a list goes to the shorthand');
  fails(
    t,
    backend,
    { address: 'a:1', port: 1 },
    { path: ['root', 'port'], message: /^unknown key "port"/, onKey: true },
    'mapping errors come from the full form',
  );
  t.same(backend.jsonSchema(), { anyOf: [shorthand.jsonSchema(), full.jsonSchema()] });
  t.same((backend.jsonSchema().anyOf as unknown[])[0], { type: 'string' });
});
