import http from 'node:http';
import { AdminClientError } from '../errors.js';

/** How long a command waits for the admin endpoint: it answers from memory, so this only catches a hung process. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Answers are a page of at most 1000 connections; anything far larger is not the admin endpoint. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

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

/** GETs `path` from the admin endpoint at `base` and parses its JSON answer; any failure is one `AdminClientError`. */
export function adminGet<T>(base: URL, path: string): Promise<T> {
  const target = new URL(path, base);
  return new Promise((resolve, reject) => {
    const fail = (code: 'SNIP_ADMIN_UNREACHABLE' | 'SNIP_ADMIN_ANSWER', detail: string): void =>
      reject(new AdminClientError(code, `admin endpoint ${base.host}: GET ${path}: ${detail}`));
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
        if (response.statusCode !== 200) return fail('SNIP_ADMIN_ANSWER', `answered ${response.statusCode}: ${text.trim().slice(0, 200)}`);
        try {
          resolve(JSON.parse(text) as T);
        } catch {
          fail('SNIP_ADMIN_ANSWER', 'the answer is not JSON');
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
    request.on('error', (error: NodeJS.ErrnoException) => fail('SNIP_ADMIN_UNREACHABLE', error.code ?? error.message));
  });
}
