import { type ConfigPath, ShapeError, ValueError } from '../errors.js';

/**
 * A small schema language for the config: each shape reads a plain value
 * (from the parsed YAML) into a typed one, and can describe itself as JSON
 * Schema, so the loader and the published schema come from one definition.
 */

export type Path = ConfigPath;
export type JsonSchema = Record<string, unknown>;

/** A problem found while reading: where (a path into the document) and what. */
export interface Shape<T> {
  read(value: unknown, path: Path): T;
  jsonSchema(): JsonSchema;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value === 'number' ? `number ${String(value)}` : `${typeof value} ${JSON.stringify(value)}`;
}

/** A scalar read by a parser that throws `ValueError` with a user-facing message. */
export function scalar<T>(schema: JsonSchema, parse: (value: unknown) => T): Shape<T> {
  return {
    read(value, path) {
      try {
        return parse(value);
      } catch (error) {
        if (error instanceof ValueError) throw new ShapeError(path, error.message);
        throw error;
      }
    },
    jsonSchema: () => schema,
  };
}

export function string(schema: JsonSchema = {}): Shape<string> {
  return scalar({ type: 'string', ...schema }, (value) => {
    if (typeof value !== 'string') throw new ValueError(`expected a string, got ${describe(value)}`);
    return value;
  });
}

export function integer(minimum: number, maximum: number, schema: JsonSchema = {}): Shape<number> {
  return scalar({ type: 'integer', minimum, maximum, ...schema }, (value) => {
    if (typeof value !== 'number' || !Number.isInteger(value)) throw new ValueError(`expected an integer, got ${describe(value)}`);
    if (value < minimum || value > maximum) throw new ValueError(`${value} is out of range (${minimum}-${maximum})`);
    return value;
  });
}

export function boolean(schema: JsonSchema = {}): Shape<boolean> {
  return scalar({ type: 'boolean', ...schema }, (value) => {
    if (typeof value !== 'boolean') throw new ValueError(`expected true or false, got ${describe(value)}`);
    return value;
  });
}

export function oneOf<const T extends string>(choices: readonly T[], schema: JsonSchema = {}): Shape<T> {
  return scalar({ enum: choices, ...schema }, (value) => {
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      throw new ValueError(`expected one of ${choices.join(', ')}, got ${describe(value)}`);
    }
    return value as T;
  });
}

/** `itemName` names the entries in messages: `"backends" needs at least one backend`. */
export function list<T>(item: Shape<T>, options: { minItems?: number; description?: string; itemName?: string } = {}): Shape<T[]> {
  const minItems = options.minItems ?? 0;
  return {
    read(value, path) {
      if (!Array.isArray(value)) throw new ShapeError(path, `expected a list, got ${describe(value)}`);
      if (value.length < minItems) {
        const subject = typeof path[path.length - 1] === 'string' ? `"${path[path.length - 1]}"` : 'this list';
        const itemName = options.itemName ?? 'item';
        throw new ShapeError(path, `${subject} needs at least ${minItems === 1 ? `one ${itemName}` : `${minItems} ${itemName}s`}`);
      }
      return value.map((entry, index) => item.read(entry, [...path, index]));
    },
    jsonSchema: () => ({
      type: 'array',
      items: item.jsonSchema(),
      ...(minItems > 0 ? { minItems } : {}),
      ...(options.description ? { description: options.description } : {}),
    }),
  };
}

interface Field<T, Required extends boolean> {
  shape: Shape<T>;
  required: Required;
  description: string;
}

export function required<T>(shape: Shape<T>, description: string): Field<T, true> {
  return { shape, required: true, description };
}

export function optional<T>(shape: Shape<T>, description: string): Field<T, false> {
  return { shape, required: false, description };
}

type Fields = Record<string, Field<unknown, boolean>>;
type ObjectValue<F extends Fields> = {
  [K in keyof F]: F[K] extends Field<infer T, infer Required> ? (Required extends true ? T : T | undefined) : never;
};

/** A mapping with known keys only: an unknown key is an error pointing at that key. */
export function object<F extends Fields>(fields: F, options: { description?: string } = {}): Shape<ObjectValue<F>> {
  return {
    read(value, path) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new ShapeError(path, `expected a mapping, got ${describe(value)}`);
      }
      const input = value as Record<string, unknown>;
      for (const key of Object.keys(input)) {
        if (!Object.hasOwn(fields, key)) {
          throw new ShapeError([...path, key], `unknown key "${key}" (expected one of: ${Object.keys(fields).join(', ')})`, true);
        }
      }
      const output: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(fields)) {
        if (input[key] === undefined || input[key] === null) {
          if (field.required) {
            if (input[key] === null) throw new ShapeError([...path, key], `"${key}" is empty`, true);
            throw new ShapeError(path, `missing required key "${key}"`);
          }
          continue;
        }
        output[key] = field.shape.read(input[key], [...path, key]);
      }
      return output as ObjectValue<F>;
    },
    jsonSchema: () => ({
      type: 'object',
      ...(options.description ? { description: options.description } : {}),
      properties: Object.fromEntries(Object.entries(fields).map(([key, field]) => [key, { description: field.description, ...field.shape.jsonSchema() }])),
      required: Object.entries(fields)
        .filter(([, field]) => field.required)
        .map(([key]) => key),
      additionalProperties: false,
    }),
  };
}

/** A value written either as a scalar shorthand or as a mapping, e.g. `127.0.0.1:9443` or `{ address: ..., weight: 2 }`. */
export function scalarOrObject<T>(shorthand: Shape<T>, full: Shape<T>): Shape<T> {
  return {
    read(value, path) {
      return value !== null && typeof value === 'object' && !Array.isArray(value) ? full.read(value, path) : shorthand.read(value, path);
    },
    jsonSchema: () => ({ anyOf: [shorthand.jsonSchema(), full.jsonSchema()] }),
  };
}

/**
 * A value whose form decides how it is read: a scalar shorthand, a mapping, a
 * list. A form not given is an error naming the forms that are accepted.
 */
export function byKind<S, M, L>(forms: { scalar?: Shape<S>; mapping?: Shape<M>; list?: Shape<L> }): Shape<S | M | L> {
  const accepted = [forms.scalar && 'a value', forms.mapping && 'a mapping', forms.list && 'a list'].filter(Boolean).join(' or ');
  return {
    read(value, path) {
      const form = Array.isArray(value) ? forms.list : value !== null && typeof value === 'object' ? forms.mapping : forms.scalar;
      if (form === undefined) throw new ShapeError(path, `expected ${accepted}, got ${describe(value)}`);
      return form.read(value, path);
    },
    jsonSchema: () => ({ anyOf: [forms.scalar, forms.mapping, forms.list].filter((form) => form !== undefined).map((form) => form.jsonSchema()) }),
  };
}
