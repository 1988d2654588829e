import { configSchema } from './schema.js';
import type { JsonSchema } from './shape.js';

/**
 * The config file's JSON Schema (draft 2020-12), generated from the same
 * definition the loader validates with; `schema/config.schema.json` is this
 * output, for editors using the YAML language server.
 */
export function configJsonSchema(): JsonSchema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/sni-passthrough/sni-passthrough/schema/config.schema.json',
    title: 'sni-passthrough configuration',
    ...configSchema.jsonSchema(),
  };
}
