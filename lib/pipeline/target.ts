import type { Connection } from './connection.js';
import type { Preamble } from './preamble.js';

/**
 * What a matched connection is handed to: a passthrough to backends, a
 * refusal, ... (as inetaf/tcpproxy's Target). From `handle` on the target owns
 * the connection's sockets until the connection finishes; the pipeline never
 * touches them again.
 */
export interface Target {
  handle(connection: Connection, preamble: Preamble): void;
}

/**
 * The part of a connection's pipeline running now (the preamble reader, then
 * the target's work for this connection). `stop` is called once, when the
 * connection finishes, early or not: cancel timers and dials, release what it
 * holds (a backend slot). It must not close the sockets: the connection does.
 */
export interface Stage {
  stop(): void;
}
