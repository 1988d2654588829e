/** 1-based line and column of the first occurrence of `needle` in `text` (to check FILE:LINE:COL errors). */
export function positionOf(text: string, needle: string): { line: number; col: number } {
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const col = lines[index]!.indexOf(needle);
    if (col >= 0) return { line: index + 1, col: col + 1 };
  }
  throw new Error(`${needle} not in the text`);
}
