import type { ProxyConfig } from '../config/types.js';
import type { ApplySummary } from './supervisor.js';

/**
 * What the primary and its workers say to each other over the cluster's IPC
 * channel. None of it is per connection: configs (prepare, commit or roll
 * back), health check verdicts, scrapes, load reports at most once a second,
 * and shutdown.
 */

/** An error as it crosses the channel: enough to log it and match its code. */
export interface WireError {
  name: string;
  code: string | null;
  message: string;
}

export type PrimaryMessage =
  | {
      type: 'prepare';
      generation: number;
      /** The config as the primary validated it; the worker divides the connection limits itself. */
      config: ProxyConfig;
      configFile: string;
      /** The local CA's directory for `tls: internal` routes. */
      stateDirectory: string;
      /** The certificates' digest as the primary read them: a worker that reads other bytes refuses. */
      tlsDigest: string;
      workers: number;
      /** Listener names and the descriptor (in the primary) of the socket the service manager passed for each. */
      inherited: Array<[string, number]>;
    }
  | { type: 'commit'; generation: number; health: Array<[string, boolean]> }
  | { type: 'rollback'; generation: number }
  | { type: 'health'; backend: string; healthy: boolean }
  | { type: 'scrape'; id: number }
  | { type: 'shutdown' }
  | { type: 'terminate' };

export type WorkerMessage =
  /** Listening for the primary's messages (sent before this would be lost): it may now send a config. */
  | { type: 'ready' }
  | { type: 'prepared'; generation: number }
  | { type: 'refused'; generation: number; error: WireError }
  | { type: 'committed'; generation: number; summary: ApplySummary }
  | { type: 'scraped'; id: number; text: string }
  | { type: 'load'; open: Array<{ listener: string; open: number }> };

export function toWireError(error: unknown): WireError {
  const { name, message, code } = error as Error & { code?: unknown };
  return { name: name ?? 'Error', code: typeof code === 'string' ? code : null, message: message ?? String(error) };
}

/** The environment variable that tells a worker process its number (1..workers); the primary sets it when it forks. */
export const WORKER_ENV = 'SNI_PASSTHROUGH_WORKER';
