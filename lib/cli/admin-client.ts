import http from 'node:http';
import type { ProxyConfig } from '../config/types.js';
import { AdminRequestError } from '../errors.js';

/** An answer never takes longer than this: the endpoint computes each on the spot. */
const REQUEST_TIMEOUT_MS = 10_000;
/** `/config` of a very large config (100,000 routes) stays well below this; anything bigger is not our endpoint. */
const MAX_BODY_BYTES = 256 * 1024 * 1024;

/** "http://127.0.0.1:9900", "127.0.0.1:9900" or "[::1]:9900" → the endpoint's base URL; the admin endpoint speaks plain HTTP only. */
export function adminBaseUrl(input: string): URL {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(input) ? input : `http://${input}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AdminRequestError('SNIP_ADMIN_UNREACHABLE', `--admin ${input}: not a URL (expected e.g. http://127.0.0.1:9900)`);
  }
  if (url.protocol !== 'http:') throw new AdminRequestError('SNIP_ADMIN_UNREACHABLE', `--admin ${input}: the admin endpoint speaks plain http://`);
  return url;
}

/** GETs `path` from the endpoint; resolves with the body of a 200 answer. */
function get(base: URL, path: string): Promise<string> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    // A connection per request (no keep-alive): a command makes one or two, and must not wait on idle sockets to exit.
    const request = http.get(url, { timeout: REQUEST_TIMEOUT_MS, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) request.destroy(new AdminRequestError('SNIP_ADMIN_BAD_RESPONSE', `${url.href}: answer larger than ${MAX_BODY_BYTES} bytes`));
        else chunks.push(chunk);
      });
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode === 200) resolve(body);
        else reject(new AdminRequestError('SNIP_ADMIN_BAD_RESPONSE', `${url.href}: HTTP ${response.statusCode}: ${body.trim().slice(0, 200)}`));
      });
      response.on('error', reject);
    });
    request.on('timeout', () =>
      request.destroy(new AdminRequestError('SNIP_ADMIN_UNREACHABLE', `${url.href}: no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)),
    );
    request.on('error', (error: NodeJS.ErrnoException) =>
      reject(error instanceof AdminRequestError ? error : new AdminRequestError('SNIP_ADMIN_UNREACHABLE', `${url.href}: ${error.code ?? error.message}`)),
    );
  });
}

/** The running generation's config, as `GET /config` serves it. */
export async function fetchRunningConfig(base: URL): Promise<{ generation: number; config: ProxyConfig }> {
  const body = await get(base, '/config');
  let parsed: { generation?: unknown; config?: unknown };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    throw new AdminRequestError('SNIP_ADMIN_BAD_RESPONSE', `${new URL('/config', base).href}: not JSON`);
  }
  const config = parsed.config as ProxyConfig | null | undefined;
  if (typeof parsed.generation !== 'number' || !config || !Array.isArray(config.listeners)) {
    throw new AdminRequestError('SNIP_ADMIN_BAD_RESPONSE', `${new URL('/config', base).href}: no running config in the answer`);
  }
  return { generation: parsed.generation, config };
}

const BACKEND_UP = /^sni_passthrough_backend_up\{backend="((?:[^"\\]|\\.)*)"\} (\S+)$/;

/**
 * Whether each backend takes new connections, from the `backend_up` gauge of
 * `GET /metrics` (the one place the endpoint serves health): address → up.
 * Pure, for the one metric family this needs.
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
  return parseBackendHealth(await get(base, '/metrics'));
}
