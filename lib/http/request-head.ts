// Parses just enough of an HTTP/1.x request head to route it: the request
// line and the Host header. Pure and restartable, like the ClientHello parser:
// the caller parses the growing buffer from its start again once more bytes
// have arrived. Nothing is known of where a head ends before its blank line,
// so an incomplete head costs one native search for that line and a look at
// the first bytes of the request line (what is plainly not HTTP, a TLS hello
// for one, is refused at once); every line is checked once the head is whole.
// Bytes are never rewritten: the proxy replays them as they came.
import { isIPv4, isIPv6 } from 'node:net';

/** Cap on the request head (request line, headers and the blank line). */
export const MAX_HEAD_BYTES = 16 * 1024;

export type RequestRejection = 'malformed' | 'no_host' | 'bad_host' | 'uri_too_long' | 'headers_too_large';

export interface RequestHead {
  /** The Host, lower-case, without its port and one trailing dot: a DNS name, an IPv4 address or a bracketed IPv6 address. */
  host: string;
  /** The target's path and query: an origin-form target as sent, the path of an absolute-form one ("/" when it has none), "*" for `OPTIONS *`. */
  path: string;
}

export type HeadParseResult =
  | { status: 'incomplete'; need: number }
  | { status: 'complete'; head: RequestHead }
  | { status: 'invalid'; reason: RequestRejection };

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SLASH = 0x2f;
const CRLF = Buffer.from('\r\n');
const BLANK_LINE = Buffer.from('\r\n\r\n');
const VERSION_PREFIX = Buffer.from('HTTP/1.');
/** RFC 9112 section 2.2: a server SHOULD ignore at least one empty line before the request line; a few are. */
const MAX_LEADING_EMPTY_LINES = 4;
/** How much of an incomplete request line is checked on each parse (the rest once the head is complete). */
const PREFIX_CHECK_BYTES = 64;
const MAX_HOST_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;
const DOT = 0x2e;
const HYPHEN = 0x2d;

/** tchar (RFC 9110 section 5.6.2): what methods and field names are made of. */
const TOKEN = new Uint8Array(256);
for (const byte of Buffer.from("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")) TOKEN[byte] = 1;

function isTargetByte(byte: number): boolean {
  return byte >= 0x21 && byte <= 0x7e;
}

/** field-vchar, SP and HTAB (RFC 9110 section 5.5); obs-text is allowed, every other control byte is not (past the end: undefined, not either). */
function isFieldValueByte(byte: number): boolean {
  return byte === HTAB || (byte >= 0x20 && byte !== 0x7f);
}

function incomplete(need: number): HeadParseResult {
  return { status: 'incomplete', need };
}

function invalid(reason: RequestRejection): HeadParseResult {
  return { status: 'invalid', reason };
}

export function parseRequestHead(data: Buffer): HeadParseResult {
  let start = 0;
  for (let lines = 0; lines < MAX_LEADING_EMPTY_LINES && data[start] === CR && data[start + 1] === LF; lines++) start += CRLF.length;
  const lineEnd = data.indexOf(CRLF, start);
  // The same checks in the same order however much has arrived: the answer never depends on how the bytes were split.
  if (!startsLikeRequestLine(data, start, lineEnd)) return invalid('malformed');
  if (lineEnd < 0) return data.length >= MAX_HEAD_BYTES ? invalid('uri_too_long') : incomplete(data.length + 1);
  if (lineEnd + CRLF.length > MAX_HEAD_BYTES) return invalid('uri_too_long');
  const headEnd = data.indexOf(BLANK_LINE, lineEnd);
  if (headEnd < 0) return data.length >= MAX_HEAD_BYTES ? invalid('headers_too_large') : incomplete(data.length + 1);
  if (headEnd + BLANK_LINE.length > MAX_HEAD_BYTES) return invalid('headers_too_large');
  const line = scanRequestLine(data, start, lineEnd);
  if (line === null) return invalid('malformed');
  const hostValue = findHost(data, lineEnd + CRLF.length, headEnd + CRLF.length);
  if (hostValue === 'malformed' || hostValue === 'bad_host') return invalid(hostValue);
  if (hostValue === null || hostValue === '') return invalid('no_host');
  const host = normalizeHost(hostValue);
  if (host === null) return invalid('bad_host');
  const target = data.toString('latin1', line.methodEnd + 1, line.targetEnd);
  if (target.charCodeAt(0) === SLASH) return complete(host, target);
  if (target === '*') return data.toString('latin1', start, line.methodEnd) === 'OPTIONS' ? complete(host, target) : invalid('malformed');
  const absolute = splitAbsoluteTarget(target);
  if (absolute === null) return invalid('malformed');
  // An origin server takes the host from an absolute-form target (RFC 9112 section 3.2.2): both must name the same.
  return normalizeHost(absolute.authority) === host ? complete(host, absolute.path) : invalid('bad_host');
}

function complete(host: string, path: string): HeadParseResult {
  return { status: 'complete', head: { host, path } };
}

/**
 * Whether the request line (ending at `lineEnd`, or not yet: -1) starts as
 * one must, judged by its first bytes only: a short line whole, a longer one
 * by its first PREFIX_CHECK_BYTES (the rest is checked once the head is whole).
 */
function startsLikeRequestLine(data: Buffer, start: number, lineEnd: number): boolean {
  if (lineEnd >= 0 && lineEnd - start <= PREFIX_CHECK_BYTES) return scanRequestLine(data, start, lineEnd) !== null;
  // A CR at the very end may be the first half of the line break.
  const available = lineEnd >= 0 ? lineEnd : data[data.length - 1] === CR ? data.length - 1 : data.length;
  return isLinePrefix(data, start, Math.min(available, start + PREFIX_CHECK_BYTES));
}

interface RequestLine {
  methodEnd: number;
  targetEnd: number;
}

/**
 * Checks `method SP request-target SP HTTP/1.x` in data[start, end). Returns
 * where its parts end, or null when it is not a whole, valid request line.
 */
function scanRequestLine(data: Buffer, start: number, end: number): RequestLine | null {
  let pos = start;
  while (pos < end && TOKEN[data[pos]!] === 1) pos++;
  if (pos === start || pos >= end || data[pos] !== SP) return null;
  const methodEnd = pos++;
  const targetStart = pos;
  while (pos < end && isTargetByte(data[pos]!)) pos++;
  if (pos === targetStart || pos >= end || data[pos] !== SP) return null;
  const targetEnd = pos++;
  if (end - pos !== VERSION_PREFIX.length + 1 || data.compare(VERSION_PREFIX, 0, VERSION_PREFIX.length, pos, end - 1) !== 0) return null;
  const minor = data[end - 1]!;
  return minor >= 0x30 && minor <= 0x39 ? { methodEnd, targetEnd } : null;
}

/** Whether data[start, end) can begin a request line: the bytes seen so far break no rule. */
function isLinePrefix(data: Buffer, start: number, end: number): boolean {
  let pos = start;
  while (pos < end && TOKEN[data[pos]!] === 1) pos++;
  if (pos === end) return true;
  if (pos === start || data[pos] !== SP) return false;
  const targetStart = ++pos;
  while (pos < end && isTargetByte(data[pos]!)) pos++;
  if (pos === end) return true;
  if (pos === targetStart || data[pos] !== SP) return false;
  pos++;
  const seen = Math.min(end - pos, VERSION_PREFIX.length);
  if (data.compare(VERSION_PREFIX, 0, seen, pos, pos + seen) !== 0) return false;
  pos += seen;
  // Past "HTTP/1." only the minor version digit may follow before the line break.
  return pos === end || (end - pos === 1 && data[pos]! >= 0x30 && data[pos]! <= 0x39);
}

/**
 * The Host field's value (without surrounding whitespace) from the header
 * lines in data[start, end) (each ending in CRLF); null when there is none.
 * Every line must be `token ":" OWS value OWS`: no whitespace before the colon
 * and no line folding (RFC 9112 section 5), which a server must refuse rather
 * than guess at, as the backend might guess otherwise. Two Host fields are
 * refused for the same reason.
 */
function findHost(data: Buffer, start: number, end: number): string | null | 'malformed' | 'bad_host' {
  let host: string | null = null;
  for (let pos = start; pos < end; ) {
    const lineStart = pos;
    while (TOKEN[data[pos]!] === 1) pos++;
    if (pos === lineStart || data[pos] !== COLON) return 'malformed';
    const nameEnd = pos++;
    while (pos < end && (data[pos] === SP || data[pos] === HTAB)) pos++;
    const valueStart = pos;
    while (isFieldValueByte(data[pos]!)) pos++;
    if (data[pos] !== CR || data[pos + 1] !== LF) return 'malformed';
    if (nameEnd - lineStart === 4 && isHostFieldName(data, lineStart)) {
      if (host !== null) return 'bad_host';
      let valueEnd = pos;
      while (valueEnd > valueStart && (data[valueEnd - 1] === SP || data[valueEnd - 1] === HTAB)) valueEnd--;
      host = data.toString('latin1', valueStart, valueEnd);
    }
    pos += CRLF.length;
  }
  return host;
}

/** "Host" in any case, at `start`. */
function isHostFieldName(data: Buffer, start: number): boolean {
  // ASCII letters only differ in case by 0x20.
  return (data[start]! | 0x20) === 0x68 && (data[start + 1]! | 0x20) === 0x6f && (data[start + 2]! | 0x20) === 0x73 && (data[start + 3]! | 0x20) === 0x74;
}

const PORT = /^\d{0,5}$/;
/** What a host name (already lower-case) is made of. */
const HOST_NAME_CHAR = new Uint8Array(128);
for (const byte of Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789-_')) HOST_NAME_CHAR[byte] = 1;

/**
 * `host [":" port]` as routing compares it: lower-case, without the port and
 * one trailing dot; an IPv6 address keeps its brackets. Null for anything else
 * (user info, a bad port, an empty or overlong label): such a name matches no
 * route, and passing it on would let the backend read it its own way.
 */
export function normalizeHost(value: string): string | null {
  let host: string;
  let port: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0 || !isIPv6(value.slice(1, close))) return null;
    host = value.slice(0, close + 1).toLowerCase();
    port = value.slice(close + 1);
  } else {
    const colon = value.indexOf(':');
    host = (colon < 0 ? value : value.slice(0, colon)).toLowerCase();
    port = colon < 0 ? '' : value.slice(colon);
    if (host.endsWith('.')) host = host.slice(0, -1);
    if (!isIPv4(host) && !isHostName(host)) return null;
  }
  return port === '' || (port.charCodeAt(0) === COLON && PORT.test(port.slice(1))) ? host : null;
}

/** LDH labels of 1 to 63 characters (underscores tolerated), at most 253 in all; a last label of digits only must be an IPv4 address. */
function isHostName(name: string): boolean {
  if (name.length > MAX_HOST_NAME_LENGTH) return false;
  let labelStart = 0;
  let digitsOnly = true;
  for (let index = 0; index < name.length; index++) {
    const code = name.charCodeAt(index);
    if (code === DOT) {
      if (!isLabel(name, labelStart, index)) return false;
      labelStart = index + 1;
      digitsOnly = true;
    } else if (HOST_NAME_CHAR[code] === 1) {
      digitsOnly &&= code >= 0x30 && code <= 0x39;
    } else {
      return false;
    }
  }
  return isLabel(name, labelStart, name.length) && !digitsOnly;
}

/** name[start, end) is 1 to 63 characters that neither start nor end with a hyphen (its characters are checked by the caller). */
function isLabel(name: string, start: number, end: number): boolean {
  return end > start && end - start <= MAX_LABEL_LENGTH && name.charCodeAt(start) !== HYPHEN && name.charCodeAt(end - 1) !== HYPHEN;
}

const ABSOLUTE_TARGET = /^https?:\/\/([^/?#]*)([/?].*)?$/i;

/** An absolute-form target ("http://host:port/path?query") as its authority and path ("/" when it has none). */
function splitAbsoluteTarget(target: string): { authority: string; path: string } | null {
  const match = ABSOLUTE_TARGET.exec(target);
  if (match === null) return null;
  const rest = match[2] ?? '/';
  return { authority: match[1]!, path: rest.startsWith('?') ? `/${rest}` : rest };
}
