// What `npm pack` publishes, and that it runs: the tarball holds only what
// runs (built JS, bin, schema, example config, systemd units, Kubernetes manifests, docs), and,
// installed OFFLINE into an empty directory (dependencies from the npm cache
// that `npm ci` filled), `npx sni-passthrough --version` and `check` work.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { cliPath, commandLaunch, projectRoot, startCli, writeConfig } from '../helpers/proxy-process.js';

/** npm is slow, more so on a shared machine: a guard per command, not a measurement. */
const NPM_GUARD_MS = 100_000;

const packageJson = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string> };

/** The environment for npm run from here: without what `npm test` put there for the project itself. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_|command$|config_local_prefix$)/.test(key) || key === 'INIT_CWD' || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

function run(file: string, args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: npmEnv(), timeout: NPM_GUARD_MS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const work = await mkdtemp(join(tmpdir(), 'sni-pack-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

// The build ran (`npm test` builds first); without it, build, but never run `prepack`: it deletes dist/ under the other tests' feet.
if (!existsSync(join(projectRoot, 'dist', 'cli.js'))) {
  const build = await run('npm', ['run', 'build'], projectRoot);
  if (build.code !== 0) throw new Error(`npm run build failed: ${build.stderr}`);
}

const pack = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', work, '--json'], projectRoot);
const tarball = join(work, `${packageJson.name}-${packageJson.version}.tgz`);

t.test('npm pack produces the tarball', async (t) => {
  t.equal(pack.code, 0, pack.stderr);
  t.ok(existsSync(tarball), `${tarball} exists`);
});

t.test('the tarball holds only what runs', async (t) => {
  const listing = await run('tar', ['-tzf', tarball], work);
  t.equal(listing.code, 0, listing.stderr);
  const entries = listing.stdout.split('\n').filter((line) => line !== '' && !line.endsWith('/'));
  t.ok(entries.length > 10, `${entries.length} files`);
  t.ok(
    entries.every((entry) => entry.startsWith('package/')),
    'everything under package/',
  );
  const files = entries.map((entry) => entry.slice('package/'.length));
  const allowed = [
    /^bin\/[^/]+\.js$/,
    /^dist\/.+\.js$/,
    /^schema\/[^/]+\.json$/,
    /^config\.example\.yaml$/,
    /^contrib\/(systemd|kubernetes)\/.+$/,
    /^README\.md$/,
    /^LICENSE$/,
    /^CHANGELOG\.md$/,
    /^package\.json$/,
  ];
  t.same(
    files.filter((file) => !allowed.some((pattern) => pattern.test(file))),
    [],
    'nothing outside bin/, dist/**/*.js, schema/, config.example.yaml, contrib/, README.md, LICENSE, CHANGELOG.md, package.json',
  );
  t.same(
    files.filter(
      (file) => /\.(ts|map)$/.test(file) || /^(lib|test|bench|demo|node_modules|coverage|\.tap|\.ci|\.scratch)\//.test(file) || /^tsconfig/.test(file),
    ),
    [],
    'no sources, source maps, tests, tooling',
  );
  for (const required of [
    'bin/sni-passthrough.js',
    'dist/cli.js',
    'schema/config.schema.json',
    'config.example.yaml',
    'contrib/systemd/sni-passthrough.service',
    'contrib/systemd/sni-passthrough.socket',
    'contrib/systemd/sni-passthrough.service.d/socket-activation.conf',
    'contrib/kubernetes/kustomization.yaml',
    'contrib/kubernetes/deployment.yaml',
    'README.md',
    'LICENSE',
    'CHANGELOG.md',
    'package.json',
  ]) {
    t.ok(files.includes(required), `has ${required}`);
  }
  // The build (scripts/build.mjs) bundles each entry point with the lib/ modules it imports (the command, the
  // config loader's thread, the worker processes), and each dependency they import into dist/vendor/.
  t.same(
    files.filter((file) => file.startsWith('dist/')).sort(),
    [
      'dist/cli.js',
      'dist/loader-worker.js',
      'dist/vendor/chokidar.js',
      'dist/vendor/commander.js',
      'dist/vendor/js-yaml.js',
      'dist/vendor/pino.js',
      'dist/worker-main.js',
    ],
    'dist/ holds the bundles, nothing else',
  );

  const verbose = await run('tar', ['-tvzf', tarball], work);
  const binLine = verbose.stdout.split('\n').find((line) => line.endsWith(' package/bin/sni-passthrough.js')) ?? '';
  t.match(binLine, /^-rwx/, 'the bin is executable');
  const extracted = join(work, 'extracted');
  await run('mkdir', ['-p', extracted], work);
  t.equal((await run('tar', ['-xzf', tarball, '-C', extracted], work)).code, 0);
  t.match(
    await readFile(join(extracted, 'package', 'bin', 'sni-passthrough.js'), 'utf8'),
    /^#!\/bin\/sh\n":" \/\/; (export \w+=\w+; )+exec node [^\n]* "\$0" "\$@"\n/,
    'run as a program, sh starts node with the allocator and GC settings',
  );
  const packed = JSON.parse(await readFile(join(extracted, 'package', 'package.json'), 'utf8')) as typeof packageJson;
  t.equal(packed.version, packageJson.version);
  t.same(packed.bin, { 'sni-passthrough': 'bin/sni-passthrough.js' });
  t.equal(
    await readFile(join(extracted, 'package', 'schema', 'config.schema.json'), 'utf8'),
    await readFile(join(projectRoot, 'schema', 'config.schema.json'), 'utf8'),
    'the schema as committed',
  );
});

t.test('run as a program, the command is node in the same process, with its allocator and GC settings', async (t) => {
  const configFile = await writeConfig({ listeners: [{ name: 'tls', listen: '127.0.0.1:0', routes: [{ hostnames: ['a.test'], backends: ['127.0.0.1:9'] }] }] });
  const proxy = await startCli(['--config', configFile, '--log-format', 'json', '--no-watch'], { program: [cliPath] });
  t.teardown(() => proxy.stop());
  // The pid the spawner knows (systemd's MAINPID, LISTEN_PID) is node's: sh replaced itself.
  const argv = (await readFile(`/proc/${proxy.child.pid}/cmdline`, 'utf8')).split('\0');
  const launch = commandLaunch();
  t.same(argv.slice(0, 2 + launch.nodeOptions.length), ['node', ...launch.nodeOptions, cliPath], `node ${launch.nodeOptions.join(' ')} ${cliPath}`);
  const environment = (await readFile(`/proc/${proxy.child.pid}/environ`, 'utf8')).split('\0');
  for (const [name, value] of Object.entries(launch.env)) t.ok(environment.includes(`${name}=${value}`), `${name}=${value} in its environment`);
  t.equal(proxy.stderr(), '', 'sh says nothing');
});

t.test('installed offline into an empty directory, it runs', async (t) => {
  const app = join(work, 'app');
  await run('mkdir', ['-p', app], work);
  await writeFile(join(app, 'package.json'), `${JSON.stringify({ name: 'sni-passthrough-install-test', version: '0.0.0', private: true }, null, 2)}\n`);
  const install = await run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], app);
  const output = `${install.stdout}\n${install.stderr}`;
  const notCached = install.code !== 0 && /ENOTCACHED|cache mode is 'only-if-cached'|offline/i.test(output);
  if (notCached) {
    const line = output.split('\n').find((entry) => /ENOTCACHED|only-if-cached|404/.test(entry)) ?? output.trim().split('\n')[0];
    t.test(
      'the installed CLI runs',
      { skip: `npm's cache lacks a dependency of the package, so it cannot be installed offline (run \`npm ci\` first): ${line}` },
      () => {},
    );
    return;
  }
  t.equal(install.code, 0, `npm install --offline: ${install.stderr}`);

  const installed = join(app, 'node_modules', 'sni-passthrough');
  t.ok(existsSync(join(installed, 'dist', 'cli.js')), 'installed with its dist/');
  t.notOk(existsSync(join(installed, 'lib')), 'and no lib/');
  const topLevel = await readdir(join(app, 'node_modules'));
  t.same(
    topLevel.filter((name) => ['tap', 'typescript', 'tsx', 'esbuild', 'fast-check', '@peculiar', 'reflect-metadata', '@types'].includes(name)),
    [],
    'no devDependencies installed',
  );
  for (const dependency of ['commander', 'yaml', 'pino', 'prom-client', 'chokidar']) t.ok(topLevel.includes(dependency), `dependency ${dependency} installed`);

  const version = await run('npx', ['--offline', 'sni-passthrough', '--version'], app);
  t.equal(version.code, 0, version.stderr);
  t.equal(version.stdout.trim(), packageJson.version, '--version prints the package version');

  await copyFile(join(projectRoot, 'config.example.yaml'), join(app, 'proxy.yaml'));
  const check = await run('npx', ['--offline', 'sni-passthrough', 'check', '--config', 'proxy.yaml'], app);
  t.equal(check.code, 0, `check: ${check.stderr}`);
  t.match(check.stdout, /^proxy\.yaml: ok, 1 listener\n/, 'check validates the example config');

  const broken = await run('npx', ['--offline', 'sni-passthrough', 'check', '--config', 'missing.yaml'], app);
  t.equal(broken.code, 1, 'check of a missing file exits 1');
  t.match(broken.stderr, /missing\.yaml/);

  const schema = await run('npx', ['--offline', 'sni-passthrough', 'schema'], app);
  t.equal(schema.code, 0);
  t.equal(schema.stdout, await readFile(join(installed, 'schema', 'config.schema.json'), 'utf8'), '`schema` prints the shipped schema file');
});

t.test('the packed package.json has no script npm treats as an install script', async (t) => {
  const extracted = join(work, 'extracted-scripts');
  await run('mkdir', ['-p', extracted], work);
  await run('tar', ['-xzf', tarball, '-C', extracted], work);
  const packed = JSON.parse(await readFile(join(extracted, 'package', 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const installScripts = ['preinstall', 'install', 'postinstall', 'prepare'].filter((name) => packed.scripts?.[name] !== undefined);
  t.same(installScripts, [], 'no preinstall, install, postinstall or prepare');
});
