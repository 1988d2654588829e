// The floor for any relay written in Node.js, for `npm run bench` to compare against:
//   node bench/naive-relay.mjs LISTEN_PORT BACKEND_PORT
// On a client's first bytes it connects to the one backend, writes those bytes
// and pipes both ways. No parsing, routing, timers, limits, logs or metrics:
// what the proxy costs beyond this is its own; the rest is Node's and the kernel's.
// Plain JavaScript on purpose, so that no loader adds to its memory or start-up.
import net from 'node:net';

const HOST = '127.0.0.1';
const [listenPort, backendPort] = process.argv.slice(2).map(Number);
if (!listenPort || !backendPort) {
  process.stderr.write('usage: node bench/naive-relay.mjs LISTEN_PORT BACKEND_PORT\n');
  process.exit(2);
}

/** Half-close passes through (allowHalfOpen, and pipe() ends the other side); a reset or error tears down both. */
function relay(client) {
  client.on('error', () => client.destroy());
  client.once('data', (first) => {
    client.pause();
    const backend = net.connect({ host: HOST, port: backendPort, allowHalfOpen: true, noDelay: true });
    backend.on('error', () => backend.destroy());
    backend.on('close', () => client.destroy());
    client.on('close', () => backend.destroy());
    backend.once('connect', () => {
      backend.write(first);
      client.pipe(backend);
      backend.pipe(client);
    });
  });
}

net.createServer({ allowHalfOpen: true, noDelay: true }, relay).listen(listenPort, HOST);
