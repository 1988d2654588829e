// Reloads of bad and hostile config files through the compiled CLI: each
// refusal is one log line with FILE:LINE:COL and a code; a FIFO at the path
// does not hold up the save, SIGHUP and POST /reload after it; and
// connections keep completing while a 100,000-route file is parsed.
import { execFileSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import t from 'tap';
import { startTlsBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { aliasBombYaml, expectOneConfigErrorLine } from '../helpers/config-errors.js';
import { startProxy, writeConfig, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { whoAnswers } from '../helpers/tls-client.js';
import { guard } from '../helpers/wait.js';

const ca = await createCertificateAuthority();
const backend = await startTlsBackend(ca, 'app');
t.teardown(() => backend.close());

const goodYaml = `listeners:\n  - name: public\n    listen: 127.0.0.1:0\n    routes:\n      - hostnames: [app.example.com]\n        backends: [${backend.address}]\n`;

const badFiles = [
  {
    what: 'an unquoted wildcard hostname',
    text: goodYaml.replace('[app.example.com]', '[*.preview.localhost]'),
    at: '*.preview.localhost',
    message: /^\*\.preview\.localhost must be quoted: .*write "\*\.preview\.localhost"$/,
  },
  { what: 'an alias bomb', text: aliasBombYaml, at: '*e, *e', message: /alias bomb/ },
  { what: 'a tab as indentation', text: goodYaml.replace('  - name: public', '\t- name: public'), at: '\t', message: /tab/i },
];

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

  for (const bad of badFiles) {
    const from = proxy.logs.length;
    await writeFile(file, bad.text);
    proxy.child.kill('SIGHUP');
    const line = await refusedAfter(from);
    t.equal(line.code, 'SNIP_CONFIG_SYNTAX', `${bad.what}: the code`);
    expectOneConfigErrorLine(t, String(line.error), file, bad.text, bad.at, bad.message);
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
