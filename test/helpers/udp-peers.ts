// Plain UDP peers for QUIC passthrough tests: a backend that records every
// datagram (to check byte-exact forwarding and who it came from), a client
// socket that records what comes back, and a NAT whose outside port can be
// changed mid-connection (NAT rebinding, unknown to the client behind it).
import dgram from 'node:dgram';
import { waitFor } from './wait.js';

export interface Received {
  datagram: Buffer;
  address: string;
  port: number;
}

export interface UdpPeer {
  socket: dgram.Socket;
  port: number;
  received: Received[];
  /** Resolves once `count` datagrams have arrived (a guard rejects after `timeoutMs`). */
  waitForCount(count: number, timeoutMs?: number): Promise<void>;
  send(datagram: Buffer, port: number, address?: string): Promise<void>;
  close(): Promise<void>;
}

/** A UDP socket on 127.0.0.1 (a free port) that records every datagram it receives. */
export function udpPeer(): Promise<UdpPeer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const received: Received[] = [];
    socket.on('message', (datagram, rinfo) => received.push({ datagram, address: rinfo.address, port: rinfo.port }));
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      resolve({
        socket,
        port: socket.address().port,
        received,
        waitForCount: (count, timeoutMs = 30_000) => waitFor(() => received.length >= count, `${count} datagrams at port ${socket.address().port}`, timeoutMs),
        send: (datagram, port, address = '127.0.0.1') =>
          new Promise((done, failed) => socket.send(datagram, port, address, (error) => (error ? failed(error) : done()))),
        close: () => new Promise((done) => socket.close(() => done())),
      });
    });
  });
}

export interface UdpNat {
  /** Where the client sends (the NAT's inside port). */
  port: number;
  /** Datagrams passed back to the client so far. */
  repliesRelayed(): number;
  /** Of those, how many came in on each outside port (in the order of `outsidePorts`). */
  repliesByOutsidePort(): number[];
  /** Outside ports used so far, the current one last. */
  outsidePorts(): number[];
  /** From now on the client's datagrams leave from a new outside port; replies to the old one still come back in. */
  rebind(): Promise<void>;
  close(): Promise<void>;
}

/** A one-client NAT on 127.0.0.1: what the client sends to `port` goes to `target` from the current outside socket, and back. */
export async function udpNat(targetPort: number): Promise<UdpNat> {
  const inside = await udpPeer();
  const outside: dgram.Socket[] = [];
  let client: { address: string; port: number } | null = null;
  const replies: number[] = [];
  inside.socket.on('message', (datagram, rinfo) => {
    client = { address: rinfo.address, port: rinfo.port };
    outside.at(-1)!.send(datagram, targetPort, '127.0.0.1');
  });
  const openOutside = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = dgram.createSocket('udp4');
      const index = replies.push(0) - 1;
      socket.on('message', (datagram) => {
        if (client === null) return;
        replies[index]!++;
        inside.socket.send(datagram, client.port, client.address);
      });
      socket.bind(0, '127.0.0.1', () => {
        outside.push(socket);
        resolve();
      });
    });
  await openOutside();
  return {
    port: inside.port,
    repliesRelayed: () => replies.reduce((sum, count) => sum + count, 0),
    repliesByOutsidePort: () => [...replies],
    outsidePorts: () => outside.map((socket) => socket.address().port),
    rebind: openOutside,
    async close() {
      await inside.close();
      await Promise.all(outside.map((socket) => new Promise<void>((done) => socket.close(() => done()))));
    },
  };
}
