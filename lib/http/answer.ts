import { STATUS_CODES } from 'node:http';

/**
 * A whole HTTP/1.1 response the proxy sends itself, before closing the
 * connection: `Connection: close`, the status line's text as the body (none
 * for a redirect, whose Location says it all), and the extra header lines.
 */
export function httpAnswer(status: number, headers: readonly string[] = []): Buffer {
  const text = STATUS_CODES[status] ?? 'Unknown';
  const body = status >= 300 && status < 400 ? '' : `${status} ${text}\n`;
  const type = body === '' ? [] : ['Content-Type: text/plain; charset=utf-8'];
  const lines = [`HTTP/1.1 ${status} ${text}`, ...headers, ...type, 'Connection: close', `Content-Length: ${body.length}`];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');
}

/** The `308 Permanent Redirect` to `https://host[:port]/path?query`; `path` is the request's ("*" becomes "/"). */
export function httpsRedirect(host: string, port: number, path: string): Buffer {
  const authority = port === 443 ? host : `${host}:${port}`;
  return httpAnswer(308, [`Location: https://${authority}${path.startsWith('/') ? path : '/'}`]);
}
