import { Worker } from 'node:worker_threads';
import { ConfigError, type ConfigErrorCode, type SourcePosition } from '../errors.js';
import type { ProxyConfig, RouteConfig } from './types.js';

/** A loaded config with the text it came from (for hashing and for `check`). */
export interface LoadedConfig {
  file: string;
  text: string;
  config: ProxyConfig;
}

/** What one load may cost. A file past a limit is refused with a `ConfigError`; the process is never at risk. */
export interface LoaderLimits {
  /** Larger files are refused before they are parsed (SNIP_CONFIG_TOO_LARGE). */
  maxBytes: number;
  /**
   * A load (open, read, parse, validate) still running after this is
   * abandoned (SNIP_CONFIG_TIMEOUT). It is there for loads that would never
   * end (an open(2) on a hung mount), not to refuse big files: 100,000
   * routes take about 2 s of CPU, and a busy machine stretches that.
   */
  timeoutMs: number;
  /** Heap of the loader's thread: a file that needs more is refused (SNIP_CONFIG_TOO_LARGE). */
  maxHeapMb: number;
}

export const DEFAULT_LOADER_LIMITS: LoaderLimits = {
  maxBytes: 16 * 1024 * 1024,
  timeoutMs: 30_000,
  maxHeapMb: 1024,
};

/** What the loader's thread is given (`workerData`). */
export interface LoaderRequest {
  file: string;
  maxBytes: number;
}

/**
 * What it sends back: the routes in slices (each answered by any message,
 * so the next is sent only then), then the rest of the config and the text,
 * or the `ConfigError` that stopped it.
 */
export type LoaderReply =
  | { type: 'routes'; listener: number; routes: RouteConfig[] }
  | { type: 'loaded'; text: string; config: ProxyConfig }
  | { type: 'failed'; file: string; position: SourcePosition | null; detail: string; code: ConfigErrorCode };

/**
 * Where the loader's thread starts: loader-worker.js beside this file, once
 * compiled. Run from source (tests, tsx), this file is loader.ts and the thread
 * needs a TypeScript loader of its own: tsx's (a devDependency), registered
 * first, since on Node 20 a loader given with --import does not reach worker
 * threads, and the test runner's ts-node would take seconds in each.
 */
function workerEntry(): { url: URL; execArgv?: string[] } {
  const self = new URL(import.meta.url);
  if (self.pathname.endsWith('.js')) return { url: new URL('./loader-worker.js', self) };
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const source = `import { register } from ${tsx}; register(); await import(${JSON.stringify(new URL('./loader-worker.ts', self).href)});`;
  return { url: new URL(`data:text/javascript,${encodeURIComponent(source)}`), execArgv: [] };
}

/**
 * Reads and validates a config file in a worker thread, so that neither a
 * slow device, a huge file nor a hostile one (deep nesting, alias bombs) can
 * hold up the event loop, and a file that exhausts the thread's memory ends
 * that thread, not the process. One thread per load: none is kept between
 * loads. Rejects with `ConfigError`.
 *
 * A FIFO is refused at once (opened non-blocking). An open(2) that blocks
 * all the same (a hung network mount) is given up after the time limit, so
 * later loads go on; its thread cannot be stopped until the call returns,
 * and the process waits for it when it exits (Node joins its threads).
 */
export function loadConfigFile(file: string, limits: Partial<LoaderLimits> = {}): Promise<LoadedConfig> {
  const { maxBytes, timeoutMs, maxHeapMb } = { ...DEFAULT_LOADER_LIMITS, ...limits };
  const refuse = (detail: string, code: ConfigErrorCode): ConfigError => new ConfigError(file, null, detail, code);
  return new Promise((resolve, reject) => {
    const { url, execArgv } = workerEntry();
    let worker: Worker;
    try {
      worker = new Worker(url, { execArgv, workerData: { file, maxBytes } satisfies LoaderRequest, resourceLimits: { maxOldGenerationSizeMb: maxHeapMb } });
    } catch (error) {
      reject(refuse(`the config loader could not start: ${(error as Error).message}`, 'SNIP_CONFIG_LOADER_FAILED'));
      return;
    }
    const routes: RouteConfig[][] = [];
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
      void worker.terminate();
    };
    const timer = setTimeout(
      () => settle(() => reject(refuse(`loading took longer than the limit of ${timeoutMs / 1000} s`, 'SNIP_CONFIG_TIMEOUT'))),
      timeoutMs,
    );

    worker.on('message', (reply: LoaderReply) => {
      switch (reply.type) {
        case 'routes':
          (routes[reply.listener] ??= []).push(...reply.routes);
          setImmediate(() => worker.postMessage('more'));
          return;
        case 'loaded':
          for (const [index, listener] of reply.config.listeners.entries()) listener.routes = routes[index] ?? [];
          settle(() => resolve({ file, text: reply.text, config: reply.config }));
          return;
        case 'failed':
          settle(() => reject(new ConfigError(reply.file, reply.position, reply.detail, reply.code)));
      }
    });
    worker.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        settle(() => reject(refuse(`loading needs more than the limit of ${maxHeapMb} MiB of memory`, 'SNIP_CONFIG_TOO_LARGE')));
      } else {
        settle(() => reject(refuse(`the config loader failed: ${error.message}`, 'SNIP_CONFIG_LOADER_FAILED')));
      }
    });
    worker.on('exit', (code) => settle(() => reject(refuse(`the config loader stopped unexpectedly (exit code ${code})`, 'SNIP_CONFIG_LOADER_FAILED'))));
  });
}
