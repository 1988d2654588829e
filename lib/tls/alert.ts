// A fatal TLS alert record, sent in the clear before closing a connection that
// cannot be routed (as tlsrouter does), so the client reports a TLS error
// instead of a bare connection reset.

const CONTENT_TYPE_ALERT = 21;
const ALERT_LEVEL_FATAL = 2;
const ALERT_UNRECOGNIZED_NAME = 112;

export function alertRecord(description: number): Buffer {
  return Buffer.from([CONTENT_TYPE_ALERT, 0x03, 0x03, 0x00, 0x02, ALERT_LEVEL_FATAL, description]);
}

export const UNRECOGNIZED_NAME_ALERT: Buffer = alertRecord(ALERT_UNRECOGNIZED_NAME);
