// What the bench reads from /proc (Linux only): CPU time and memory of process
// trees, how busy the whole machine was, which ports are listening, fd limits.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

if (process.platform !== 'linux') throw new Error('the bench reads CPU time and memory from /proc: Linux only');

/** Clock ticks per second, the unit of the CPU times in /proc/PID/stat and /proc/stat. */
const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null; // the process exited meanwhile
  }
}

/** The fields of /proc/PID/stat after the command name; index 0 is field 3 (state). */
function statFields(pid: number): string[] | null {
  const stat = readOrNull(`/proc/${pid}/stat`);
  return stat === null ? null : stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** `pid` and all its descendants alive now (nginx's master and worker, a CLI and anything it spawns). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = Number(statFields(Number(entry))?.[1] ?? 0);
    if (parent > 0) children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const tree: number[] = [];
  for (const queue = [pid]; queue.length > 0 && tree.length < 10_000; ) {
    const next = queue.pop()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** CPU seconds (utime + stime, plus what its reaped children used) of each process in `pids`, summed. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = statFields(pid);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return ticks / TICKS;
}

/** Resident memory (VmRSS) of each process in `pids`, summed, in KiB. */
export function rssKiB(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) total += Number(/VmRSS:\s+(\d+)/.exec(readOrNull(`/proc/${pid}/status`) ?? '')?.[1] ?? 0);
  return total;
}

/** Busy and total CPU seconds of the whole machine since boot (all cores). */
export function machineSeconds(): { busy: number; total: number } {
  const values = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  return { busy: (total - values[3]! - values[4]!) / TICKS, total: total / TICKS };
}

/** Whether some process listens on TCP `port` on IPv4. */
export function isListening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[3] === '0A' && fields[1]!.endsWith(hex);
    });
}

/** This process's soft limit on open files. */
export function openFileLimit(): number {
  return Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
}
