import { execFile, spawn } from 'node:child_process';

/** The path of `binary` on PATH, or null (tests that need a real peer skip without it). */
export function which(binary: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', `command -v ${binary}`], (error, stdout) => resolve(error ? null : stdout.trim() || null));
  });
}

export interface ProgramResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program with `input` on stdin (then closed); resolves with its exit code and output. Killed after `killAfterMs` (a guard). */
export function runProgram(file: string, args: string[], input = '', killAfterMs = 10_000): Promise<ProgramResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
