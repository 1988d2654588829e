// createLogger (lib/observe/logger.ts): journald priorities (the level map and
// when stdout counts as the journal), and the asynchronous JSON destination
// in a child process whose stdout is a real pipe: the last lines of a burst
// are written while the process stays idle, even when they were logged while
// an earlier write was still in flight.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { isJournalStream, syslogPriority } from '../../lib/observe/logger.js';
import { projectRoot } from '../helpers/proxy-process.js';
import { guard, sleep } from '../helpers/wait.js';

t.test('syslog priorities of the pino levels', async (t) => {
  t.same([10, 20, 30, 40, 50, 60].map(syslogPriority), [7, 7, 6, 4, 3, 2], 'trace, debug 7; info 6; warn 4; error 3; fatal 2');
});

t.test('stdout is the journal only when JOURNAL_STREAM names its device and inode', async (t) => {
  const stdout = { dev: 64769n, ino: 1234567n };
  t.ok(isJournalStream('64769:1234567', stdout));
  t.notOk(isJournalStream('64769:1234568', stdout), 'another inode (stdout redirected, the variable inherited)');
  t.notOk(isJournalStream('1:1234567', stdout), 'another device');
  t.notOk(isJournalStream(undefined, stdout), 'unset');
  t.notOk(isJournalStream('', stdout), 'empty');
  t.notOk(isJournalStream('64769:1234567:9', stdout), 'malformed');
  t.notOk(isJournalStream(' 64769:1234567', stdout), 'malformed');
  t.notOk(isJournalStream('64769:1234567', null), 'stdout closed');
  const large = { dev: 18446744073709551615n, ino: 18446744073709551614n };
  t.ok(isJournalStream('18446744073709551615:18446744073709551614', large), 'compared exactly beyond 2^53');
  t.notOk(isJournalStream('18446744073709551615:18446744073709551615', large));
});

t.test('the tail of a burst reaches stdout while the process stays idle, though it was logged during a write', async (t) => {
  // 256 KiB of lines fill the pipe (the test does not read it yet), so a write stays in flight while the
  // last line is logged; after that the child logs nothing and waits. Each burst line is as long as one
  // write, so the last line is a remainder of its own, below the size the logger waits to gather: nothing
  // but the logger's own periodic flush can write it.
  const script = `
      import { createLogger } from './lib/observe/logger.js';
      const { logger } = await createLogger({ level: 'info', format: 'json', env: {} });
      const filler = 'x'.repeat(16_300);
      for (let index = 0; index < 16; index++) logger.info({ index, filler }, 'burst');
      logger.info('last line');
      process.stderr.write('logged\\n');
      setInterval(() => {}, 60_000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  child.stdout.pause();
  let stderr = '';
  const logged = new Promise<void>((resolve) =>
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += String(chunk);
      if (stderr.includes('logged\n')) resolve();
    }),
  );
  await guard(logged, 30_000, 'the child logging');
  // Let the child's flush timer run a few times while its write is blocked on the full pipe.
  await sleep(500);
  const lines: Array<{ msg: string; index?: number }> = [];
  const last = new Promise<void>((resolve) =>
    createInterface({ input: child.stdout }).on('line', (text) => {
      lines.push(JSON.parse(text) as { msg: string; index?: number });
      if (lines.at(-1)!.msg === 'last line') resolve();
    }),
  );
  await guard(last, 10_000, 'the last line');
  t.equal(lines.length, 17, 'every line, in order, once');
  t.same(
    lines.slice(0, 16).map((line) => line.index),
    Array.from({ length: 16 }, (_, index) => index),
  );
});

t.test('writeLine frames a line as pino does, at its level, with the journal prefix when stdout is the journal', async (t) => {
  const run = async (journal: boolean): Promise<string[]> => {
    const script = `
      import { fstatSync } from 'node:fs';
      import { createLogger } from './lib/observe/logger.js';
      const stdout = fstatSync(1);
      const env = ${journal} ? { JOURNAL_STREAM: stdout.dev + ':' + stdout.ino } : {};
      const { logger, writeLine, flush } = await createLogger({ level: 'info', format: 'json', env });
      logger.warn({ a: 'x"y', b: null, n: 1.5 }, 'through pino');
      writeLine(40, '"a":"x\\\\"y","b":null,"n":1.5', 'through pino');
      writeLine(20, '"debug":true', 'below the level: not written');
      await flush();`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += String(chunk)));
    await guard(new Promise((resolve) => child.on('close', resolve)), 30_000, 'the child exited');
    return stdout.split('\n').filter((line) => line !== '');
  };
  const withoutTime = (line: string): unknown => {
    const { time, ...rest } = JSON.parse(line.replace(/^<\d>/, '')) as Record<string, unknown>;
    return typeof time === 'string' ? rest : { time };
  };
  const plain = await run(false);
  t.equal(plain.length, 2, 'two lines: the debug one is below the level');
  t.same(withoutTime(plain[1]!), withoutTime(plain[0]!), 'the same fields, level, pid and msg as pino’s own line');
  const journal = await run(true);
  t.same(
    journal.map((line) => line.slice(0, 3)),
    ['<4>', '<4>'],
    'both carry the warn priority under the journal',
  );
});
