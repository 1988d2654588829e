// Command-line options of the bench scripts: a bad option gets one line and the usage, never a stack trace.
import { type ParseArgsConfig, parseArgs } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses `process.argv` for `options` (give them a boolean `help`); prints `usage` and exits on --help (0) or a bad option (2). */
export function parseOptions<const T extends Options>(options: T, usage: string): ReturnType<typeof parseArgs<{ options: T }>>['values'] {
  let values: ReturnType<typeof parseArgs<{ options: T }>>['values'];
  try {
    values = parseArgs({ options }).values;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${usage}\n`);
    process.exit(2);
  }
  if ((values as { help?: boolean }).help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values;
}
