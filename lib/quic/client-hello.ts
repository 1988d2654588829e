// The ClientHello at the start of a QUIC flow's CRYPTO stream. QUIC carries
// TLS handshake messages without TLS records (RFC 9001 section 4), so the TCP
// path's parser reads it from its handshake-message entry point: one parser,
// one set of rules for the server name and ALPN, whatever the transport.
import { QuicError } from '../errors.js';
import { type ClientHello, type HelloRejection, parseClientHelloMessage } from '../tls/client-hello.js';

export type QuicHelloResult = { kind: 'complete'; hello: ClientHello } | { kind: 'incomplete' } | { kind: 'invalid'; error: Error; reason: HelloRejection };

/** Reads the ClientHello from the contiguous CRYPTO bytes assembled so far (see CryptoAssembler); `incomplete` until all of it has arrived. */
export function readQuicClientHello(assembled: Buffer): QuicHelloResult {
  const result = parseClientHelloMessage(assembled);
  if (result.status === 'complete') return { kind: 'complete', hello: result.hello };
  if (result.status === 'incomplete') return { kind: 'incomplete' };
  return {
    kind: 'invalid',
    error: new QuicError('QUIC_INVALID_HELLO', `CRYPTO stream does not start with a valid ClientHello: ${result.reason}`),
    reason: result.reason,
  };
}
