import type { PreambleParse, PreambleProtocol } from '../pipeline/preamble.js';
import { parseClientHello } from '../tls/client-hello.js';

/** A TLS listener's clients open with a ClientHello: its server name and ALPN protocols are what routes them. */
export const TLS_PREAMBLE: PreambleProtocol = {
  parse(bytes: Buffer): PreambleParse {
    const result = parseClientHello(bytes);
    if (result.status === 'incomplete') return result;
    if (result.status === 'invalid') return { status: 'invalid', outcome: 'bad_hello', reason: result.reason, answer: null };
    const { serverName, alpn } = result.hello;
    return { status: 'complete', request: { serverName, alpn, path: null } };
  },
  timeout: { outcome: 'hello_timeout', answer: null },
  incomplete: 'incomplete_hello',
};
