import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** `$XDG_DATA_HOME/sni-passthrough`, or `~/.local/share/sni-passthrough` when that is unset or not absolute (XDG Base Directory spec). */
export function defaultStateDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const dataHome = env.XDG_DATA_HOME;
  return join(dataHome && isAbsolute(dataHome) ? dataHome : join(env.HOME || homedir(), '.local', 'share'), 'sni-passthrough');
}
