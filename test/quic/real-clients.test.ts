// First flights of real QUIC clients, caught on a UDP port that never answers:
// ngtcp2's client (one Initial packet) and Chromium, whose post-quantum
// ClientHello spans two Initial packets with its CRYPTO frames cut into pieces
// and shuffled ("chaos protection"), and whose retransmissions split it
// differently again. The reader must get the server name from all of them.
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { decryptInitials } from '../../lib/quic/initial.js';
import { which } from '../helpers/programs.js';
import { readFirstFlight } from '../helpers/quic-initial.js';

const gtlsclient = await which('gtlsclient');
const chromium = (await which('chromium')) ?? (await which('chromium-browser'));
/** A guard against a client that never sends, not a measurement. */
const CAPTURE_GUARD_MS = 60_000;

/**
 * Starts a client against a fresh UDP port on 127.0.0.1 (via `start`) and
 * returns the datagrams it sends until `enough` says so; the client is killed
 * (its whole process group: a browser has children) and the port closed.
 */
async function capture(start: (port: number) => ChildProcess, enough: (datagrams: Buffer[]) => boolean): Promise<Buffer[]> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const child = start(socket.address().port);
  const datagrams: Buffer[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error(`no full first flight within ${CAPTURE_GUARD_MS} ms (${datagrams.length} datagrams)`)), CAPTURE_GUARD_MS);
      socket.on('message', (datagram) => {
        datagrams.push(datagram);
        try {
          if (!enough(datagrams)) return;
          resolve();
        } catch (error) {
          reject(error);
        }
        clearTimeout(guard);
      });
      child.on('error', (error) => {
        clearTimeout(guard);
        reject(error);
      });
    });
  } finally {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is already gone.
      }
    }
    socket.close();
  }
  return datagrams;
}

function helloComplete(datagrams: Buffer[]): boolean {
  return readFirstFlight(datagrams).results.at(-1)?.kind === 'complete';
}

t.test(
  'ngtcp2 client (gtlsclient): the hello in its first Initial, and again in the retransmission',
  { skip: gtlsclient ? false : 'gtlsclient (ngtcp2-client) is not installed' },
  async (t) => {
    const datagrams = await capture(
      (port) => spawn(gtlsclient!, ['-q', 'localhost', String(port), `https://localhost:${port}/`], { stdio: 'ignore', detached: true }),
      (received) => received.length >= 2,
    );
    const { results } = readFirstFlight(datagrams);
    t.same(results[0], { kind: 'complete', hello: { serverName: 'localhost', alpn: ['h3'], sslv2: false } }, 'the first datagram is enough');
    t.equal(results[1]?.kind, 'complete', 'the retransmission carries the same bytes: no conflict');
    const [first] = decryptInitials(datagrams[0]!);
    t.equal(first?.version, 1, 'QUIC v1');
    t.ok(
      datagrams.every((datagram) => datagram.length >= 1200),
      'datagrams padded to 1200 bytes or more',
    );
  },
);

t.test(
  'Chromium: a post-quantum ClientHello over two Initial packets, in shuffled pieces',
  { skip: chromium ? false : 'chromium is not installed' },
  async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'sni-passthrough-quic-chromium-'));
    t.teardown(() => rm(root, { recursive: true, force: true }));
    const name = 'pq.example.test';
    const datagrams = await capture(
      (port) =>
        spawn(
          chromium!,
          [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            `--user-data-dir=${join(root, 'profile')}`,
            '--enable-quic',
            `--origin-to-force-quic-on=${name}:${port}`,
            `--host-resolver-rules=MAP ${name} 127.0.0.1`,
            `https://${name}:${port}/`,
          ],
          { stdio: 'ignore', detached: true, env: { ...process.env, HOME: root } },
        ),
      // Stop once the hello is in (or, should it never complete, after a few retransmissions: the assertions below say what is missing).
      (received) => helloComplete(received) || received.length >= 8,
    );
    const { results, assembled } = readFirstFlight(datagrams);
    t.match(results.at(-1), { kind: 'complete', hello: { serverName: name, alpn: ['h3'] } });
    t.ok(assembled.length > 1200, `the hello (${assembled.length} bytes) is longer than one Initial packet holds`);
    t.equal(results[0]?.kind, 'incomplete', 'the first datagram alone is not enough');
    const pieces = decryptInitials(datagrams[0]!).flatMap((packet) => packet.crypto);
    t.ok(pieces.length > 1, `the first packet carries the hello in ${pieces.length} CRYPTO frames`);
  },
);
