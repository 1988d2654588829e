// `npm start`: the proxy from config.example.yaml in front of four local HTTPS
// backends, each with its own certificate from a throwaway CA, then one request
// per kind of route so the routing shows at once. Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createCertificateAuthority } from '../test/helpers/certificates.js';
import { cliPath, projectRoot } from '../test/helpers/proxy-process.js';

const PROXY = { host: '127.0.0.1', port: 8443 };
// The backends config.example.yaml names, and the names each one's certificate covers.
const BACKENDS = [
  { name: 'app-1', port: 9443, dnsNames: ['app.example.com', '*.dev.example.com'] },
  { name: 'app-2', port: 9444, dnsNames: ['app.example.com', '*.dev.example.com'] },
  { name: 'wildcard', port: 9445, dnsNames: ['*.example.com'] },
  { name: 'default', port: 9446, dnsNames: ['localhost'] },
];
// What the demo asks for: [SNI or null, why]. app.example.com three times to show the 1:2 weights.
const REQUESTS: Array<[string | null, string]> = [
  ['app.example.com', 'exact name, weighted 1:2 over 9443 and 9444'],
  ['app.example.com', ''],
  ['app.example.com', ''],
  ['x.dev.example.com', 'wildcard *.dev.example.com, same route'],
  ['www.example.com', 'wildcard *.example.com'],
  [null, 'no SNI (an IP address): the default backend'],
];

/** Binds `server`; false (after saying which port is taken) on EADDRINUSE. */
async function listen(server: net.Server, port: number, what: string): Promise<boolean> {
  const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    server.once('error', resolve).listen(port, PROXY.host, () => resolve(null));
  });
  if (error && error.code !== 'EADDRINUSE') throw error;
  if (error) {
    process.stderr.write(
      `demo: port ${port} (${what}) is already in use on ${PROXY.host}.\n` +
        `      Stop whatever listens there (see \`ss -ltnp 'sport = :${port}'\` or \`lsof -i :${port}\`) and run npm start again.\n`,
    );
  }
  return error === null;
}

// Ask for a URL the way `curl --resolve NAME:8443:127.0.0.1` does: connect to 127.0.0.1, send NAME as SNI.
function fetchVia(sni: string | null, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      {
        ...PROXY,
        path: '/',
        agent: false,
        ...(sni ? { servername: sni, ca, headers: { host: `${sni}:${PROXY.port}` } } : { rejectUnauthorized: false }),
      },
      (response) => {
        let body = '';
        response
          .setEncoding('utf8')
          .on('data', (chunk: string) => (body += chunk))
          .on('end', () => resolve(body.trim()));
      },
    );
    request.on('error', reject);
  });
}

// Check every port first, so a clash is reported before anything starts.
const ports: Array<[number, string]> = [
  [PROXY.port, 'the proxy, from config.example.yaml'],
  ...BACKENDS.map((b): [number, string] => [b.port, `backend ${b.name}`]),
];
for (const [port, what] of ports) {
  const probe = net.createServer();
  const free = await listen(probe, port, what);
  if (free) await new Promise((resolve) => probe.close(resolve));
  else process.exit(1);
}

const directory = await mkdtemp(join(tmpdir(), 'sni-passthrough-demo-'));
const ca = await createCertificateAuthority('sni-passthrough demo CA');
const caFile = join(directory, 'ca.pem');
await writeFile(caFile, ca.cert);

const servers: https.Server[] = [];
for (const backend of BACKENDS) {
  const { key, cert } = await ca.issue(`${backend.name} backend`, backend.dnsNames);
  const server = https.createServer({ key, cert }, (request, response) => {
    const sni = (request.socket as TLSSocket).servername || '(none)';
    response.end(`backend ${backend.name} on port ${backend.port}, SNI received: ${sni}\n`);
  });
  servers.push(server);
  if (!(await listen(server, backend.port, `backend ${backend.name}`))) {
    await rm(directory, { recursive: true, force: true });
    process.exit(1);
  }
}

// The real CLI, detached into its own process group so that Ctrl-C reaches it once, from us.
const proxy = spawn(process.execPath, [cliPath, '--config', 'config.example.yaml', '--log-format', 'pretty'], {
  cwd: projectRoot,
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
const exited = new Promise<number | null>((resolve) => proxy.on('exit', (code) => resolve(code)));
process.on('exit', () => proxy.kill('SIGKILL'));

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    if (proxy.exitCode === null && proxy.signalCode === null) proxy.kill('SIGINT');
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    setTimeout(() => proxy.kill('SIGKILL'), 5000).unref();
    await exited;
    await rm(directory, { recursive: true, force: true });
    process.exit(code);
  }
  return new Promise<never>(() => {});
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(0));

// Pass the proxy's logs through, and notice its `ready` line.
let logged = '';
const ready = new Promise<void>((resolve) => {
  proxy.stdout.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk);
    logged = (logged + chunk.toString('utf8')).slice(-4096);
    if (/: ready\b/.test(logged)) resolve();
  });
});
void exited.then((code) => {
  if (stopping) return;
  process.stderr.write(`demo: the proxy exited with code ${code}${code === 1 ? ' (its message is above)' : ''}\n`);
  void stop(1);
});
const notReady = setTimeout(() => {
  process.stderr.write('demo: the proxy did not log `ready` within 15 s\n');
  void stop(1);
}, 15_000);
await ready;
clearTimeout(notReady);

const curl = (sni: string | null): string =>
  sni ? `curl --resolve ${sni}:${PROXY.port}:${PROXY.host} --cacert ${caFile} https://${sni}:${PROXY.port}/` : `curl -k https://${PROXY.host}:${PROXY.port}/`;
const unique = [...new Set(REQUESTS.map(([sni]) => sni))];
process.stdout.write(`
sni-passthrough is running on ${PROXY.host}:${PROXY.port} with config.example.yaml, in front of
${BACKENDS.map((backend) => `  ${backend.name.padEnd(9)} https://${PROXY.host}:${backend.port}  certificate for ${backend.dnsNames.join(', ')}`).join('\n')}

Try it from another terminal (curl sends no SNI to an IP address, hence -k for the last one):
${unique.map((sni) => `  ${curl(sni)}`).join('\n')}

Asking each of them once now (the proxy logs one line per connection):
`);
const answers: string[] = [];
for (const [sni, why] of REQUESTS) {
  const answer = await fetchVia(sni, ca.cert).catch((error: Error) => `FAILED: ${error.message}`);
  answers.push(`  ${(sni ?? `${PROXY.host} (no SNI)`).padEnd(24)} -> ${answer}${why ? `   [${why}]` : ''}`);
}
await new Promise((resolve) => setTimeout(resolve, 100)); // let the proxy's last log line come first
process.stdout.write(`
What each backend answered:
${answers.join('\n')}

Edit config.example.yaml and save: the proxy reloads it. Press Ctrl-C to stop.
`);
