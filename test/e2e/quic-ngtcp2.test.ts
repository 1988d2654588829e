// QUIC passthrough end to end with real QUIC peers (issue 14): ngtcp2's
// gtlsserver as backends and gtlsclient as the client (resolving test names
// through nss_wrapper, since it sends the host it connects to as SNI), through
// the compiled CLI: routing by exact and wildcard name with the certificate
// each backend presents checked in what the client received, a download that
// continues when the client's NAT binding changes mid-connection, and a
// download that continues across a reload that gives its name to another
// backend. Skips with the reason when the programs are absent (Debian:
// ngtcp2-server, ngtcp2-client, libnss-wrapper). Chromium: quic-chromium.test.ts.
import t from 'tap';
import { mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createCertificateAuthority } from '../helpers/certificates.js';
import { dumpedBytes, findNgtcp2, type QuicServer, runQuicClient, startQuicServer } from '../helpers/ngtcp2.js';
import { parsePrometheus, sumOf } from '../helpers/prometheus.js';
import { type LogLine, type ProxyProcess, startProxy } from '../helpers/proxy-process.js';
import { udpNat } from '../helpers/udp-peers.js';
import { guard, waitFor } from '../helpers/wait.js';

/** Hang guards only: nothing here asserts how long anything took. */
const GUARD_MS = 30_000;

const quicLines = (proxy: ProxyProcess): LogLine[] => proxy.connectionLogs().filter((line) => line.transport === 'quic');

async function metrics(proxy: ProxyProcess): Promise<ReturnType<typeof parsePrometheus>> {
  const admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);
  const response = await fetch(`http://${admin}/metrics`);
  return parsePrometheus(await response.text());
}

const ngtcp2 = await findNgtcp2();

t.test('real QUIC: ngtcp2 client and servers through the proxy', { skip: typeof ngtcp2 === 'string' ? ngtcp2 : false }, async (t) => {
  if (typeof ngtcp2 === 'string') return;
  const ca = await createCertificateAuthority();
  const directory = await mkdtemp(join(tmpdir(), 'sni-passthrough-quic-e2e-'));
  const hostsFile = join(directory, 'hosts');
  await writeFile(hostsFile, '127.0.0.1 app.quic.test\n127.0.0.1 x.wild.quic.test\n');
  const servers: QuicServer[] = [];
  t.teardown(() => Promise.all(servers.map((server) => server.stop())));
  const startBackend = async (label: string, names: string[]): Promise<QuicServer> => {
    const htdocs = join(directory, label);
    await mkdir(htdocs);
    await writeFile(join(htdocs, 'who.txt'), `backend ${label}\n`);
    const server = await startQuicServer(ngtcp2.server, await ca.issue(`quic-backend-${label}`, names), htdocs);
    servers.push(server);
    return server;
  };
  const [a, b] = await Promise.all([startBackend('a', ['app.quic.test']), startBackend('b', ['*.wild.quic.test'])]);
  const config = {
    admin: { listen: '127.0.0.1:0' },
    listeners: [
      {
        name: 'h3',
        listen: '127.0.0.1:0',
        quic: true,
        idleTimeout: '2s',
        routes: [
          { hostnames: ['app.quic.test'], alpn: ['h3'], backends: [`127.0.0.1:${a.port}`] },
          { hostnames: ['*.wild.quic.test'], backends: [`127.0.0.1:${b.port}`] },
        ],
      },
    ],
  };
  const proxy = await startProxy(config);
  t.teardown(() => proxy.stop());
  await proxy.waitForLog((line) => line.msg === 'listening' && line.transport === 'quic');
  const port = proxy.port('h3');

  const fetchThrough = async (host: string, path: string, clientPort = port, args: string[] = []) => {
    const downloads = await mkdtemp(join(directory, 'download-'));
    const run = runQuicClient(ngtcp2, { hostsFile, host, port: clientPort, path, args: [`--download=${downloads}`, ...args] });
    return { run, downloads, file: join(downloads, path.slice(1)) };
  };

  t.test('exact and wildcard names reach their backends, and the client gets each backend’s own certificate', async (t) => {
    for (const [host, label, other] of [
      ['app.quic.test', 'a', 'b'],
      ['x.wild.quic.test', 'b', 'a'],
    ] as const) {
      const { run, file } = await fetchThrough(host, '/who.txt');
      const result = await run.done;
      t.equal(result.code, 0, `${host}: gtlsclient exits 0`);
      t.equal(await readFile(file, 'utf8'), `backend ${label}\n`, `${host}: the page of backend ${label}`);
      const received = dumpedBytes(result.output);
      t.ok(received.includes(`quic-backend-${label}`), `${host}: the certificate of backend ${label} reached the client`);
      t.notOk(received.includes(`quic-backend-${other}`), `${host}: not backend ${other}'s`);
    }
    const lines = await guard(
      (async () => {
        await waitFor(() => quicLines(proxy).length >= 2, 'two flow lines', GUARD_MS);
        return quicLines(proxy);
      })(),
      GUARD_MS,
      'flow lines',
    );
    t.match(lines[0], { sni: 'app.quic.test', alpn: ['h3'], route: 'app.quic.test', backend: `127.0.0.1:${a.port}`, outcome: 'ok' });
    t.match(lines[1], { sni: 'x.wild.quic.test', route: '*.wild.quic.test', backend: `127.0.0.1:${b.port}`, outcome: 'ok' });
    for (const line of lines) {
      t.ok(Number(line.packetsFromClient) > 0 && Number(line.packetsToClient) > 0, 'packets both ways');
      t.ok(Number(line.bytesFromClient) > 1200 && Number(line.bytesToClient) > 1000, 'bytes both ways');
    }
    const exposition = await metrics(proxy);
    t.equal(sumOf(exposition, 'sni_passthrough_connections_closed_total', { listener: 'h3', route: 'app.quic.test', outcome: 'ok' }), 1);
    t.ok(sumOf(exposition, 'sni_passthrough_quic_packets_total', { listener: 'h3', direction: 'to_client' }) > 0);
  });

  t.test('the client’s NAT binding changes mid-download: the download continues on the same backend', async (t) => {
    const nat = await udpNat(port);
    t.teardown(() => nat.close());
    const size = 20_000_000;
    const { run, file } = await fetchThrough('app.quic.test', `/${size}`, nat.port, ['-q']);
    // Once some of the download has come back, the client's packets start leaving from another port.
    await waitFor(() => nat.repliesRelayed() > 300 || run.child.exitCode !== null, 'the download under way', GUARD_MS);
    t.equal(run.child.exitCode, null, 'still downloading when the binding changes');
    await nat.rebind();
    const result = await run.done;
    t.equal(result.code, 0, 'gtlsclient exits 0');
    t.equal((await stat(file)).size, size, 'every byte arrived');
    t.equal(nat.outsidePorts().length, 2);
    t.ok(nat.repliesByOutsidePort()[1]! > 1000, 'most of the download came back to the new port');
    const line = await proxy.waitForLog(
      (entry) => entry.msg === 'connection closed' && entry.transport === 'quic' && Number(entry.bytesToClient) > size,
      GUARD_MS,
    );
    t.match(line, { client: `127.0.0.1:${nat.outsidePorts()[0]}`, backend: `127.0.0.1:${a.port}`, attempts: 1 });
  });

  t.test('a reload during a download that gives its name to another backend: the download completes from the same one', async (t) => {
    const nat = await udpNat(port);
    t.teardown(() => nat.close());
    const size = 60_000_000;
    const { run, file } = await fetchThrough('app.quic.test', `/${size}`, nat.port, ['-q']);
    await waitFor(() => nat.repliesRelayed() > 300 || run.child.exitCode !== null, 'the download under way', GUARD_MS);
    const next = structuredClone(config);
    next.listeners[0]!.routes = [
      { hostnames: ['*.wild.quic.test', 'app.quic.test'], backends: [`127.0.0.1:${b.port}`] },
    ] as (typeof next.listeners)[0]['routes'];
    await writeFile(proxy.configFile, stringify(next));
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog((line) => line.msg === 'config reloaded', GUARD_MS);
    t.equal(run.child.exitCode, null, 'the reload was applied while the download ran');
    const result = await run.done;
    t.equal(result.code, 0, 'gtlsclient exits 0');
    t.equal((await stat(file)).size, size, 'every byte arrived');
    const line = await proxy.waitForLog(
      (entry) => entry.msg === 'connection closed' && entry.transport === 'quic' && Number(entry.bytesToClient) > size,
      GUARD_MS,
    );
    t.match(line, { route: 'app.quic.test', backend: `127.0.0.1:${a.port}` });
  });
});
