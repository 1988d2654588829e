// contrib/kubernetes and the Containerfile, read as Kubernetes and a
// container engine read them, and cross-checked against the config they run:
// the ConfigMap's YAML passes the proxy's own `check` (also with its PROXY
// protocol lines uncommented); container ports = the config's listener ports =
// the Service's target ports; the probes ask the config's admin endpoint, and
// do so correctly when run against the compiled CLI on that config (ready,
// draining, gone); the config is mounted where --config points, as a whole
// directory; the securityContext meets the restricted Pod Security Standard;
// the PodDisruptionBudget and Service select the Deployment's pods; the
// grace period covers preStop plus drainTimeout; the Containerfile's user,
// command and ports agree with the Deployment; `kubectl kustomize` (when
// kubectl is installed) renders it all into one namespace with the image tag
// of this package's version.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix } from 'node:path';
import t from 'tap';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfigFile } from '../../lib/config/loader.js';
import type { ProxyConfig } from '../../lib/config/types.js';
import { startTlsBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { runProgram, which } from '../helpers/programs.js';
import { commandLaunch, projectRoot, runCli, startProxy } from '../helpers/proxy-process.js';
import { connectTls, readLine } from '../helpers/tls-client.js';
import { guard } from '../helpers/wait.js';

const GUARD_MS = 30_000;
const manifestsDir = join(projectRoot, 'contrib', 'kubernetes');
const packageJson = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string> };

// ---------------------------------------------------------------------------
// The parts of the Kubernetes objects this test reads.

type Labels = Record<string, string>;

interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Labels;
}

interface Probe {
  exec?: { command: string[] };
  httpGet?: unknown;
  tcpSocket?: unknown;
  timeoutSeconds?: number;
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    privileged?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>;
}

interface PodSpec {
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number; seccompProfile?: { type: string } };
  containers: Container[];
  volumes?: Array<{ name: string; configMap?: { name: string } }>;
}

interface Deployment {
  kind: 'Deployment';
  metadata: ObjectMeta;
  spec: { replicas: number; selector: { matchLabels: Labels }; template: { metadata: { labels: Labels }; spec: PodSpec } };
}

interface ConfigMap {
  kind: 'ConfigMap';
  metadata: ObjectMeta;
  data: Record<string, string>;
}

interface Service {
  kind: 'Service';
  metadata: ObjectMeta;
  spec: {
    type: string;
    externalTrafficPolicy?: string;
    selector: Labels;
    ports: Array<{ name?: string; port: number; targetPort: number | string; protocol?: string }>;
  };
}

interface PodDisruptionBudget {
  kind: 'PodDisruptionBudget';
  metadata: ObjectMeta;
  spec: { selector: { matchLabels: Labels }; maxUnavailable?: number; minAvailable?: number };
}

interface Kustomization {
  kind: 'Kustomization';
  namespace: string;
  resources: string[];
  images: Array<{ name: string; newName?: string; newTag?: string }>;
}

interface Manifest {
  file: string;
  kind: string;
  metadata?: ObjectMeta;
}

/** Every YAML document in `text`, or the first parse error or warning (a duplicate key is one). */
function documents(text: string, file: string): Manifest[] {
  return parseAllDocuments(text).map((document) => {
    const problem = document.errors[0] ?? document.warnings[0];
    if (problem) throw new Error(`${file}: ${problem.message}`);
    return { ...(document.toJS() as Omit<Manifest, 'file'>), file };
  });
}

const files = (await readdir(manifestsDir)).filter((name) => name.endsWith('.yaml')).sort();
const manifests: Manifest[] = [];
for (const file of files) manifests.push(...documents(await readFile(join(manifestsDir, file), 'utf8'), file));

function only<T>(kind: string): T {
  const found = manifests.filter((manifest) => manifest.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind} in contrib/kubernetes, found ${found.length}`);
  return found[0] as unknown as T;
}

const deployment = only<Deployment>('Deployment');
const configMap = only<ConfigMap>('ConfigMap');
const service = only<Service>('Service');
const budget = only<PodDisruptionBudget>('PodDisruptionBudget');
const kustomization = only<Kustomization>('Kustomization');
const pod = deployment.spec.template.spec;
const container = pod.containers[0]!;

/** The value after `flag` in an argument list. */
function argument(args: readonly string[], flag: string): string | undefined {
  const index = args.indexOf(flag);
  return index === -1 ? undefined : args[index + 1];
}

const configPath = argument(container.args ?? [], '--config') ?? '';
const configKey = basename(configPath);
const configText = configMap.data[configKey] ?? '';

/** Writes `text` as proxy.yaml in a fresh directory and returns the path. */
async function writeTemp(text: string, name = 'proxy.yaml'): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'sni-passthrough-k8s-')), name);
  await writeFile(file, text);
  return file;
}

const configFile = await writeTemp(configText);
const config: ProxyConfig = (await loadConfigFile(configFile)).config;

/** Whether every label of `selector` is on the pods. */
function selects(selector: Labels, podLabels: Labels): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => podLabels[key] === value);
}

/** The container port a Service's `targetPort` (a number or a port name) points at. */
function resolveTargetPort(targetPort: number | string): number | undefined {
  if (typeof targetPort === 'number') return (container.ports ?? []).find((port) => port.containerPort === targetPort)?.containerPort;
  return (container.ports ?? []).find((port) => port.name === targetPort)?.containerPort;
}

/** The URL an exec probe's `node -e "fetch('URL', ...)..."` asks. */
function probeUrl(probe: Probe | undefined): URL {
  const command = probe?.exec?.command ?? [];
  const match = /fetch\('([^']+)'/.exec(command[2] ?? '');
  if (command[0] !== 'node' || command[1] !== '-e' || !match) throw new Error(`not a node -e fetch probe: ${JSON.stringify(command)}`);
  return new URL(match[1]!);
}

/** Kubernetes quantities as used here: "100m" and "1" CPUs, "128Mi" memory. */
function quantity(value: string | undefined): number {
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?$/.exec(value ?? '');
  if (!match) return NaN;
  const scale = { m: 1e-3, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[match[2] as 'm' | 'Ki' | 'Mi' | 'Gi'] ?? 1;
  return Number(match[1]) * scale;
}

// ---------------------------------------------------------------------------

t.test('every manifest parses, and kustomization.yaml lists each of them', async (t) => {
  t.same(
    manifests.map((manifest) => manifest.kind),
    ['ConfigMap', 'Deployment', 'Kustomization', 'Namespace', 'PodDisruptionBudget', 'Service'],
    `one object each in ${files.join(', ')}`,
  );
  t.same(
    [...kustomization.resources].sort(),
    files.filter((file) => file !== 'kustomization.yaml'),
    'resources: every other file in the directory',
  );
  const namespace = only<{ metadata: ObjectMeta }>('Namespace');
  t.equal(kustomization.namespace, namespace.metadata.name, 'kustomize puts everything in the shipped Namespace');
  t.equal(namespace.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted', 'which enforces the restricted Pod Security Standard');
  const image = kustomization.images.find((entry) => entry.name === container.image);
  t.ok(image, `kustomization.yaml sets the image "${container.image}" the Deployment names`);
  t.equal(image?.newTag, packageJson.version, "and tags it with this package's version");
});

t.test("the ConfigMap's YAML passes the proxy's own check", async (t) => {
  t.ok(configText.length > 0, `the ConfigMap has a "${configKey}" key, the file name --config points at`);
  const check = await runCli(['check', '--config', configFile]);
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /: ok, 2 listeners\n/);
  t.match(check.stdout, /admin endpoint on 127\.0\.0\.1:9900/);
});

t.test('with its PROXY protocol lines uncommented, the ConfigMap still passes check and trusts only the load balancer', async (t) => {
  const commented = /^(\s*)# ((?:acceptProxyProtocol|proxyProtocolFrom):.*)$/gm;
  const lines = configText.match(commented) ?? [];
  t.equal(lines.length, 2 * config.listeners.length, 'an acceptProxyProtocol and a proxyProtocolFrom line for each listener');
  const file = await writeTemp(configText.replace(commented, '$1$2'));
  const check = await runCli(['check', '--config', file]);
  t.equal(check.code, 0, check.stderr);
  const { listeners } = (await loadConfigFile(file)).config;
  t.same(
    listeners.map((listener) => [listener.name, listener.acceptProxyProtocol, listener.proxyProtocolFrom.length > 0]),
    listeners.map((listener) => [listener.name, true, true]),
    'every listener then reads the header, from the listed peers only',
  );
});

t.test('container ports = listener ports in the config = the Service target ports', async (t) => {
  const listenerPorts = config.listeners.map((listener) => listener.listen.port).sort();
  const containerPorts = (container.ports ?? []).map((port) => port.containerPort).sort();
  t.same(containerPorts, listenerPorts, `containerPort for each listener: ${listenerPorts.join(', ')}`);
  t.ok(
    config.listeners.every((listener) => listener.listen.host === null),
    'each listener listens on all interfaces (the pod IP), not loopback',
  );
  for (const listener of config.listeners) {
    const port = (container.ports ?? []).find((entry) => entry.containerPort === listener.listen.port);
    t.equal(port?.name, listener.name, `container port ${listener.listen.port} is named after listener "${listener.name}"`);
    t.equal(port?.protocol ?? 'TCP', 'TCP');
  }
  const targets = service.spec.ports.map((port) => resolveTargetPort(port.targetPort));
  t.same([...targets].sort(), listenerPorts, 'every Service targetPort resolves to a listener port, and every listener is served');
  t.equal(service.spec.type, 'LoadBalancer');
  t.equal(service.spec.externalTrafficPolicy, 'Local', 'the client address survives to the pod');
  const https = service.spec.ports.find((port) => port.name === 'tls');
  t.equal(https?.port, 443, 'TLS on 443');
  const http = config.listeners.find((listener) => listener.protocol === 'http');
  const redirectPort = http?.defaultRoute?.redirect?.port;
  t.equal(redirectPort, https?.port, "the http listener's redirect points at the Service's TLS port");
  t.notOk(
    (container.ports ?? []).some((port) => port.containerPort === config.admin?.listen.port),
    'the admin port is not published',
  );
});

t.test('the probes ask the admin endpoint of the config, which stays on loopback', async (t) => {
  t.ok(config.admin, 'the config has an admin endpoint');
  t.equal(config.admin?.listen.host, '127.0.0.1', 'on loopback');
  t.equal(config.admin?.allowRemote, false, 'without allowRemote');
  const readiness = probeUrl(container.readinessProbe);
  const liveness = probeUrl(container.livenessProbe);
  for (const [url, path] of [
    [readiness, '/readyz'],
    [liveness, '/healthz'],
  ] as const) {
    t.equal(url.protocol, 'http:');
    t.equal(url.hostname, config.admin?.listen.host, `${path}: host`);
    t.equal(Number(url.port), config.admin?.listen.port, `${path}: port`);
    t.equal(url.pathname, path);
  }
  for (const probe of [container.readinessProbe, container.livenessProbe]) {
    t.notOk(probe?.httpGet ?? probe?.tcpSocket, 'exec only: a kubelet httpGet could not reach loopback');
    const abortAfter = Number(/AbortSignal\.timeout\((\d+)\)/.exec(probe?.exec?.command[2] ?? '')?.[1]);
    t.ok(abortAfter < (probe?.timeoutSeconds ?? 1) * 1000, "the probe gives up (exit 1) before the kubelet's timeoutSeconds");
  }
});

t.test('the probe commands, run against the CLI on the ConfigMap config: ready, then draining, then gone', async (t) => {
  const ca = await createCertificateAuthority();
  const backend = await startTlsBackend(ca, 'app');
  t.teardown(() => backend.close());
  // The ConfigMap's config with loopback port 0 everywhere and the test backend behind every route.
  const document = parse(configText) as { admin: { listen: string }; listeners: Array<{ listen: string; routes?: Array<{ backends: string[] }> }> };
  document.admin.listen = '127.0.0.1:0';
  for (const listener of document.listeners) {
    listener.listen = '127.0.0.1:0';
    for (const route of listener.routes ?? []) route.backends = [backend.address];
  }
  const proxy = await startProxy(document);
  t.teardown(() => proxy.stop('SIGKILL'));
  const admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);

  // `node` as the kubelet would run it in the container, with the admin address this run was given.
  const manifestAdmin = `${config.admin?.listen.host}:${config.admin?.listen.port}`;
  const probe = async (which: Probe | undefined): Promise<number | null> => {
    const script = which?.exec?.command[2] ?? '';
    t.ok(script.includes(manifestAdmin), `the probe names ${manifestAdmin}`);
    return (await runProgram(process.execPath, ['-e', script.replaceAll(manifestAdmin, admin)], '', GUARD_MS)).code;
  };

  t.equal(await probe(container.readinessProbe), 0, 'ready: readiness passes');
  t.equal(await probe(container.livenessProbe), 0, 'liveness passes');

  const client = await connectTls({ port: proxy.port('tls'), servername: 'app.example.com', ca: ca.cert });
  t.teardown(() => client.destroy());
  t.match(JSON.parse(await readLine(client)), { backend: 'app', sni: 'app.example.com' }, 'a connection through the tls listener');

  proxy.child.kill('SIGTERM');
  await proxy.waitForLog((line) => line.msg.startsWith('shutting down'), GUARD_MS);
  t.equal(await probe(container.readinessProbe), 1, 'draining (SIGTERM, one connection open): readiness fails, the pod leaves the endpoints');
  t.equal(await probe(container.livenessProbe), 0, 'while liveness passes: the kubelet does not kill a draining pod');

  client.end();
  t.equal(await guard(proxy.exited, GUARD_MS, 'the proxy to exit once the connection ended'), 0, 'exit 0 after the drain');
  t.equal(await probe(container.readinessProbe), 1, 'gone: readiness fails');
  t.equal(await probe(container.livenessProbe), 1, 'and liveness fails');
});

t.test('the config is mounted where --config points, as a whole ConfigMap directory', async (t) => {
  t.equal(posix.isAbsolute(configPath), true, `--config ${configPath}`);
  const mount = (container.volumeMounts ?? []).find((entry) => entry.mountPath === dirname(configPath));
  t.ok(mount, `a volume is mounted at ${dirname(configPath)}`);
  t.equal(mount?.subPath, undefined, 'not with subPath: a subPath mount never sees ConfigMap updates, the ..data swap the proxy reloads on');
  t.equal(mount?.readOnly, true, 'read-only');
  const volume = (pod.volumes ?? []).find((entry) => entry.name === mount?.name);
  t.equal(volume?.configMap?.name, configMap.metadata.name, 'the volume is the ConfigMap');
});

t.test('the pod meets the restricted Pod Security Standard', async (t) => {
  t.equal(pod.securityContext?.runAsNonRoot, true, 'runAsNonRoot');
  t.ok((pod.securityContext?.runAsUser ?? 0) > 0, 'runAsUser is not root');
  t.ok((pod.securityContext?.runAsGroup ?? 0) > 0, 'runAsGroup is not root');
  t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', 'seccomp RuntimeDefault');
  t.equal(pod.automountServiceAccountToken, false, 'no API token in the pod');
  t.equal(pod.containers.length, 1);
  const security = container.securityContext;
  t.equal(security?.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation: false');
  t.equal(security?.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem');
  t.equal(security?.privileged ?? false, false, 'not privileged');
  t.same(security?.capabilities?.drop, ['ALL'], 'drops every capability');
  t.same(security?.capabilities?.add ?? [], [], 'adds none');
  t.ok(
    config.listeners.every((listener) => listener.listen.port >= 1024),
    'so every listener is on an unprivileged port (the Service maps 443 and 80)',
  );
  for (const kind of ['requests', 'limits'] as const) {
    t.ok(quantity(container.resources?.[kind]?.cpu) > 0, `cpu ${kind}`);
    t.ok(quantity(container.resources?.[kind]?.memory) >= 64 * 1024 ** 2, `memory ${kind}`);
  }
  t.ok(quantity(container.resources?.limits?.memory) >= quantity(container.resources?.requests?.memory), 'memory limit >= request');
});

t.test('replicas, rollout, grace period and the disruption budget', async (t) => {
  const podLabels = deployment.spec.template.metadata.labels;
  t.ok(deployment.spec.replicas >= 2, `${deployment.spec.replicas} replicas`);
  t.ok(selects(deployment.spec.selector.matchLabels, podLabels), "the Deployment's selector matches its pods");
  t.ok(selects(service.spec.selector, podLabels), "the Service's selector matches the pods");
  t.ok(selects(budget.spec.selector.matchLabels, podLabels), "the PodDisruptionBudget's selector matches the pods");
  t.same(budget.spec.selector.matchLabels, deployment.spec.selector.matchLabels, 'and is the Deployment selector');
  const allowed = budget.spec.maxUnavailable ?? deployment.spec.replicas - (budget.spec.minAvailable ?? deployment.spec.replicas);
  t.ok(allowed >= 1 && allowed < deployment.spec.replicas, `one eviction at a time (${allowed} of ${deployment.spec.replicas}), never all`);

  const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
  t.equal(preStop[0], 'sleep', 'preStop waits for the endpoint removal to spread');
  const preStopSeconds = Number(preStop[1]);
  const drainSeconds = Math.max(...config.listeners.map((listener) => listener.drainTimeout)) / 1000;
  t.ok(
    (pod.terminationGracePeriodSeconds ?? 30) > preStopSeconds + drainSeconds,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop ${preStopSeconds} s + drainTimeout ${drainSeconds} s`,
  );
});

/** The Containerfile's instructions, continuation lines joined, comments dropped. */
async function containerfile(): Promise<Array<{ instruction: string; value: string }>> {
  const text = await readFile(join(projectRoot, 'Containerfile'), 'utf8');
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const space = line.indexOf(' ');
      return { instruction: line.slice(0, space).toUpperCase(), value: line.slice(space + 1).trim() };
    });
}

t.test('the Containerfile agrees with the Deployment: user, command, config path, ports, Node 20', async (t) => {
  const instructions = await containerfile();
  const last = (name: string): string => instructions.filter((entry) => entry.instruction === name).at(-1)?.value ?? '';
  t.match(instructions.find((entry) => entry.instruction === 'ARG')?.value ?? '', /^NODE_IMAGE=\S*node:20-/, 'a Node 20 base image by default');
  const user = last('USER');
  t.match(user, /^\d+:\d+$/, 'a numeric USER, which runAsNonRoot can verify');
  t.equal(user, `${pod.securityContext?.runAsUser}:${pod.securityContext?.runAsGroup}`, "the Deployment's runAsUser:runAsGroup");
  const entrypoint = JSON.parse(last('ENTRYPOINT')) as string[];
  t.ok(
    entrypoint.at(-1)?.endsWith(`/node_modules/${packageJson.name}/${packageJson.bin[packageJson.name]}`),
    `ENTRYPOINT runs the installed package's bin (${entrypoint.at(-1)})`,
  );
  // An ENTRYPOINT that names node skips what the command sets when run as a program: the image sets the same.
  const launch = commandLaunch();
  t.not(Object.keys(launch.env).length, 0, 'the command sets variables');
  const environment = last('ENV').split(/\s+/);
  for (const [name, value] of Object.entries(launch.env)) t.ok(environment.includes(`${name}=${value}`), `ENV sets ${name}=${value}, as the command does`);
  t.same(entrypoint.slice(0, -1), ['node', ...launch.nodeOptions], `ENTRYPOINT runs node ${launch.nodeOptions.join(' ')}, as the command does`);
  const command = JSON.parse(last('CMD')) as string[];
  t.equal(argument(command, '--config'), configPath, 'CMD and the Deployment use the same --config path');
  const exposed = last('EXPOSE').split(/\s+/).map(Number);
  t.ok(
    exposed.every((port) => (container.ports ?? []).some((entry) => entry.containerPort === port)),
    `EXPOSE ${exposed.join(' ')} are container ports`,
  );
});

const kubectl = await which('kubectl');
t.test(
  'kubectl kustomize renders it into one namespace with the release image',
  { skip: kubectl ? false : 'kubectl is not installed (Debian: kubernetes-client), so the kustomization is not rendered' },
  async (t) => {
    const rendered = await runProgram(kubectl!, ['kustomize', manifestsDir], '', GUARD_MS);
    t.equal(rendered.code, 0, rendered.stderr);
    const objects = documents(rendered.stdout, 'kubectl kustomize');
    t.same(objects.map((object) => object.kind).sort(), ['ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'Service']);
    t.same(
      objects.filter((object) => object.kind !== 'Namespace' && object.metadata?.namespace !== kustomization.namespace).map((object) => object.kind),
      [],
      `every namespaced object in ${kustomization.namespace}`,
    );
    const renderedDeployment = objects.find((object) => object.kind === 'Deployment') as unknown as Deployment;
    const image = kustomization.images[0]!;
    t.equal(renderedDeployment.spec.template.spec.containers[0]?.image, `${image.newName}:${image.newTag}`, 'the image is the one kustomization.yaml sets');
  },
);
