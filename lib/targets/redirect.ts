import type { RedirectConfig } from '../config/types.js';
import { httpAnswer, httpsRedirect } from '../http/answer.js';
import type { Connection } from '../pipeline/connection.js';
import type { Preamble } from '../pipeline/preamble.js';
import type { Target } from '../pipeline/target.js';

const NO_HOST = httpAnswer(400);

/**
 * Answers a plain-HTTP request with `308 Permanent Redirect` to the same host
 * and request target on https, and closes: no backend is contacted. A 308
 * (unlike a 301) keeps the method and body of the request that follows it.
 */
export class RedirectTarget implements Target {
  private readonly port: number;

  constructor(redirect: RedirectConfig) {
    this.port = redirect.port;
  }

  handle(connection: Connection, preamble: Preamble): void {
    const { serverName, path } = preamble.request;
    // An HTTP listener's requests always have a Host; anything else has nowhere to be sent.
    if (serverName === null) connection.respondAndClose(NO_HOST, 'bad_request', 'no_host');
    else connection.respondAndClose(httpsRedirect(serverName, this.port, path ?? '/'), 'redirect', null);
  }
}
