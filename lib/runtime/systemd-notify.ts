import { spawn, type ChildProcess } from 'node:child_process';

/** Sends sd_notify state messages ("READY=1", "STATUS=..."): one call per message. */
export type Notify = (fields: Record<string, string>) => void;

/**
 * A python3 process that stays alive and forwards each stdin line (with "\n"
 * escapes for multi-line messages) as one datagram to NOTIFY_SOCKET. Node has
 * no unix datagram sockets; a long-lived sender also avoids systemd-notify's
 * race where systemd cannot attribute a message whose short-lived sender has
 * already exited (systemd < 254, non-root services).
 */
const SENDER = `
import os, socket, sys
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\\0" + address[1:]
sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for line in sys.stdin:
    sender.sendto(line.rstrip("\\n").replace("\\\\n", "\\n").encode(), address)
`;

function format(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n');
}

/**
 * The notifier for this process, or null when no service manager asked for
 * notifications (NOTIFY_SOCKET unset): then no notification code runs at all.
 * Uses python3 when present, else one `systemd-notify` run per message.
 */
export function systemdNotifier(env: NodeJS.ProcessEnv, onError: (error: Error) => void): Notify | null {
  if (!env.NOTIFY_SOCKET) return null;
  let sender: ChildProcess | null = spawn('python3', ['-c', SENDER], {
    stdio: ['pipe', 'ignore', 'inherit'],
    env: { PATH: env.PATH, NOTIFY_SOCKET: env.NOTIFY_SOCKET },
  });
  const pending: string[] = [];
  let ready = false;
  sender.once('spawn', () => {
    ready = true;
    for (const message of pending.splice(0)) sender?.stdin?.write(`${message.replace(/\n/g, '\\n')}\n`);
  });
  const fallBack = (): void => {
    sender = null;
    for (const message of pending.splice(0)) viaSystemdNotify(message);
  };
  sender.once('error', fallBack);
  sender.once('exit', fallBack);
  sender.unref();
  sender.stdin?.on('error', () => {});
  (sender.stdin as unknown as { unref?: () => void } | null)?.unref?.();

  // Messages leave in order: each systemd-notify run waits for the previous one.
  let chain = Promise.resolve();
  const viaSystemdNotify = (message: string): void => {
    chain = chain.then(
      () =>
        new Promise<void>((resolve) => {
          const child = spawn('systemd-notify', [`--pid=${process.pid}`, ...message.split('\n')], { stdio: 'ignore', env });
          child.once('error', (error) => {
            onError(error);
            resolve();
          });
          child.once('exit', () => resolve());
        }),
    );
  };

  return (fields) => {
    const message = format(fields);
    if (sender === null) viaSystemdNotify(message);
    else if (!ready) pending.push(message);
    else sender.stdin?.write(`${message.replace(/\n/g, '\\n')}\n`);
  };
}

/** CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it in MONOTONIC_USEC. */
export function monotonicMicroseconds(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}
