// Bad and hostile config files through the compiled CLI: `check`, startup
// and reload each say one `FILE:LINE:COL: message` line (or `FILE: message`
// for a file that cannot be read), never a stack trace; a FIFO at the path
// does not hold up later reloads; and connections keep flowing while a
// 100,000-route file is parsed.
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { rm, writeFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { startTlsBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { runCli, startProxy, writeConfig, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { positionOf } from '../helpers/text-position.js';
import { whoAnswers } from '../helpers/tls-client.js';
import { guard } from '../helpers/wait.js';

const ca = await createCertificateAuthority();
const backend = await startTlsBackend(ca, 'app');
t.teardown(() => backend.close());

const listenerYaml = (routes: string): string => `listeners:\n  - name: public\n    listen: 127.0.0.1:0\n    routes:\n${routes}`;
const goodYaml = listenerYaml(`      - hostnames: [app.example.com]\n        backends: [${backend.address}]\n`);

const aliasBomb = [
  ...'abcdefghi'.split('').map(
    (name, index, names) =>
      `${name}: &${name} [${Array(9)
        .fill(index === 0 ? '"lol"' : `*${names[index - 1]}`)
        .join(', ')}]`,
  ),
  'listeners: *i',
  '',
].join('\n');

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
  { what: 'an alias bomb', text: aliasBomb, at: '*e, *e', message: /alias bomb/ },
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

/** One line, `FILE:LINE:COL: message` at the first occurrence of `at`, no stack trace. */
function expectOneLine(t: Test, output: string, file: string, text: string, at: string, message: RegExp): void {
  const lines = output.trimEnd().split('\n');
  t.equal(lines.length, 1, `one line: ${output.trimEnd()}`);
  const { line, col } = positionOf(text, at);
  const prefix = `${file}:${line}:${col}: `;
  t.ok(lines[0]!.startsWith(prefix), `starts with ${prefix}`);
  t.match(lines[0]!.slice(prefix.length), message);
  t.notMatch(output, /^\s+at |Error:/m, 'no stack trace');
}

t.test('check: every bad file gets one FILE:LINE:COL line and exit 1', async (t) => {
  for (const bad of badFiles) {
    t.test(bad.what, async (t) => {
      const file = await writeConfig(bad.text);
      const result = await guard(runCli(['check', '--config', file]), 60_000, `check on ${bad.what}`);
      t.equal(result.code, 1, 'exit 1');
      t.equal(result.stdout, '');
      expectOneLine(t, result.stderr, file, bad.text, bad.at, bad.message);
    });
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
  expectOneLine(t, stderr, file, bad.text, bad.at, bad.message);
});

/** Resolves with the next log line after index `from` that matches. */
async function nextLog(proxy: ProxyProcess, from: number, predicate: (line: LogLine) => boolean): Promise<LogLine> {
  return proxy.waitForLog((line) => proxy.logs.indexOf(line) >= from && predicate(line), 60_000);
}

function post(address: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const req = request({ host, port, path, method: 'POST' }, (response) => {
      let body = '';
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('reload: refusals are one line; a FIFO does not hold up the save, SIGHUP and POST /reload after it', async (t) => {
  const adminYaml = `admin:\n  listen: 127.0.0.1:0\n${goodYaml}`;
  const file = await writeConfig(adminYaml);
  const proxy = await startProxy(null, { configFile: file, args: ['--no-watch'] });
  t.teardown(() => proxy.stop());
  const admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);
  const refusedAfter = (from: number): Promise<LogLine> => nextLog(proxy, from, (line) => line.msg.startsWith('config reload refused'));

  for (const bad of badFiles.slice(0, 3)) {
    const from = proxy.logs.length;
    await writeFile(file, bad.text);
    proxy.child.kill('SIGHUP');
    const line = await refusedAfter(from);
    t.equal(line.code, 'SNIP_CONFIG_SYNTAX', `${bad.what}: the code`);
    expectOneLine(t, String(line.error), file, bad.text, bad.at, bad.message);
    t.match(line.msg, /^config reload refused, still running generation 1: /);
  }

  const from = proxy.logs.length;
  await rm(file);
  execFileSync('mkfifo', [file]);
  proxy.child.kill('SIGHUP');
  const fifo = await refusedAfter(from);
  t.equal(fifo.code, 'SNIP_CONFIG_NOT_A_FILE');
  t.equal(fifo.error, `${file}: cannot read config: a named pipe (FIFO), not a regular file`);

  await rm(file);
  await writeFile(file, adminYaml.replace('hostnames: [app.example.com]', 'hostnames: [app.example.com, other.example.com]'));
  const applied = proxy.logs.length;
  proxy.child.kill('SIGHUP');
  t.match(await nextLog(proxy, applied, (line) => line.msg === 'config reloaded'), { trigger: 'signal', generation: 2 }, 'SIGHUP after it applies');
  const answer = await post(admin, '/reload');
  t.equal(answer.status, 200, 'POST /reload after it answers');
  t.match(JSON.parse(answer.body), { result: 'unchanged', generation: 2 });
  t.match(await whoAnswers({ port: proxy.port('public'), servername: 'other.example.com', ca: ca.cert }), { backend: 'app' }, 'the new route serves');
});

t.test('connections complete while a 100,000-route file is being parsed', async (t) => {
  const file = await writeConfig(goodYaml);
  const proxy = await startProxy(null, { configFile: file, args: ['--no-watch'] });
  t.teardown(() => proxy.stop());
  const port = proxy.port('public');
  const routes = Array.from({ length: 100_000 }, (_, index) => `      - hostnames: [h${index}.example.com]\n        backends: [${backend.address}]\n`);
  await writeFile(file, `${goodYaml}${routes.join('')}`);

  const from = proxy.logs.length;
  proxy.child.kill('SIGHUP');
  const reloaded = nextLog(proxy, from, (line) => line.msg === 'config reloaded');
  let done = false;
  void reloaded.finally(() => (done = true));
  // One connection after another until the reload is logged (bounded in count; the guard bounds the time).
  for (let count = 0; count < 1_000 && !done; count++) {
    const identity = await guard(whoAnswers({ port, servername: 'app.example.com', ca: ca.cert }), 30_000, 'a connection during the reload');
    t.equal(identity.backend, 'app');
  }
  const reloadLine = await reloaded;
  t.match(reloadLine, { generation: 2 });
  // The proxy's own log orders them: connections that ended between the signal and the reload being applied.
  const between = proxy.logs.slice(from, proxy.logs.indexOf(reloadLine)).filter((line) => line.msg === 'connection closed');
  t.ok(between.length >= 5, `connections kept completing while the file was parsed (${between.length} of them)`);
});
