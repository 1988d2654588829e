// `npm start`: the proxy from config.example.yaml, plus a terminating route and
// a plain-HTTP listener, in front of four local HTTPS backends (each with its
// own certificate from a throwaway CA) and one plain-HTTP backend, and, where
// ngtcp2's gtlsserver is installed, an HTTP/3 backend reached over QUIC on the
// same port; then one request per kind of route so the routing shows at once.
// Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parse, stringify } from 'yaml';
import { createCertificateAuthority } from '../test/helpers/certificates.js';
import { startQuicServer } from '../test/helpers/ngtcp2.js';
import { which } from '../test/helpers/programs.js';
import { cliPath, projectRoot } from '../test/helpers/proxy-process.js';

const PROXY = { host: '127.0.0.1', port: 8443 };
/** The plain-HTTP listener the demo adds: it redirects to https on PROXY.port. */
const HTTP_PORT = 8080;
/** A plain-HTTP backend behind a route the proxy terminates itself (a certificate from the local CA). */
const PLAIN = { name: 'plain', port: 9447, hostname: 'plain.example.com' };
/** An HTTP/3 backend (gtlsserver, when installed) on UDP, behind the same listener with `quic: true`. */
const H3 = { name: 'h3', port: 9448, hostname: 'h3.example.com' };
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
  [PLAIN.hostname, 'terminated by the proxy (local CA), plain HTTP to port 9447'],
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

/** What the plain-HTTP listener answers: the status and Location of a redirect. */
function redirectLine(): Promise<string> {
  return new Promise((resolve) => {
    http
      .get({ host: PROXY.host, port: HTTP_PORT, path: '/path?q=1', headers: { host: 'app.example.com' }, agent: false }, (response) => {
        response.resume();
        resolve(`And http://app.example.com:${HTTP_PORT}/path?q=1 -> ${response.statusCode} ${response.headers.location ?? ''}`);
      })
      .on('error', (error) => resolve(`And the plain-HTTP listener: FAILED: ${error.message}`));
  });
}

// Check every port first, so a clash is reported before anything starts.
const ports: Array<[number, string]> = [
  [PROXY.port, 'the proxy, from config.example.yaml'],
  [HTTP_PORT, 'the proxy, plain-HTTP listener'],
  ...BACKENDS.map((b): [number, string] => [b.port, `backend ${b.name}`]),
  [PLAIN.port, 'backend plain'],
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
// The local CA of `tls: internal` lives in the demo's temp folder (--state-dir), not in your own state directory.
const stateDirectory = join(directory, 'state');
const localCaFile = join(stateDirectory, 'ca.pem');

// config.example.yaml with what it shows only in comments switched on: a route the proxy terminates
// itself, next to the passthrough routes on the same port, and a plain-HTTP listener redirecting to https.
const config = parse(await readFile(join(projectRoot, 'config.example.yaml'), 'utf8')) as { listeners: Array<{ routes: unknown[] }> };
config.listeners[0]!.routes.push({ hostnames: [PLAIN.hostname], tls: 'internal', backends: [`${PROXY.host}:${PLAIN.port}`] });
config.listeners.push({
  name: 'web',
  listen: `${PROXY.host}:${HTTP_PORT}`,
  protocol: 'http',
  default: { redirect: 'https', redirectPort: PROXY.port },
} as never);
// HTTP/3 where gtlsserver is installed: QUIC on the same address and port, a route only QUIC clients (ALPN h3) match.
const gtlsserver = await which('gtlsserver');
let h3Server: { stop(): Promise<void> } | null = null;
if (gtlsserver) {
  const htdocs = join(directory, 'h3');
  await mkdir(htdocs);
  await writeFile(join(htdocs, 'index.html'), `backend ${H3.name} over HTTP/3 (gtlsserver, UDP ${H3.port}), reached through the proxy's QUIC passthrough\n`);
  const listener = config.listeners[0] as { quic?: boolean; routes: unknown[] };
  listener.quic = true;
  listener.routes.push({ hostnames: [H3.hostname], alpn: ['h3'], backends: [`${PROXY.host}:${H3.port}`] });
}
const configFile = join(directory, 'demo.yaml');
await writeFile(configFile, stringify(config));

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
const plainServer = http.createServer((request, response) => {
  response.end(`backend ${PLAIN.name} on port ${PLAIN.port} (plain HTTP: the proxy terminated TLS), Host received: ${request.headers.host}\n`);
});
servers.push(plainServer as unknown as https.Server);
if (!(await listen(plainServer, PLAIN.port, 'backend plain'))) {
  await rm(directory, { recursive: true, force: true });
  process.exit(1);
}

let h3Spki = '';
if (gtlsserver) {
  const pem = await ca.issue(`${H3.name} backend`, [H3.hostname]);
  h3Spki = createHash('sha256')
    .update(new X509Certificate(pem.cert).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  h3Server = await startQuicServer(gtlsserver, pem, join(directory, 'h3'), H3.port).catch((error: Error) => {
    process.stderr.write(`demo: no HTTP/3 backend (${error.message.split('\n')[0]})\n`);
    return null;
  });
}

// The real CLI, detached into its own process group so that Ctrl-C reaches it once, from us.
const proxy = spawn(process.execPath, [cliPath, '--config', configFile, '--state-dir', stateDirectory, '--log-format', 'pretty'], {
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
    void h3Server?.stop();
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
  sni
    ? `curl --resolve ${sni}:${PROXY.port}:${PROXY.host} --cacert ${sni === PLAIN.hostname ? localCaFile : caFile} https://${sni}:${PROXY.port}/`
    : `curl -k https://${PROXY.host}:${PROXY.port}/`;
const unique = [...new Set(REQUESTS.map(([sni]) => sni))];
/** How to reach the HTTP/3 route, when there is one: Chromium forced onto QUIC, trusting the backend's key by its hash. */
function h3Line(): string {
  if (h3Server === null) return 'HTTP/3: install ngtcp2-server (gtlsserver) to get a QUIC backend behind quic: true on this port.\n';
  return (
    `HTTP/3: ${H3.hostname} goes over QUIC (UDP ${PROXY.port}) to gtlsserver on UDP ${H3.port}, for example:\n` +
    `  chromium --headless --enable-quic --origin-to-force-quic-on=${H3.hostname}:${PROXY.port} --host-resolver-rules="MAP ${H3.hostname} ${PROXY.host}" ` +
    `--ignore-certificate-errors-spki-list=${h3Spki} --user-data-dir=$(mktemp -d) --dump-dom https://${H3.hostname}:${PROXY.port}/\n`
  );
}
process.stdout.write(`
sni-passthrough is running on ${PROXY.host}:${PROXY.port} with config.example.yaml plus a terminating route
and a plain-HTTP listener on ${PROXY.host}:${HTTP_PORT} (${configFile}), in front of
${BACKENDS.map((backend) => `  ${backend.name.padEnd(9)} https://${PROXY.host}:${backend.port}  certificate for ${backend.dnsNames.join(', ')}`).join('\n')}
  ${PLAIN.name.padEnd(9)} http://${PROXY.host}:${PLAIN.port}   plain HTTP: the proxy terminates TLS for ${PLAIN.hostname} (local CA in ${stateDirectory})

Try it from another terminal (curl sends no SNI to an IP address, hence -k for that one):
${unique.map((sni) => `  ${curl(sni)}`).join('\n')}
  curl -i --resolve app.example.com:${HTTP_PORT}:${PROXY.host} 'http://app.example.com:${HTTP_PORT}/path?q=1'   # 308 to https

Asking each of them once now (the proxy logs one line per connection):
`);
const answers: string[] = [];
for (const [sni, why] of REQUESTS) {
  const trusted = sni === PLAIN.hostname ? await readFile(localCaFile, 'utf8') : ca.cert;
  const answer = await fetchVia(sni, trusted).catch((error: Error) => `FAILED: ${error.message}`);
  answers.push(`  ${(sni ?? `${PROXY.host} (no SNI)`).padEnd(24)} -> ${answer}${why ? `   [${why}]` : ''}`);
}
await new Promise((resolve) => setTimeout(resolve, 100)); // let the proxy's last log line come first
process.stdout.write(`
What each backend answered:
${answers.join('\n')}

${await redirectLine()}

${h3Line()}
Edit ${configFile} and save: the proxy reloads it. Press Ctrl-C to stop.
`);
