// Formatting for the bench's report: figures, ratios and markdown tables.

/** A figure as the report prints it: no decimals for whole numbers and from 100 up, else one; "–" when unknown. */
export function figure(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  const digits = Number.isInteger(value) || Math.abs(value) >= 100 ? 0 : 1;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** `value ÷ base` as "1.23×", or "–" when either is unknown. */
export function ratio(value: number | undefined, base: number | undefined): string {
  return value === undefined || base === undefined || !Number.isFinite(value / base) ? '–' : `${(value / base).toFixed(2)}×`;
}

const markdownRow = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;

/** A markdown table: the first column left-aligned (labels), the others right-aligned (figures). */
export function markdownTable(header: readonly string[], body: readonly (readonly string[])[]): string {
  return [markdownRow(header), markdownRow(header.map((_, index) => (index === 0 ? '---' : '---:'))), ...body.map(markdownRow)].join('\n');
}

const cell = (value: unknown): string => (typeof value === 'number' ? figure(value) : typeof value === 'string' ? value : JSON.stringify(value));

/**
 * Figures of a shape the bench does not know in advance (another script's
 * result): each field a list item, or a table when it is a list of records.
 */
export function figuresAsMarkdown(figures: unknown): string {
  if (typeof figures !== 'object' || figures === null) return cell(figures);
  return Object.entries(figures)
    .map(([key, value]) => {
      const records = Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === 'object' && item !== null) ? (value as object[]) : null;
      if (!records) return `- ${key}: ${cell(value)}`;
      const columns = Object.keys(records[0]!);
      return `\n${key}:\n\n${markdownTable(
        columns,
        records.map((record) => columns.map((column) => cell((record as Record<string, unknown>)[column]))),
      )}\n`;
    })
    .join('\n');
}
