import http from 'node:http';
import type { ProxyConfig } from '../config/types.js';
import { AdminClientError } from '../errors.js';

/** How long a command waits for the admin endpoint: it answers from memory, so this only catches a hung process. */
const REQUEST_TIMEOUT_MS = 10_000;
/** `/config` of a very large config (100,000 routes) stays well below this; anything bigger is not our endpoint. */
const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

/**
 * "http://127.0.0.1:9900", "127.0.0.1:9900", "[::1]:9900" or "localhost:9900"
 * → the endpoint's base URL. Only plain http: the admin endpoint serves nothing else.
 */
export function adminBaseUrl(text: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new AdminClientError('SNIP_ADMIN_URL', `--admin "${text}" is not a URL or host:port`);
  }
  if (url.protocol !== 'http:') throw new AdminClientError('SNIP_ADMIN_URL', `--admin "${text}": the admin endpoint speaks plain http`);
  if (url.port === '') throw new AdminClientError('SNIP_ADMIN_URL', `--admin "${text}": give the port (admin.listen in the config)`);
  return url;
}

/** GETs `path` from the endpoint at `base`; resolves with the body of a 200 answer, any failure is one `AdminClientError`. */
function adminGetText(base: URL, path: string): Promise<string> {
  const target = new URL(path, base);
  return new Promise((resolve, reject) => {
    const fail = (code: 'SNIP_ADMIN_UNREACHABLE' | 'SNIP_ADMIN_ANSWER', detail: string): void =>
      reject(new AdminClientError(code, `admin endpoint ${base.host}: GET ${path}: ${detail}`));
    // A connection per request (no keep-alive): a command makes one or two, and must not wait on idle sockets to exit.
    const request = http.get(target, { agent: false, timeout: REQUEST_TIMEOUT_MS }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) request.destroy(new Error('answer too large'));
        else chunks.push(chunk);
      });
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode !== 200) fail('SNIP_ADMIN_ANSWER', `answered ${response.statusCode}: ${text.trim().slice(0, 200)}`);
        else resolve(text);
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
    request.on('error', (error: NodeJS.ErrnoException) => fail('SNIP_ADMIN_UNREACHABLE', error.code ?? error.message));
  });
}

/** GETs `path` from the admin endpoint at `base` and parses its JSON answer; any failure is one `AdminClientError`. */
export async function adminGet<T>(base: URL, path: string): Promise<T> {
  const text = await adminGetText(base, path);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new AdminClientError('SNIP_ADMIN_ANSWER', `admin endpoint ${base.host}: GET ${path}: the answer is not JSON`);
  }
}

/** The running generation's config, as `GET /config` serves it. */
export async function fetchRunningConfig(base: URL): Promise<{ generation: number; config: ProxyConfig }> {
  const parsed = await adminGet<{ generation?: unknown; config?: ProxyConfig | null }>(base, '/config');
  const config = parsed.config;
  if (typeof parsed.generation !== 'number' || !config || !Array.isArray(config.listeners)) {
    throw new AdminClientError('SNIP_ADMIN_ANSWER', `admin endpoint ${base.host}: GET /config: no running config in the answer`);
  }
  return { generation: parsed.generation, config };
}

const BACKEND_UP = /^sni_passthrough_backend_up\{backend="((?:[^"\\]|\\.)*)"\} (\S+)$/;

/**
 * Whether each backend takes new connections, from the `backend_up` gauge of
 * `GET /metrics`: address → up. Pure, for the one metric family this needs.
 */
export function parseBackendHealth(metrics: string): Map<string, boolean> {
  const health = new Map<string, boolean>();
  for (const line of metrics.split('\n')) {
    const sample = BACKEND_UP.exec(line);
    if (sample === null) continue;
    const address = sample[1]!.replace(/\\(.)/g, (_escape, character: string) => (character === 'n' ? '\n' : character));
    health.set(address, Number(sample[2]) === 1);
  }
  return health;
}

/** Live backend health from the running proxy. */
export async function fetchBackendHealth(base: URL): Promise<Map<string, boolean>> {
  return parseBackendHealth(await adminGetText(base, '/metrics'));
}
