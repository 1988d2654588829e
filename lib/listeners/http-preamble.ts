import { httpAnswer } from '../http/answer.js';
import { parseRequestHead, type RequestRejection } from '../http/request-head.js';
import type { PreambleParse, PreambleProtocol } from '../pipeline/preamble.js';

/** The answer to each request refused before routing (built once: they never vary). */
const REFUSALS: Record<RequestRejection, Buffer> = {
  malformed: httpAnswer(400),
  no_host: httpAnswer(400),
  bad_host: httpAnswer(400),
  uri_too_long: httpAnswer(414),
  headers_too_large: httpAnswer(431),
};

const NO_PROTOCOLS: string[] = [];

/**
 * A plain-HTTP listener's clients open with a request head: its Host routes
 * them (an IP address matches no hostname pattern, so it takes the default
 * route), its path picks an ACME challenge. A request that cannot be routed
 * is answered 400, 414 or 431 and closed; one too slow, 408.
 */
export const HTTP_PREAMBLE: PreambleProtocol = {
  parse(bytes: Buffer): PreambleParse {
    const result = parseRequestHead(bytes);
    if (result.status === 'incomplete') return result;
    if (result.status === 'invalid') return { status: 'invalid', outcome: 'bad_request', reason: result.reason, answer: REFUSALS[result.reason] };
    const { host, path } = result.head;
    return { status: 'complete', request: { serverName: host, alpn: NO_PROTOCOLS, path } };
  },
  timeout: { outcome: 'request_timeout', answer: httpAnswer(408) },
  incomplete: 'incomplete_request',
};
