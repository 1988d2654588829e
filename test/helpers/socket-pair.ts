import { once } from 'node:events';
import net from 'node:net';

export interface SocketPair {
  /** The accepted side, created as the proxy's listeners create theirs (half-open allowed, paused until read). */
  accepted: net.Socket;
  /** The connecting side, playing the peer. */
  peer: net.Socket;
}

/**
 * Two ends of a real TCP connection on 127.0.0.1, inside this process: for
 * testing one part of the pipeline (preamble reader, splice, target) without
 * a listener or a child process. The listening socket is closed at once.
 */
export async function socketPair(): Promise<SocketPair> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const peer = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
  const [[accepted]] = (await Promise.all([once(server, 'connection'), once(peer, 'connect')])) as [[net.Socket], unknown];
  server.close();
  return { accepted, peer };
}
