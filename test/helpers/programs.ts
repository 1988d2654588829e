import { execFile, spawn } from 'node:child_process';

/**
 * The programs CI installs (`.ci/run` lists them in SNIP_REQUIRE_PEERS): there
 * a missing one fails the test that wanted it, instead of skipping it, so an
 * install that went wrong cannot hide tests. Elsewhere they are optional.
 */
const REQUIRED = new Set((process.env.SNIP_REQUIRE_PEERS ?? '').split(',').filter(Boolean));

/** The path of `binary` on PATH, or null (tests that need a real peer skip without it; rejects for a program CI must have). */
export function which(binary: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', `command -v ${binary}`], (error, stdout) => {
      const path = error ? null : stdout.trim() || null;
      if (path === null && REQUIRED.has(binary)) reject(new Error(`${binary} is missing, and SNIP_REQUIRE_PEERS says this run must have it`));
      else resolve(path);
    });
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

/**
 * Loads `url` in headless Chromium with the flags a closed network needs and
 * prints the page (`--dump-dom`). `home`: where it reads its NSS database
 * ($HOME/.pki/nssdb); `profile`: a fresh --user-data-dir.
 */
export function chromiumDumpDom(chromium: string, home: string, profile: string, url: string, killAfterMs: number): Promise<ProgramResult> {
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  return runProgram('env', [`HOME=${home}`, chromium, ...flags, `--user-data-dir=${profile}`, '--dump-dom', url], '', killAfterMs);
}
