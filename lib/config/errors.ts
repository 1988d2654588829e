/** A position in the config file, 1-based like editors show it. */
export interface SourcePosition {
  line: number;
  col: number;
}

/**
 * A config problem, tied to the YAML node that caused it when there is one:
 * prints as `FILE:LINE:COL: message` (or `FILE: message` when the file itself
 * could not be read).
 */
export class ConfigError extends Error {
  readonly file: string;
  readonly position: SourcePosition | null;
  readonly detail: string;

  constructor(file: string, position: SourcePosition | null, detail: string) {
    super(position ? `${file}:${position.line}:${position.col}: ${detail}` : `${file}: ${detail}`);
    this.name = 'ConfigError';
    this.file = file;
    this.position = position;
    this.detail = detail;
  }
}
