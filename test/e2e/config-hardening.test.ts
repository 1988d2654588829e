// Bad and hostile config files through the compiled CLI: `check` and startup
// each say one `FILE:LINE:COL: message` line (or `FILE: message` for a file
// that cannot be read), never a stack trace. Reloads: config-reload.test.ts.
import { execFileSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import t from 'tap';
import { runCli, startProxy, writeConfig } from '../helpers/proxy-process.js';
import { aliasBombYaml, expectOneConfigErrorLine } from '../helpers/config-errors.js';
import { guard } from '../helpers/wait.js';

/** Never dialled: check and a failed startup do not connect. */
const backend = { address: '127.0.0.1:9443' };

const listenerYaml = (routes: string): string => `listeners:\n  - name: public\n    listen: 127.0.0.1:0\n    routes:\n${routes}`;
const goodYaml = listenerYaml(`      - hostnames: [app.example.com]\n        backends: [${backend.address}]\n`);

/** Each bad file, what `check` must print after `FILE:LINE:COL: `, and where. */
const badFiles = [
  {
    what: 'an unquoted wildcard hostname',
    text: listenerYaml(`      - hostnames: [*.preview.localhost]\n        backends: [${backend.address}]\n`),
    at: '*.preview.localhost',
    message: /^\*\.preview\.localhost must be quoted: .*write "\*\.preview\.localhost"$/,
  },
  {
    what: 'an alias without anchor',
    text: listenerYaml('      - hostnames: [app.example.com]\n        backends: *pool\n'),
    at: '*pool',
    message: /^unknown alias \*pool: no anchor &pool before it/,
  },
  { what: 'an alias bomb', text: aliasBombYaml, at: '*e, *e', message: /alias bomb/ },
  { what: 'a tab as indentation', text: goodYaml.replace('  - name: public', '\t- name: public'), at: '\t', message: /tab/i },
  { what: 'bad indentation', text: goodYaml.replace('    listen:', '   listen:'), at: '   listen', message: /indicator/ },
  // The 64th bracket opens level 65 (the top mapping is level 1): a brace there, to find it.
  { what: '200,000 nested lists', text: `listeners: ${'['.repeat(63)}{${'['.repeat(200_000)}\n`, at: '{', message: /^nesting deeper than 64 levels$/ },
  { what: 'a list as a key (yaml would warn on a second line)', text: 'listeners:\n  - [a, b]: 1\n', at: '[a, b]', message: /^unknown key "\[ a, b \]"/ },
  {
    what: 'a URL where host:port belongs',
    text: listenerYaml('      - hostnames: [app.example.com]\n        backends: [https://127.0.0.1:22002]\n'),
    at: 'https://',
    message: /^"https:\/\/127\.0\.0\.1:22002" is a URL: write host:port without a scheme, e\.g\. "127\.0\.0\.1:22002"$/,
  },
  {
    what: 'a duplicate hostname',
    text: listenerYaml(
      `      - hostnames: [app.example.com]\n        backends: [${backend.address}]\n      - hostnames: [APP.example.com]\n        backends: [${backend.address}]\n`,
    ),
    at: 'APP.example.com',
    message: /^hostname "app\.example\.com" appears more than once in this listener \(first at 5:21\)$/,
  },
];

t.test('check: every bad file gets one FILE:LINE:COL line and exit 1', async (t) => {
  // Two at a time: each is a process of its own.
  for (let start = 0; start < badFiles.length; start += 2) {
    const runs = badFiles.slice(start, start + 2).map(async (bad) => {
      const file = await writeConfig(bad.text);
      return { bad, file, result: await guard(runCli(['check', '--config', file]), 60_000, `check on ${bad.what}`) };
    });
    for (const { bad, file, result } of await Promise.all(runs)) {
      t.test(bad.what, async (t) => {
        t.equal(result.code, 1, 'exit 1');
        t.equal(result.stdout, '');
        expectOneConfigErrorLine(t, result.stderr, file, bad.text, bad.at, bad.message);
      });
    }
  }
});

t.test('check: a FIFO, a directory, a file over 16 MiB: one `FILE: message` line', async (t) => {
  const file = await writeConfig(goodYaml);
  await rm(file);
  execFileSync('mkfifo', [file]);
  const fifo = await guard(runCli(['check', '--config', file]), 60_000, 'check on a FIFO');
  t.equal(fifo.code, 1);
  t.equal(fifo.stderr, `${file}: cannot read config: a named pipe (FIFO), not a regular file\n`);

  const directory = file.replace(/\/proxy\.yaml$/, '');
  const dir = await guard(runCli(['check', '--config', directory]), 60_000, 'check on a directory');
  t.equal(dir.stderr, `${directory}: cannot read config: a directory, not a regular file\n`);

  await rm(file);
  await writeFile(file, `${goodYaml}${'#'.repeat(100)}\n`.padEnd(16 * 1024 * 1024 + 1, '#'));
  const large = await guard(runCli(['check', '--config', file]), 60_000, 'check on a large file');
  t.equal(large.code, 1);
  t.equal(large.stderr, `${file}: config is larger than the limit of 16 MiB\n`);
});

t.test('startup: a bad file is one FILE:LINE:COL line on stderr, exit 1', async (t) => {
  const bad = badFiles[0]!;
  const file = await writeConfig(bad.text);
  const result = await guard(
    startProxy(null, { configFile: file }).then(
      () => {
        throw new Error('the proxy started');
      },
      (error: Error) => error.message,
    ),
    60_000,
    'startup',
  );
  // startProxy's rejection quotes stderr after "before it was ready: ".
  const stderr = result.slice(result.indexOf('ready: ') + 'ready: '.length);
  expectOneConfigErrorLine(t, stderr, file, bad.text, bad.at, bad.message);
});
