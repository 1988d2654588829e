import type net from 'node:net';

/** For sockets being thrown away, whose late errors say nothing new. */
export function ignoreError(): void {}

/**
 * Closes `socket`, with a TCP reset when `reset` (to pass a peer's reset on).
 * A reset is only possible once a pending shutdown has completed: libuv
 * refuses it in between (EINVAL) and the socket would never emit 'close'.
 */
export function closeSocket(socket: net.Socket, reset: boolean): void {
  if (socket.destroyed) return;
  if (reset && (!socket.writableEnded || socket.writableFinished)) socket.resetAndDestroy();
  else socket.destroy();
}
