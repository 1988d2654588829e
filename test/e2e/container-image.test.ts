// The Containerfile, built and run with podman: the image builds from the
// source tree (npm pack in a build stage, the tarball installed without dev
// dependencies), runs as user 1000 from a read-only root with no
// capabilities, and serves the Kubernetes ConfigMap's config as the
// Deployment runs it: a TLS connection passed through, the http listener's
// redirect, the exec probes answering through `podman exec` (ready, then
// draining), a ConfigMap `..data` swap reloaded with the open connection
// kept, and SIGTERM through `podman run` draining to exit 0.
//
// Where podman cannot pull node:20-bookworm-slim (no route to a container
// registry), the image is built FROM a stand-in made of this machine's own
// Node and npm, and the test says so; where podman is missing or no OCI
// runtime can start a container, the test skips and says why.
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { startTlsBackend, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { ConfigMapVolume } from '../helpers/configmap-volume.js';
import { importStandInNodeImage, outcome, PULL_GUARD_MS, Podman, podmanError, workingPodman } from '../helpers/podman.js';
import { runProgram, which } from '../helpers/programs.js';
import { projectRoot, startCli } from '../helpers/proxy-process.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard } from '../helpers/wait.js';

/** Building compiles the project inside a container; the whole file gets this long before tap gives up on it. */
t.setTimeout(30 * 60_000);
const GUARD_MS = 60_000;
/** A container's start (podman, then Node) on a busy machine. */
const START_GUARD_MS = 180_000;

const NODE_IMAGE = 'docker.io/library/node:20-bookworm-slim';
const STAND_IN_IMAGE = `localhost/sni-passthrough-test-node:${process.version}`;
const packageJson = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string };
const IMAGE = `localhost/sni-passthrough-test:${packageJson.version}`;
/** Where the Deployment mounts the ConfigMap. */
const CONFIG_DIR = '/etc/sni-passthrough';

/** The ConfigMap's proxy.yaml and the Deployment's probe scripts (`node -e SCRIPT`), as shipped. */
async function shipped(): Promise<{ config: string; readiness: string; liveness: string; preStop: string[] }> {
  const configMap = parse(await readFile(join(projectRoot, 'contrib/kubernetes/configmap.yaml'), 'utf8')) as { data: Record<string, string> };
  const deployment = parse(await readFile(join(projectRoot, 'contrib/kubernetes/deployment.yaml'), 'utf8')) as {
    spec: {
      template: {
        spec: {
          containers: Array<
            Record<'readinessProbe' | 'livenessProbe', { exec: { command: string[] } }> & { lifecycle: { preStop: { exec: { command: string[] } } } }
          >;
        };
      };
    };
  };
  const container = deployment.spec.template.spec.containers[0]!;
  return {
    config: configMap.data['proxy.yaml']!,
    readiness: container.readinessProbe.exec.command[2]!,
    liveness: container.livenessProbe.exec.command[2]!,
    preStop: container.lifecycle.preStop.exec.command,
  };
}

/** The ConfigMap's config on loopback ports the kernel picks (the container shares the test's network), every route to `backend`. */
function configFor(text: string, backend: TestBackend): string {
  const document = parse(text) as { admin: { listen: string }; listeners: Array<{ listen: string; routes?: Array<{ backends: string[] }> }> };
  document.admin.listen = '127.0.0.1:0';
  for (const listener of document.listeners) {
    listener.listen = '127.0.0.1:0';
    for (const route of listener.routes ?? []) route.backends = [backend.address];
  }
  return stringify(document);
}

// ---------------------------------------------------------------------------
// What this machine allows: podman, a base image, a runtime.

type Setup = { podman: Podman; base: string; notes: string[] } | { skip: string };

async function setUp(): Promise<Setup> {
  const binary = await which('podman');
  if (!binary) return { skip: 'podman is not installed (Debian: podman), so the image is not built' };
  const plain = new Podman(binary, [], []);
  const notes: string[] = [];
  let base = NODE_IMAGE;
  if (!(await plain.imageExists(NODE_IMAGE))) {
    const pull = await plain.command(['pull', NODE_IMAGE], PULL_GUARD_MS);
    if (pull.code !== 0) {
      notes.push(`podman cannot pull node:20-bookworm-slim: ${podmanError(pull)}`);
      base = STAND_IN_IMAGE;
      if (!(await plain.imageExists(STAND_IN_IMAGE))) {
        const imported = await importStandInNodeImage(plain, STAND_IN_IMAGE);
        if (imported.code !== 0) return { skip: `${notes[0]}; and the stand-in Node image could not be made: ${podmanError(imported)}` };
      }
      notes.push(`so the image is built FROM ${STAND_IN_IMAGE}, a stand-in made of this machine's Node ${process.version} and npm`);
    }
  }
  const found = await workingPodman(binary, base);
  if ('reason' in found) return { skip: [...notes, found.reason].join('; ') };
  if (found.tried.length > 0) notes.push(`containers run with ${found.podman.describe()} (${found.tried.join('; ')})`);
  return { podman: found.podman, base, notes };
}

const setup = await setUp();

if ('skip' in setup) {
  t.test('the container image', { skip: setup.skip }, () => {});
} else {
  const { podman, base, notes } = setup;
  for (const note of notes) t.comment(note);
  if (base !== NODE_IMAGE) t.test(`the image builds FROM ${NODE_IMAGE}`, { skip: notes[0] }, () => {});

  const npmCache = (await runProgram('npm', ['config', 'get', 'cache'])).stdout.trim();
  const build = await podman.build([
    // The build's npm reaches the registry as this machine's npm does, and reuses its cache.
    '--network',
    'host',
    ...(npmCache ? ['--volume', `${npmCache}:/root/.npm`] : []),
    '--build-arg',
    `NODE_IMAGE=${base}`,
    '--tag',
    IMAGE,
    '--file',
    join(projectRoot, 'Containerfile'),
    projectRoot,
  ]);

  t.test(`podman build (FROM ${base})`, async (t) => {
    if (build.code !== 0) t.comment(`podman build said:\n${build.stdout.slice(-4000)}\n${build.stderr.slice(-4000)}`);
    t.equal(build.code, 0, outcome('podman build', build));
    const inspect = await podman.command(['image', 'inspect', '--format', '{{json .Config}}', IMAGE]);
    t.equal(inspect.code, 0, outcome('podman image inspect', inspect));
    const config = JSON.parse(inspect.stdout) as { User: string; Entrypoint: string[]; Cmd: string[] };
    t.equal(config.User, '1000:1000', 'runs as user 1000');
    t.same(config.Cmd, ['--config', `${CONFIG_DIR}/proxy.yaml`], 'the config at a fixed path');
    t.equal(config.Entrypoint[0], 'node');
  });

  /** The security settings of the Deployment's container, as podman flags. */
  const restricted = ['--read-only', '--read-only-tmpfs=false', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges'];

  t.test('it runs, as user 1000, from a read-only root with no capabilities', { skip: build.code !== 0 && 'the build failed' }, async (t) => {
    const version = await podman.run(['--rm', '--network', 'none', ...restricted, IMAGE, '--version']);
    t.equal(version.code, 0, outcome('podman run', version));
    t.equal(version.stdout.trim(), packageJson.version, '--version');
    const user = await podman.run([
      '--rm',
      '--network',
      'none',
      ...restricted,
      '--entrypoint',
      'node',
      IMAGE,
      '-e',
      'console.log(process.getuid(), process.getgid())',
    ]);
    t.equal(user.stdout.trim(), '1000 1000', 'uid and gid 1000');
    const missing = await podman.run(['--rm', '--network', 'none', ...restricted, IMAGE]);
    t.equal(missing.code, 1, 'without a mounted config it exits 1');
    t.match(missing.stderr, `${CONFIG_DIR}/proxy.yaml`, 'naming the file it expected');
  });

  t.test('it holds the package and its runtime dependencies, nothing of the build', { skip: build.code !== 0 && 'the build failed' }, async (t) => {
    const script =
      "const fs=require('fs');console.log(JSON.stringify({modules:fs.readdirSync('/opt/sni-passthrough/node_modules'),src:fs.existsSync('/src'),lib:fs.existsSync('/opt/sni-passthrough/node_modules/sni-passthrough/lib')}))";
    const listing = await podman.run(['--rm', '--network', 'none', '--entrypoint', 'node', IMAGE, '-e', script]);
    t.equal(listing.code, 0, outcome('podman run', listing));
    const { modules, src, lib } = JSON.parse(listing.stdout) as { modules: string[]; src: boolean; lib: boolean };
    for (const name of ['sni-passthrough', 'commander', 'yaml', 'pino', 'prom-client', 'chokidar']) t.ok(modules.includes(name), `has ${name}`);
    t.same(
      modules.filter((name) => ['typescript', 'tap', 'tsx', '@biomejs', '@types', 'fast-check', '@peculiar'].includes(name)),
      [],
      'no devDependencies',
    );
    t.notOk(src, 'no build directory');
    t.notOk(lib, 'no TypeScript sources');
  });

  t.test('check validates the ConfigMap config inside the image', { skip: build.code !== 0 && 'the build failed' }, async (t) => {
    const volume = await ConfigMapVolume.create((await shipped()).config);
    const check = await podman.run([
      '--rm',
      '--network',
      'none',
      ...restricted,
      '--volume',
      `${volume.dir}:${CONFIG_DIR}:ro`,
      IMAGE,
      'check',
      '--config',
      `${CONFIG_DIR}/proxy.yaml`,
    ]);
    t.equal(check.code, 0, outcome('check exits 0', check));
    t.match(check.stdout, `${CONFIG_DIR}/proxy.yaml: ok, 2 listeners`);
  });

  t.test('it serves the ConfigMap config as the Deployment runs it', { skip: build.code !== 0 && 'the build failed' }, async (t) => {
    const ca = await createCertificateAuthority();
    const a = await startTlsBackend(ca, 'A');
    const b = await startTlsBackend(ca, 'B');
    t.teardown(() => Promise.all([a.close(), b.close()]));
    const { config, readiness, liveness, preStop } = await shipped();
    const volume = await ConfigMapVolume.create(configFor(config, a));
    const name = `sni-passthrough-test-${process.pid}`;
    t.teardown(() => podman.command(['rm', '--force', name]));

    // No arguments: the image's CMD. The host's network, so the proxy's loopback ports and the test's backends are shared.
    const proxy = await startCli([], {
      program: podman.runCommand(['--rm', '--name', name, '--network', 'host', ...restricted, '--volume', `${volume.dir}:${CONFIG_DIR}:ro`, IMAGE]),
      readyTimeoutMs: START_GUARD_MS,
    });
    t.teardown(() => proxy.stop('SIGKILL'));
    const admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);
    const probe = async (script: string): Promise<number | null> =>
      (await podman.command(['exec', name, 'node', '-e', script.replaceAll('127.0.0.1:9900', admin)], GUARD_MS)).code;

    const kept = await connectTls({ port: proxy.port('tls'), servername: 'app.example.com', ca: ca.cert });
    t.teardown(() => kept.destroy());
    t.match(JSON.parse(await readLine(kept)), { backend: 'A', sni: 'app.example.com' }, 'TLS passed through to the backend');

    const http = net.connect({ host: '127.0.0.1', port: proxy.port('http') });
    t.teardown(() => http.destroy());
    http.end('GET /path?q=1 HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
    let answer = '';
    http.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    await guard(once(http, 'end'), GUARD_MS, 'the redirect');
    t.match(answer, /^HTTP\/1\.1 308 /, 'the http listener redirects');
    t.match(answer, /\r\nlocation: https:\/\/app\.example\.com\/path\?q=1\r\n/i, 'to https on the Service port 443');

    t.equal(await probe(readiness), 0, 'the readiness probe passes (podman exec, as the kubelet runs it)');
    t.equal(await probe(liveness), 0, 'the liveness probe passes');

    const generation = (await proxy.waitForLog((line) => line.msg === 'ready')).generation;
    await volume.swap(configFor(config, b));
    const reloaded = await proxy.waitForLog((line) => line.msg === 'config reloaded', GUARD_MS);
    t.not(reloaded.generation, generation, 'the ..data swap is reloaded inside the container');
    const after = await connectTls({ port: proxy.port('tls'), servername: 'app.example.com', ca: ca.cert });
    t.match(JSON.parse(await readLine(after)), { backend: 'B' }, 'new connections follow it');
    after.destroy();
    kept.write('still here\n');
    t.equal(await readLine(kept), 'still here', 'the connection opened before it goes on');

    const stopping = await podman.command(['exec', name, ...preStop], GUARD_MS);
    t.equal(stopping.code, 0, outcome(`the preStop command (${preStop.join(' ')}) runs in the image`, stopping));
    proxy.child.kill('SIGTERM');
    await proxy.waitForLog((line) => line.msg.startsWith('shutting down'), GUARD_MS);
    t.equal(await probe(readiness), 1, 'SIGTERM through podman run: draining, readiness fails');
    t.equal(await probe(liveness), 0, 'liveness still passes');
    kept.end();
    t.equal(await guard(proxy.exited, GUARD_MS, 'the container to exit'), 0, 'the container exits 0 once the connection ended');
  });
}
