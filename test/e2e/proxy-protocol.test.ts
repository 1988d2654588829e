// PROXY protocol end to end through the compiled CLI.
//
// Out: a route's (or one backend's) `proxyProtocol: v1 | v2` header, read by
// an independent parser (test/helpers/proxy-protocol-reader.ts) in a backend
// that then completes the TLS session; byte-exact over IPv4 and IPv6; and a
// real nginx with `proxy_protocol` when it is installed.
//
// In: a listener with `acceptProxyProtocol: true` takes the client address
// from a v1 or v2 header (logs, PROXY out, `source` balancing, allow/deny);
// a broken or missing header closes the connection (`bad_proxy_header`); a
// listener without it never trusts a header (`bad_hello`).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { startTlsBackend, unusedAddress, type BackendIdentity, type TestBackend } from '../helpers/backends.js';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { buildClientHello, wrapInRecords } from '../helpers/client-hello-fixtures.js';
import {
  buildProxyV1,
  buildProxyV2,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_NOOP,
  readProxyHeader,
  startProxyProtocolBackend,
  tlvValue,
  V2_SIGNATURE,
  type ProxyProtocolBackend,
  type ProxyProtocolRecord,
} from '../helpers/proxy-protocol-reader.js';
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.js';
import { connectRaw, readUntilClosed, writeInPieces } from '../helpers/raw-client.js';
import { connectTls, readLine, handshakeResult } from '../helpers/tls-client.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';

/** The `t` handed to a subtest (assertions included). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const GUARD_MS = 10_000;

const ca = await createCertificateAuthority();
let pp: ProxyProtocolBackend;
const plain: Record<string, TestBackend> = {};
let proxy: ProxyProcess;
let tempDirectory: string;

t.before(async () => {
  tempDirectory = await mkdtemp(join(tmpdir(), 'sni-proxy-protocol-test-'));
  pp = await startProxyProtocolBackend(ca, 'pp');
  plain.plain = await startTlsBackend(ca, 'plain');
  plain.s1 = await startTlsBackend(ca, 's1');
  plain.s2 = await startTlsBackend(ca, 's2');
  plain.s3 = await startTlsBackend(ca, 's3');
  const dead = await unusedAddress();
  const outRoutes = [
    { hostnames: ['v1.example.com'], proxyProtocol: 'v1', backends: [pp.address] },
    { hostnames: ['v2.example.com'], proxyProtocol: 'v2', backends: [pp.address] },
    // Per backend: no route-level setting, the backend asks for v2.
    { hostnames: ['backend-v2.example.com'], backends: [{ address: pp.address, proxyProtocol: 'v2' }] },
    // The backend's setting overrides the route's, both ways.
    { hostnames: ['override-v1.example.com'], proxyProtocol: 'v2', backends: [{ address: pp.address, proxyProtocol: 'v1' }] },
    { hostnames: ['override-v2.example.com'], proxyProtocol: 'v1', backends: [{ address: pp.address, proxyProtocol: 'v2' }] },
    // Failover: the header goes to the backend that answered, once.
    { hostnames: ['failover.example.com'], proxyProtocol: 'v2', maxFails: 0, backends: [dead, pp.address] },
  ];
  proxy = await startProxy({
    defaults: { clientHelloTimeout: '10s', connectTimeout: '5s' },
    listeners: [
      { name: 'out', listen: '127.0.0.1:0', routes: outRoutes, default: { proxyProtocol: 'v2', backends: [pp.address] } },
      { name: 'out6', listen: '[::1]:0', routes: outRoutes },
      {
        name: 'in',
        listen: '127.0.0.1:0',
        acceptProxyProtocol: true,
        routes: [
          { hostnames: ['in.example.com'], proxyProtocol: 'v2', backends: [pp.address] },
          { hostnames: ['in-v1.example.com'], proxyProtocol: 'v1', backends: [pp.address] },
          { hostnames: ['src.example.com'], balance: 'source', backends: [plain.s1.address, plain.s2.address, plain.s3.address] },
          { hostnames: ['guarded.example.com'], deny: ['203.0.113.0/24'], backends: [plain.plain.address] },
        ],
        default: { backends: [plain.plain.address] },
      },
      {
        // Only the ranges of the addresses in the headers: the real peer (127.0.0.1) is not allowed.
        name: 'in-acl',
        listen: '127.0.0.1:0',
        acceptProxyProtocol: true,
        allow: ['198.51.100.0/24', '203.0.113.0/24'],
        deny: ['203.0.113.0/24'],
        default: { backends: [plain.plain.address] },
      },
      { name: 'untrusting', listen: '127.0.0.1:0', default: { backends: [plain.plain.address] } },
      { name: 'in-limit', listen: '127.0.0.1:0', acceptProxyProtocol: true, maxConnectionsPerClient: 1, default: { backends: [plain.plain.address] } },
      // Only the "load balancer" on 127.0.0.2 may send a header.
      {
        name: 'in-trusted',
        listen: '127.0.0.1:0',
        acceptProxyProtocol: true,
        proxyProtocolFrom: ['127.0.0.2/32'],
        default: { backends: [plain.plain.address] },
      },
    ],
  });
});

t.teardown(async () => {
  await proxy?.stop();
  await pp?.close();
  await Promise.all(Object.values(plain).map((backend) => backend.close()));
  if (tempDirectory) await rm(tempDirectory, { recursive: true, force: true });
});

function peer(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function closedLogFor(listener: string, client: string): Promise<LogLine> {
  return proxy.waitForLog((line) => line.msg === 'connection closed' && line.listener === listener && line.client === client, GUARD_MS);
}

/**
 * The latest record whose header names `sourcePort` as the client's port.
 * Called once the session behind it has started, so its header is already
 * recorded; the latest one, in case the kernel handed out the port before.
 */
async function recordFor(sourcePort: number): Promise<ProxyProtocolRecord> {
  let found: ProxyProtocolRecord | undefined;
  const latest = (): ProxyProtocolRecord | undefined => [...pp.records].reverse().find((record) => record.header?.source?.port === sourcePort);
  await waitFor(() => (found = latest()) !== undefined, `a PROXY header for client port ${sourcePort}`, GUARD_MS);
  return found!;
}

function uint16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

/** The v2 header the spec prescribes for TCP over IPv4/IPv6 with one AUTHORITY TLV, built here byte by byte. */
function expectedV2(
  family: 'TCP4' | 'TCP6',
  source: Buffer,
  destination: Buffer,
  sourcePort: number,
  destinationPort: number,
  authority: string | null,
): Buffer {
  const tlv = authority === null ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x02]), uint16(Buffer.byteLength(authority)), Buffer.from(authority, 'utf8')]);
  const body = Buffer.concat([source, destination, uint16(sourcePort), uint16(destinationPort), tlv]);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, family === 'TCP4' ? 0x11 : 0x21]), uint16(body.length), body]);
}

const LOOPBACK4 = Buffer.from([127, 0, 0, 1]);
const LOOPBACK6 = Buffer.from('00000000000000000000000000000001', 'hex');

/** One TLS session through `listener` (on `host`): identity line, an echoed line, then the client's local port and the log. */
async function session(
  listener: string,
  servername: string | undefined,
  host = '127.0.0.1',
): Promise<{ identity: BackendIdentity; clientPort: number; log: LogLine }> {
  const socket = await connectTls({ host, port: proxy.port(listener), ca: ca.cert, ...(servername === undefined ? {} : { servername }) });
  const clientPort = socket.localPort!;
  try {
    const identity = JSON.parse(await guard(readLine(socket), GUARD_MS, 'identity line')) as BackendIdentity;
    socket.write('ping after the header\n');
    const echoed = await guard(readLine(socket), GUARD_MS, 'echo');
    if (echoed !== 'ping after the header') throw new Error(`echo mismatch: ${echoed}`);
    socket.end();
    const log = await closedLogFor(listener, peer(host, clientPort));
    return { identity, clientPort, log };
  } finally {
    socket.destroy();
  }
}

// ---------------------------------------------------------------------------
// PROXY out

t.test('PROXY out v1 over IPv4: the exact line, then the TLS session', async (t) => {
  const proxyPort = proxy.port('out');
  const { identity, clientPort, log } = await session('out', 'v1.example.com');
  const record = await recordFor(clientPort);
  t.equal(
    record.raw.toString('latin1'),
    `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${proxyPort}\r\n`,
    'byte-exact v1 line with the real client port and the listener port',
  );
  t.match(record.header, {
    version: 1,
    command: 'PROXY',
    family: 'TCP4',
    source: { address: '127.0.0.1', port: clientPort },
    destination: { address: '127.0.0.1', port: proxyPort },
    tlvs: [],
  });
  t.same(identity, { backend: 'pp', sni: 'v1.example.com', alpn: null }, 'the TLS session completed behind the header');
  t.equal(log.outcome, 'ok');
  t.equal(log.backend, pp.address);
});

t.test('PROXY out v2 over IPv4: signature, 0x21, 0x11, addresses, ports, AUTHORITY TLV = SNI', async (t) => {
  const proxyPort = proxy.port('out');
  const sni = 'v2.example.com';
  const { identity, clientPort, log } = await session('out', sni);
  const record = await recordFor(clientPort);
  t.same(record.raw.subarray(0, 12), V2_SIGNATURE, 'signature');
  t.equal(record.raw[12], 0x21, 'version 2, command PROXY');
  t.equal(record.raw[13], 0x11, 'TCP over IPv4');
  t.equal(record.raw.readUInt16BE(14), 12 + 3 + sni.length, 'length: addresses and one TLV');
  t.equal(record.raw.toString('hex'), expectedV2('TCP4', LOOPBACK4, LOOPBACK4, clientPort, proxyPort, sni).toString('hex'), 'byte-exact header');
  t.match(record.header, { version: 2, command: 'PROXY', family: 'TCP4', versionCommandByte: 0x21, familyByte: 0x11 });
  t.same(record.header?.source, { address: '127.0.0.1', port: clientPort }, 'source: the client');
  t.same(record.header?.destination, { address: '127.0.0.1', port: proxyPort }, "destination: the proxy's listener");
  t.equal(record.header?.tlvs.length, 1, 'one TLV');
  t.equal(tlvValue(record.header!, PP2_TYPE_AUTHORITY)?.toString('utf8'), sni, 'AUTHORITY TLV is the SNI');
  t.same(identity, { backend: 'pp', sni, alpn: null }, 'the TLS session completed behind the header');
  t.equal(log.outcome, 'ok');
});

t.test('PROXY out v2 without SNI: no AUTHORITY TLV', async (t) => {
  const proxyPort = proxy.port('out');
  const { identity, clientPort, log } = await session('out', undefined);
  const record = await recordFor(clientPort);
  t.equal(
    record.raw.toString('hex'),
    expectedV2('TCP4', LOOPBACK4, LOOPBACK4, clientPort, proxyPort, null).toString('hex'),
    'byte-exact header, addresses only',
  );
  t.same(record.header?.tlvs, [], 'no TLV');
  t.equal(identity.sni, null);
  t.equal(log.route, 'default');
});

t.test('per-backend proxyProtocol, and a backend overriding its route', async (t) => {
  const proxyPort = proxy.port('out');
  for (const [sni, version] of [
    ['backend-v2.example.com', 2],
    ['override-v1.example.com', 1],
    ['override-v2.example.com', 2],
  ] as const) {
    const { identity, clientPort } = await session('out', sni);
    const record = await recordFor(clientPort);
    t.equal(record.header?.version, version, `${sni}: v${version} header`);
    const expected =
      version === 1
        ? Buffer.from(`PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${proxyPort}\r\n`)
        : expectedV2('TCP4', LOOPBACK4, LOOPBACK4, clientPort, proxyPort, sni);
    t.equal(record.raw.toString('hex'), expected.toString('hex'), `${sni}: byte-exact`);
    t.equal(identity.sni, sni, `${sni}: session completed`);
  }
});

t.test('PROXY out after failover: the backend that answered gets exactly one header', async (t) => {
  const proxyPort = proxy.port('out');
  const attempts: number[] = [];
  for (let round = 0; round < 2; round++) {
    const { identity, clientPort, log } = await session('out', 'failover.example.com');
    attempts.push(log.attempts as number);
    const record = await recordFor(clientPort);
    t.equal(
      record.raw.toString('hex'),
      expectedV2('TCP4', LOOPBACK4, LOOPBACK4, clientPort, proxyPort, 'failover.example.com').toString('hex'),
      `round ${round}: byte-exact header`,
    );
    t.equal(identity.backend, 'pp', `round ${round}: the TLS session completed (a doubled header would break it)`);
    t.equal(log.backend, pp.address, `round ${round}: logged backend`);
  }
  t.ok(attempts.includes(2), `one of the connections failed over first (attempts ${attempts.join(', ')})`);
});

t.test('PROXY out over IPv6: TCP6 line and family 0x21 with ::1 addresses', async (t) => {
  const proxyPort = proxy.port('out6');
  t.match(proxy.address('out6'), /^\[::1\]:\d+$/, 'the listener is on ::1');

  const v1 = await session('out6', 'v1.example.com', '::1');
  const v1Record = await recordFor(v1.clientPort);
  t.equal(v1Record.raw.toString('latin1'), `PROXY TCP6 ::1 ::1 ${v1.clientPort} ${proxyPort}\r\n`, 'byte-exact TCP6 line');
  t.same(v1Record.header?.source, { address: '::1', port: v1.clientPort });
  t.equal(v1.identity.sni, 'v1.example.com');
  t.equal(v1.log.client, `[::1]:${v1.clientPort}`, 'log: IPv6 client');

  const sni = 'v2.example.com';
  const v2 = await session('out6', sni, '::1');
  const v2Record = await recordFor(v2.clientPort);
  t.equal(v2Record.raw[12], 0x21, 'version 2, command PROXY');
  t.equal(v2Record.raw[13], 0x21, 'TCP over IPv6');
  t.equal(v2Record.raw.readUInt16BE(14), 36 + 3 + sni.length, 'length: 36 address bytes and one TLV');
  t.equal(v2Record.raw.toString('hex'), expectedV2('TCP6', LOOPBACK6, LOOPBACK6, v2.clientPort, proxyPort, sni).toString('hex'), 'byte-exact header');
  t.same(v2Record.header?.source, { address: '::1', port: v2.clientPort });
  t.same(v2Record.header?.destination, { address: '::1', port: proxyPort });
  t.equal(tlvValue(v2Record.header!, PP2_TYPE_AUTHORITY)?.toString(), sni);
  t.equal(v2.identity.sni, sni, 'session completed');
});

// ---------------------------------------------------------------------------
// A real nginx behind the proxy

const NGINX = '/usr/sbin/nginx';
const nginxInstalled = await new Promise<boolean>((resolve) => execFile(NGINX, ['-v'], (error) => resolve(!error)));

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function httpsGet(port: number, servername: string): Promise<{ status: number; body: string; clientPort: number }> {
  return new Promise((resolve, reject) => {
    const request = https.get({ host: '127.0.0.1', port, servername, ca: ca.cert, path: '/', agent: false, headers: { connection: 'close' } }, (response) => {
      const clientPort = response.socket.localPort!;
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body, clientPort }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.setTimeout(GUARD_MS, () => request.destroy(new Error('https request timed out')));
  });
}

t.test('a real nginx with proxy_protocol sees the client address and SNI', { skip: nginxInstalled ? false : `${NGINX} is not installed` }, async (t) => {
  const directory = join(tempDirectory, 'nginx');
  await mkdir(directory, { recursive: true });
  const { key, cert } = await ca.issue('nginx', ['*.nginx.test']);
  await writeFile(join(directory, 'cert.pem'), cert);
  await writeFile(join(directory, 'key.pem'), key);
  const nginxPort = await freePort();
  const temp = (name: string): string => join(directory, `${name}_temp`);
  await writeFile(
    join(directory, 'nginx.conf'),
    [
      // `user` only means something to a master process started as root; nginx refuses it otherwise.
      process.getuid?.() === 0 ? 'user root;' : '',
      'worker_processes 1;',
      'master_process off;',
      'events { worker_connections 64; }',
      'http {',
      `  client_body_temp_path ${temp('client_body')};`,
      `  proxy_temp_path ${temp('proxy')};`,
      `  fastcgi_temp_path ${temp('fastcgi')};`,
      `  uwsgi_temp_path ${temp('uwsgi')};`,
      `  scgi_temp_path ${temp('scgi')};`,
      '  log_format pp "$proxy_protocol_addr:$proxy_protocol_port $ssl_server_name";',
      `  access_log ${join(directory, 'access.log')} pp;`,
      '  server {',
      `    listen 127.0.0.1:${nginxPort} ssl proxy_protocol;`,
      `    ssl_certificate ${join(directory, 'cert.pem')};`,
      `    ssl_certificate_key ${join(directory, 'key.pem')};`,
      '    location / {',
      '      default_type text/plain;',
      '      return 200 "$proxy_protocol_addr:$proxy_protocol_port $ssl_server_name\\n";',
      '    }',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  let nginxOutput = '';
  const nginx: ChildProcess = spawn(
    NGINX,
    ['-p', directory, '-c', join(directory, 'nginx.conf'), '-g', `daemon off; pid ${join(directory, 'nginx.pid')}; error_log stderr;`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  nginx.stdout!.on('data', (chunk) => (nginxOutput += chunk));
  nginx.stderr!.on('data', (chunk) => (nginxOutput += chunk));
  const nginxExited = once(nginx, 'exit');
  let ownProxy: ProxyProcess | null = null;
  t.teardown(async () => {
    await ownProxy?.stop();
    if (nginx.exitCode === null && nginx.signalCode === null) {
      nginx.kill('SIGTERM');
      const timer = setTimeout(() => nginx.kill('SIGKILL'), 5_000);
      await nginxExited;
      clearTimeout(timer);
    }
  });
  // Poll until nginx accepts (bounded); fail with its output if it exits.
  const deadline = Date.now() + GUARD_MS;
  while (!(await canConnect(nginxPort))) {
    if (nginx.exitCode !== null) throw new Error(`nginx exited with ${nginx.exitCode}: ${nginxOutput}`);
    if (Date.now() > deadline) throw new Error(`nginx did not listen within ${GUARD_MS} ms: ${nginxOutput}`);
    await sleep(50);
  }

  ownProxy = await startProxy({
    listeners: [
      {
        name: 'nginx',
        listen: '127.0.0.1:0',
        routes: [
          { hostnames: ['v1.nginx.test'], proxyProtocol: 'v1', backends: [`127.0.0.1:${nginxPort}`] },
          { hostnames: ['v2.nginx.test'], proxyProtocol: 'v2', backends: [`127.0.0.1:${nginxPort}`] },
        ],
      },
    ],
  });
  const port = ownProxy.port('nginx');
  const seen: string[] = [];
  for (const name of ['v1.nginx.test', 'v2.nginx.test']) {
    const response = await httpsGet(port, name);
    t.equal(response.status, 200, `${name}: 200`, { nginxOutput });
    t.equal(response.body, `127.0.0.1:${response.clientPort} ${name}\n`, `${name}: nginx saw the client's real address:port and the SNI`);
    seen.push(`127.0.0.1:${response.clientPort} ${name}`);
  }
  // The access log is written when each request ends; bounded polling for both lines.
  let accessLog = '';
  for (let attempt = 0; attempt < 100; attempt++) {
    accessLog = await readFile(join(directory, 'access.log'), 'utf8').catch(() => '');
    if (seen.every((line) => accessLog.includes(line))) break;
    await sleep(50);
  }
  for (const line of seen) t.ok(accessLog.split('\n').includes(line), `access log has "${line}"`);
});

// ---------------------------------------------------------------------------
// PROXY in

interface ProxiedSession {
  identity: BackendIdentity | null;
  error: Error | null;
  realPort: number;
}

/** Writes `header` on a raw connection to `listener` (from `localAddress` when given), then runs TLS over the same socket. */
async function proxiedSession(listener: string, header: Buffer, servername: string, localAddress?: string): Promise<ProxiedSession> {
  const raw = await connectRaw(proxy.port(listener), '127.0.0.1', localAddress);
  const realPort = raw.localPort!;
  raw.write(header);
  const socket = tls.connect({ socket: raw, servername, ca: ca.cert });
  socket.on('error', () => {});
  try {
    const identity = await guard(
      new Promise<BackendIdentity>((resolve, reject) => {
        socket.once('error', reject);
        socket.once('close', () => reject(new Error('closed before the identity line')));
        socket.once('secureConnect', () => readLine(socket).then((line) => resolve(JSON.parse(line) as BackendIdentity), reject));
      }),
      GUARD_MS,
      'identity line through a PROXY header',
    );
    socket.end();
    return { identity, error: null, realPort };
  } catch (error) {
    return { identity: null, error: error as Error, realPort };
  } finally {
    socket.destroy();
  }
}

/** Sends `bytes` on a raw connection to `listener` and waits until the proxy closes it. */
async function rawExchange(listener: string, bytes: Buffer): Promise<{ realPort: number; received: Buffer }> {
  const socket = await connectRaw(proxy.port(listener));
  const realPort = socket.localPort!;
  const closed = readUntilClosed(socket);
  socket.write(bytes);
  const result = await guard(closed, GUARD_MS * 1.5, 'the proxy closing the connection');
  return { realPort, received: result.received };
}

t.test('PROXY in v1: the header address is the client, and is passed on by PROXY out v2', async (t) => {
  const header = buildProxyV1({ address: '203.0.113.7', port: 4321 }, { address: '192.0.2.10', port: 443 });
  t.equal(header.toString(), 'PROXY TCP4 203.0.113.7 192.0.2.10 4321 443\r\n', 'the hand-written header');
  const result = await proxiedSession('in', header, 'in.example.com');
  t.equal(result.error, null, 'no error');
  t.same(result.identity, { backend: 'pp', sni: 'in.example.com', alpn: null }, 'routed on the hello behind the header');
  const log = await closedLogFor('in', '203.0.113.7:4321');
  t.equal(log.outcome, 'ok', 'log: outcome');
  t.equal(log.route, 'in.example.com', 'log: route');
  const record = await recordFor(4321);
  t.match(record.header, { version: 2, command: 'PROXY', family: 'TCP4' });
  t.same(record.header?.source, { address: '203.0.113.7', port: 4321 }, 'the backend gets the address from the incoming header');
  t.same(record.header?.destination, { address: '192.0.2.10', port: 443 }, 'and its destination');
  t.equal(tlvValue(record.header!, PP2_TYPE_AUTHORITY)?.toString(), 'in.example.com', 'AUTHORITY TLV is the SNI');
});

t.test('PROXY in v2 with a TLV: the header address is the client; PROXY out v1 passes it on', async (t) => {
  const header = buildProxyV2({
    source: { address: '203.0.113.8', port: 4322 },
    destination: { address: '192.0.2.10', port: 8443 },
    tlvs: [
      { type: PP2_TYPE_NOOP, value: Buffer.alloc(5) },
      { type: PP2_TYPE_AUTHORITY, value: Buffer.from('upstream.example.org') },
    ],
  });
  t.match(
    readProxyHeader(header),
    { version: 2, family: 'TCP4', tlvs: [{ type: PP2_TYPE_NOOP }, { type: PP2_TYPE_AUTHORITY }] },
    'the hand-built header reads back',
  );
  const result = await proxiedSession('in', header, 'in-v1.example.com');
  t.equal(result.error, null, 'no error');
  t.equal(result.identity?.sni, 'in-v1.example.com', 'routed');
  const log = await closedLogFor('in', '203.0.113.8:4322');
  t.equal(log.outcome, 'ok');
  const record = await recordFor(4322);
  t.equal(record.raw.toString('latin1'), 'PROXY TCP4 203.0.113.8 192.0.2.10 4322 8443\r\n', 'byte-exact v1 line with the upstream addresses');
});

t.test('PROXY in v2 over IPv6 addresses: logged as [addr]:port, passed on as TCP6', async (t) => {
  const header = buildProxyV2({ source: { address: '2001:db8::7', port: 4323 }, destination: { address: '2001:db8::1', port: 443 } });
  const result = await proxiedSession('in', header, 'in.example.com');
  t.equal(result.error, null, 'no error');
  const log = await closedLogFor('in', '[2001:db8::7]:4323');
  t.equal(log.outcome, 'ok');
  const record = await recordFor(4323);
  t.equal(record.raw[13], 0x21, 'TCP over IPv6');
  t.same(record.header?.source, { address: '2001:db8::7', port: 4323 });
  t.same(record.header?.destination, { address: '2001:db8::1', port: 443 });
});

t.test('PROXY in v1 TCP6: logged as [addr]:port, passed on byte-exact by PROXY out v1', async (t) => {
  const header = Buffer.from('PROXY TCP6 2001:db8::8 2001:db8::1 4330 443\r\n');
  const result = await proxiedSession('in', header, 'in-v1.example.com');
  t.equal(result.error, null, 'no error');
  t.equal((await closedLogFor('in', '[2001:db8::8]:4330')).outcome, 'ok');
  const record = await recordFor(4330);
  t.equal(record.raw.toString('latin1'), 'PROXY TCP6 2001:db8::8 2001:db8::1 4330 443\r\n');
});

t.test('PROXY in: a header trickled one byte at a time', async (t) => {
  for (const [label, header, port] of [
    ['v1', buildProxyV1({ address: '203.0.113.20', port: 4340 }, { address: '192.0.2.10', port: 443 }), 4340],
    [
      'v2',
      buildProxyV2({
        source: { address: '203.0.113.21', port: 4341 },
        destination: { address: '192.0.2.10', port: 443 },
        tlvs: [{ type: PP2_TYPE_NOOP, value: Buffer.alloc(7) }],
      }),
      4341,
    ],
  ] as const) {
    const raw = await connectRaw(proxy.port('in'));
    await writeInPieces(raw, header, 1);
    const socket = tls.connect({ socket: raw, servername: 'in.example.com', ca: ca.cert });
    try {
      await guard(once(socket, 'secureConnect'), GUARD_MS, `${label}: handshake after a trickled header`);
      const identity = JSON.parse(await guard(readLine(socket), GUARD_MS, 'identity line')) as BackendIdentity;
      t.equal(identity.backend, 'pp', `${label}: routed`);
      socket.end();
    } finally {
      socket.destroy();
    }
    t.equal(
      (await closedLogFor('in', `${label === 'v1' ? '203.0.113.20' : '203.0.113.21'}:${port}`)).outcome,
      'ok',
      `${label}: logged with the header address`,
    );
    t.same((await recordFor(port)).header?.source?.port, port, `${label}: passed on`);
  }
});

t.test('PROXY in v2 LOCAL and v1 UNKNOWN: the socket’s real address is used', async (t) => {
  const inPort = proxy.port('in');
  for (const [label, header] of [
    ['v2 LOCAL', buildProxyV2({ command: 'LOCAL' })],
    ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n')],
  ] as const) {
    const result = await proxiedSession('in', header, 'in.example.com');
    t.equal(result.error, null, `${label}: no error`);
    t.equal(result.identity?.backend, 'pp', `${label}: routed`);
    const log = await closedLogFor('in', `127.0.0.1:${result.realPort}`);
    t.equal(log.outcome, 'ok', `${label}: logged with the real address`);
    const record = await recordFor(result.realPort);
    t.same(record.header?.source, { address: '127.0.0.1', port: result.realPort }, `${label}: PROXY out carries the real client`);
    t.same(record.header?.destination, { address: '127.0.0.1', port: inPort }, `${label}: and the real listener address`);
  }
});

t.test('PROXY in: a broken header is closed as bad_proxy_header', async (t) => {
  const before = pp.records.length + plain.plain!.accepted;
  for (const [label, bytes] of [
    ['v1 with nonsense', Buffer.from('PROXY TCP4 nonsense\r\n')],
    [
      'v1 with a bad address, then a hello',
      Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.300 192.0.2.10 1 443\r\n'), wrapInRecords(buildClientHello({ serverName: 'in.example.com' }))]),
    ],
    ['v2 with version nibble 3', Buffer.concat([V2_SIGNATURE, Buffer.from([0x31, 0x11, 0x00, 0x0c]), Buffer.alloc(12)])],
    ['v2 with an address block too short for its family', Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 0x04]), Buffer.alloc(4)])],
    ['v2 with command 0x2 (unassigned)', Buffer.concat([V2_SIGNATURE, Buffer.from([0x22, 0x11, 0x00, 0x0c]), Buffer.alloc(12)])],
    ['v1 without CRLF within 107 bytes', Buffer.from(`PROXY TCP4 203.0.113.7 192.0.2.10 1 443${' '.repeat(120)}`)],
    [
      'v1 ended by a bare LF, then a hello',
      Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.10 1 443\n'), wrapInRecords(buildClientHello({ serverName: 'in.example.com' }))]),
    ],
    ['v1 with a port above 65535', Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.10 65536 443\r\n')],
    ['v1 TCP4 with IPv6 addresses', Buffer.from('PROXY TCP4 2001:db8::7 2001:db8::1 1 443\r\n')],
  ] as const) {
    const { realPort, received } = await rawExchange('in', bytes);
    t.equal(received.length, 0, `${label}: nothing sent back`);
    const log = await closedLogFor('in', `127.0.0.1:${realPort}`);
    t.equal(log.outcome, 'bad_proxy_header', `${label}: outcome (reason ${log.reason})`);
    t.equal(log.backend, null, `${label}: no backend`);
  }
  t.equal(pp.records.length + plain.plain!.accepted, before, 'no backend was contacted');
});

t.test('PROXY in: no header at all (a plain TLS hello) is closed as bad_proxy_header', async (t) => {
  const { realPort, received } = await rawExchange('in', wrapInRecords(buildClientHello({ serverName: 'in.example.com' })));
  t.equal(received.length, 0, 'nothing sent back');
  const log = await closedLogFor('in', `127.0.0.1:${realPort}`);
  t.equal(log.outcome, 'bad_proxy_header');

  // A real TLS client without a header fails its handshake.
  const socket = tls.connect({ host: '127.0.0.1', port: proxy.port('in'), servername: 'in.example.com', ca: ca.cert });
  let port = 0;
  socket.once('connect', () => (port = socket.localPort!));
  const failure = await guard(handshakeResult(socket), GUARD_MS, 'the TLS client failing');
  socket.destroy();
  t.ok(failure, `the handshake failed (${failure?.message})`);
  const tlsLog = await closedLogFor('in', `127.0.0.1:${port}`);
  t.equal(tlsLog.outcome, 'bad_proxy_header');
});

t.test('a listener without acceptProxyProtocol never trusts a PROXY header: bad_hello', async (t) => {
  const before = plain.plain!.accepted;
  for (const [label, header] of [
    ['v1', buildProxyV1({ address: '203.0.113.7', port: 4324 }, { address: '192.0.2.10', port: 443 })],
    ['v2', buildProxyV2({ source: { address: '203.0.113.7', port: 4325 }, destination: { address: '192.0.2.10', port: 443 } })],
  ] as const) {
    const { realPort } = await rawExchange('untrusting', Buffer.concat([header, wrapInRecords(buildClientHello({ serverName: 'in.example.com' }))]));
    const log = await closedLogFor('untrusting', `127.0.0.1:${realPort}`);
    t.equal(log.outcome, 'bad_hello', `${label}: outcome (reason ${log.reason})`);
    t.notOk(
      proxy.connectionLogs().some((line) => line.listener === 'untrusting' && String(line.client).startsWith('203.0.113.')),
      `${label}: the header address is not taken as the client`,
    );
  }
  t.equal(plain.plain!.accepted, before, 'no backend was contacted');
});

t.test('source balancing hashes the address from the PROXY header', async (t) => {
  const chosen = new Map<string, string>();
  let port = 5000;
  for (let host = 10; host < 22; host++) {
    const address = `203.0.113.${host}`;
    for (let round = 0; round < 2; round++) {
      port++;
      const result = await proxiedSession('in', buildProxyV1({ address, port }, { address: '192.0.2.10', port: 443 }), 'src.example.com');
      t.equal(result.error, null, `${address}:${port}: no error`);
      const backend = result.identity?.backend ?? 'none';
      const log = await closedLogFor('in', `${address}:${port}`);
      t.equal(log.backend, plain[backend]?.address, `${address}:${port}: logged with its header address and backend`);
      if (round === 0) chosen.set(address, backend);
      else t.equal(backend, chosen.get(address), `${address}: same backend from another port`);
    }
  }
  // Every connection really comes from 127.0.0.1: hashing that would put them all on one backend.
  t.ok(new Set(chosen.values()).size >= 2, `the header addresses spread over backends: ${JSON.stringify(Object.fromEntries(chosen))}`);
});

t.test('allow/deny on the listener use the PROXY header address', async (t) => {
  const allowed = await proxiedSession('in-acl', buildProxyV1({ address: '198.51.100.7', port: 4400 }, { address: '192.0.2.10', port: 443 }), 'in.example.com');
  t.equal(allowed.error, null, 'an allowed header address is served although the real peer is not in `allow`');
  t.equal(allowed.identity?.backend, 'plain');
  t.equal((await closedLogFor('in-acl', '198.51.100.7:4400')).outcome, 'ok');

  const denied = await rawExchange(
    'in-acl',
    Buffer.concat([
      buildProxyV1({ address: '203.0.113.7', port: 4401 }, { address: '192.0.2.10', port: 443 }),
      wrapInRecords(buildClientHello({ serverName: 'in.example.com' })),
    ]),
  );
  t.equal(denied.received.length, 0, 'a denied header address gets nothing');
  const deniedLog = await closedLogFor('in-acl', '203.0.113.7:4401');
  t.equal(deniedLog.outcome, 'denied');
  t.equal(deniedLog.reason, 'listener_access_list');

  const mapped = await rawExchange(
    'in-acl',
    Buffer.concat([
      buildProxyV2({ source: { address: '::ffff:203.0.113.7', port: 4404 }, destination: { address: '::ffff:192.0.2.10', port: 443 } }),
      wrapInRecords(buildClientHello({ serverName: 'in.example.com' })),
    ]),
  );
  t.equal(mapped.received.length, 0, 'an IPv4-mapped IPv6 header address in a denied IPv4 range gets nothing');
  const mappedLog = await closedLogFor('in-acl', '203.0.113.7:4404');
  t.equal(mappedLog.outcome, 'denied', 'the mapped address is logged as IPv4 and denied');

  const local = await proxiedSession('in-acl', buildProxyV2({ command: 'LOCAL' }), 'in.example.com');
  t.ok(local.error, 'v2 LOCAL: the real peer 127.0.0.1 is not allowed');
  const localLog = await closedLogFor('in-acl', `127.0.0.1:${local.realPort}`);
  t.equal(localLog.outcome, 'denied');
  t.equal(localLog.reason, 'listener_access_list');
});

t.test('proxyProtocolFrom: only the listed peers may send a header; others are closed before a byte is read', async (t) => {
  const header = (port: number): Buffer => buildProxyV1({ address: '198.51.100.9', port }, { address: '192.0.2.10', port: 443 });
  const trusted = await proxiedSession('in-trusted', header(4500), 'in.example.com', '127.0.0.2');
  t.equal(trusted.error, null, 'a header from 127.0.0.2 (listed) is read');
  t.equal(trusted.identity?.backend, 'plain');
  t.equal((await closedLogFor('in-trusted', '198.51.100.9:4500')).outcome, 'ok', 'and its address is the client');

  const accepted = plain.plain.accepted;
  const untrusted = await rawExchange('in-trusted', Buffer.concat([header(4501), wrapInRecords(buildClientHello({ serverName: 'in.example.com' }))]));
  t.equal(untrusted.received.length, 0, 'a header from 127.0.0.1 (not listed) gets nothing');
  const log = await closedLogFor('in-trusted', `127.0.0.1:${untrusted.realPort}`);
  t.equal(log.outcome, 'denied', 'logged under the real peer address, not the claimed one');
  t.equal(log.reason, 'untrusted_proxy');
  t.equal(log.bytesFromClient, 0, 'nothing was read from it');
  t.equal(plain.plain.accepted, accepted, 'no backend was dialled');
});

t.test('maxConnectionsPerClient counts the PROXY header address', async (t) => {
  const open: tls.TLSSocket[] = [];
  try {
    // Every connection comes from 127.0.0.1, yet each header address has its own count.
    for (const [address, port] of [
      ['198.51.100.1', 4500],
      ['198.51.100.2', 4501],
    ] as const) {
      const raw = await connectRaw(proxy.port('in-limit'));
      raw.write(buildProxyV1({ address, port }, { address: '192.0.2.10', port: 443 }));
      const socket = tls.connect({ socket: raw, servername: 'in.example.com', ca: ca.cert });
      socket.on('error', () => {});
      open.push(socket);
      await guard(once(socket, 'secureConnect'), GUARD_MS, `${address}: handshake`);
      t.equal((JSON.parse(await guard(readLine(socket), GUARD_MS, 'identity')) as BackendIdentity).backend, 'plain', `${address}: served`);
    }
    const over = await rawExchange(
      'in-limit',
      Buffer.concat([
        buildProxyV1({ address: '198.51.100.1', port: 4502 }, { address: '192.0.2.10', port: 443 }),
        wrapInRecords(buildClientHello({ serverName: 'in.example.com' })),
      ]),
    );
    t.equal(over.received.length, 0, 'a second connection for 198.51.100.1 gets nothing');
    t.equal((await closedLogFor('in-limit', '198.51.100.1:4502')).outcome, 'client_limit', 'client_limit for the header address');
  } finally {
    for (const socket of open) socket.destroy();
  }
});

t.test('route deny uses the PROXY header address', async (t) => {
  const denied = await proxiedSession('in', buildProxyV1({ address: '203.0.113.9', port: 4402 }, { address: '192.0.2.10', port: 443 }), 'guarded.example.com');
  t.ok(denied.error, 'denied: no session');
  const deniedLog = await closedLogFor('in', '203.0.113.9:4402');
  t.equal(deniedLog.outcome, 'denied');
  t.equal(deniedLog.reason, 'route_access_list');
  t.equal(deniedLog.route, 'guarded.example.com');

  const allowed = await proxiedSession(
    'in',
    buildProxyV1({ address: '198.51.100.9', port: 4403 }, { address: '192.0.2.10', port: 443 }),
    'guarded.example.com',
  );
  t.equal(allowed.error, null, 'another header address is served');
  t.equal(allowed.identity?.backend, 'plain');
});

t.test('the PROXY-out backend never saw a broken or missing header', async (t: Test) => {
  t.same(
    pp.records.filter((record) => record.error !== null).map((record) => record.error),
    [],
    'every connection to the recording backend started with a valid header',
  );
});
