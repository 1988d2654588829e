import { spawn, type ChildProcess } from 'node:child_process';

/** Sends sd_notify state messages ("READY=1", "STATUS=..."). */
export interface Notifier {
  /** One datagram with `fields`; messages leave in the order given. Ignored once `close` was called. */
  notify(fields: Record<string, string>): void;
  /**
   * Resolves once every message given so far has been sent, or after
   * `limitMs` (a stuck sender must not hold the exit). Call it before the
   * process exits: a queued STOPPING=1 would otherwise be lost.
   */
  close(limitMs: number): Promise<void>;
}

/**
 * A python3 process that stays alive and forwards each stdin line (with "\n"
 * escapes for multi-line messages) as one datagram to NOTIFY_SOCKET, and
 * exits once stdin is closed and every line is sent. Node has no unix
 * datagram sockets; a long-lived sender also avoids systemd-notify's race
 * where systemd cannot attribute a message whose short-lived sender has
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
 */
export function systemdNotifier(env: NodeJS.ProcessEnv, onError: (error: Error) => void): Notifier | null {
  if (!env.NOTIFY_SOCKET) return null;
  return new SystemdNotifier(env, onError);
}

/**
 * Uses python3 when present, else one `systemd-notify` run per message.
 * Until python3 has started, messages wait in `queued`; if it cannot start
 * or dies, they go to systemd-notify instead.
 */
class SystemdNotifier implements Notifier {
  private readonly env: NodeJS.ProcessEnv;
  private readonly onError: (error: Error) => void;
  /** The python3 sender while it is starting or running; null once it is gone. */
  private sender: ChildProcess | null;
  private started = false;
  private closed = false;
  private readonly queued: string[] = [];
  /** Settles when the python3 sender has exited (or never started). */
  private readonly senderGone: Promise<void>;
  /** The systemd-notify runs, one after another so that messages leave in order. */
  private chain = Promise.resolve();

  constructor(env: NodeJS.ProcessEnv, onError: (error: Error) => void) {
    this.env = env;
    this.onError = onError;
    const sender = spawn('python3', ['-c', SENDER], {
      stdio: ['pipe', 'ignore', 'inherit'],
      env: { PATH: env.PATH, NOTIFY_SOCKET: env.NOTIFY_SOCKET },
    });
    this.sender = sender;
    this.senderGone = new Promise((resolve) => {
      const gone = (): void => {
        if (this.sender === sender) this.fallBack();
        resolve();
      };
      sender.once('error', gone);
      sender.once('exit', gone);
    });
    sender.once('spawn', () => {
      this.started = true;
      for (const message of this.queued.splice(0)) this.write(message);
      if (this.closed) sender.stdin?.end();
    });
    // The sender must not keep the process alive; `close` waits for it explicitly.
    sender.unref();
    sender.stdin?.on('error', () => {});
    (sender.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  }

  notify(fields: Record<string, string>): void {
    if (this.closed) return;
    const message = format(fields);
    if (this.sender === null) this.viaSystemdNotify(message);
    else if (!this.started) this.queued.push(message);
    else this.write(message);
  }

  close(limitMs: number): Promise<void> {
    this.closed = true;
    // EOF tells python3 to send what it has read and exit; a sender still starting gets it once started.
    if (this.started) this.sender?.stdin?.end();
    let timer: NodeJS.Timeout | undefined;
    // A referenced timer: the process must stay alive until the messages are out (the sender itself is unreferenced).
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, limitMs);
    });
    const sent = this.senderGone.then(() => this.chain);
    return Promise.race([sent, limit]).finally(() => clearTimeout(timer));
  }

  private write(message: string): void {
    this.sender?.stdin?.write(`${message.replace(/\n/g, '\\n')}\n`);
  }

  /** python3 is missing or died: what it has not taken goes through systemd-notify. */
  private fallBack(): void {
    this.sender = null;
    for (const message of this.queued.splice(0)) this.viaSystemdNotify(message);
  }

  private viaSystemdNotify(message: string): void {
    this.chain = this.chain.then(
      () =>
        new Promise<void>((resolve) => {
          const child = spawn('systemd-notify', [`--pid=${process.pid}`, ...message.split('\n')], { stdio: 'ignore', env: this.env });
          child.once('error', (error) => {
            this.onError(error);
            resolve();
          });
          child.once('exit', () => resolve());
        }),
    );
  }
}

/** CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it in MONOTONIC_USEC. */
export function monotonicMicroseconds(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}
