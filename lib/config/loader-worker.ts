// The config loader's worker thread: reads, parses and validates one config
// file, sends the result to the thread that started it, and ends. See
// loadConfigFile in loader.ts for the protocol.
import { once } from 'node:events';
import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError } from '../errors.js';
import { parseConfig } from './load.js';
import type { LoaderReply, LoaderRequest } from './loader.js';
import { readConfigText } from './read.js';

/** Routes per message: receiving one message is one uninterrupted task on the event loop, so it must stay short. */
const ROUTES_PER_MESSAGE = 1000;

const port = parentPort!;
const send = (reply: LoaderReply): void => port.postMessage(reply);
const { file, maxBytes } = workerData as LoaderRequest;

try {
  const text = readConfigText(file, maxBytes);
  const config = parseConfig(text, file);
  for (const [listener, { routes }] of config.listeners.entries()) {
    for (let start = 0; start < routes.length; start += ROUTES_PER_MESSAGE) {
      send({ type: 'routes', listener, routes: routes.slice(start, start + ROUTES_PER_MESSAGE) });
      // The next slice once the main thread asks for it, after it had a turn for its own work.
      await once(port, 'message');
    }
  }
  send({ type: 'loaded', text, config: { ...config, listeners: config.listeners.map((listener) => ({ ...listener, routes: [] })) } });
} catch (error) {
  // Anything else is a bug: thrown, it reaches the main thread as the worker's `error` event.
  if (!(error instanceof ConfigError)) throw error;
  send({ type: 'failed', file: error.file, position: error.position, detail: error.detail, code: error.code });
}
