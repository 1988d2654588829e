import type { Test } from 'tap';
import { positionOf } from './text-position.js';

/** Nine levels of nine aliases: 9^9 values once expanded. */
export const aliasBombYaml = [
  ...'abcdefghi'.split('').map(
    (name, index, names) =>
      `${name}: &${name} [${Array(9)
        .fill(index === 0 ? '"lol"' : `*${names[index - 1]}`)
        .join(', ')}]`,
  ),
  'listeners: *i',
  '',
].join('\n');

/** `output` is one line, `FILE:LINE:COL: message` at the first occurrence of `at` in `text`, with no stack trace. */
export function expectOneConfigErrorLine(t: Test, output: string, file: string, text: string, at: string, message: RegExp): void {
  const lines = output.trimEnd().split('\n');
  t.equal(lines.length, 1, `one line: ${output.trimEnd()}`);
  const { line, col } = positionOf(text, at);
  const prefix = `${file}:${line}:${col}: `;
  t.ok(lines[0]!.startsWith(prefix), `starts with ${prefix}`);
  t.match(lines[0]!.slice(prefix.length), message);
  t.notMatch(output, /^\s+at |Error:/m, 'no stack trace');
}
