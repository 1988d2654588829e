// The HTTP request head parser (lib/http/request-head.ts): what routes a
// plain-HTTP request (Host, path), what is refused and why, and that the
// answer does not depend on how the bytes were split (property tests).
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { type HeadParseResult, MAX_HEAD_BYTES, normalizeHost, parseRequestHead, type RequestRejection } from '../../lib/http/request-head.js';

const parse = (text: string | Buffer): HeadParseResult => parseRequestHead(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
const complete = (host: string, path: string): HeadParseResult => ({ status: 'complete', head: { host, path } });
const rejected = (reason: RequestRejection): HeadParseResult => ({ status: 'invalid', reason });
/** A request head with these header lines (CRLF line ends, blank line added). */
const request = (line: string, ...headers: string[]): string => [line, ...headers, '', ''].join('\r\n');

/** The first parse result that is not `incomplete` when the bytes arrive one by one, re-parsed once `need` bytes are there. */
function trickle(data: Buffer): { result: HeadParseResult; at: number } {
  let need = 1;
  for (let length = 1; length <= data.length; length++) {
    if (length < need) continue;
    const result = parseRequestHead(data.subarray(0, length));
    if (result.status !== 'incomplete') return { result, at: length };
    need = result.need;
  }
  return { result: parseRequestHead(data), at: data.length };
}

t.test('the Host and the request target route a request', async (t) => {
  t.same(parse(request('GET /index.html?a=1&b HTTP/1.1', 'Host: app.example.com', 'Accept: */*')), complete('app.example.com', '/index.html?a=1&b'));
  t.same(parse(request('POST / HTTP/1.0', 'host: APP.Example.COM.:8080')), complete('app.example.com', '/'), 'any case, a port and a trailing dot');
  t.same(parse(request('GET / HTTP/1.1', 'X-A: 1', 'Host:\t a.example \t', 'X-B:')), complete('a.example', '/'), 'whitespace around the value, empty fields');
  t.same(parse(request('OPTIONS * HTTP/1.1', 'Host: a.example')), complete('a.example', '*'), 'OPTIONS *');
  t.same(parse(`\r\n\r\n${request('GET / HTTP/1.1', 'Host: a.example')}`), complete('a.example', '/'), 'empty lines before the request line');
  const head = request('PUT /upload HTTP/1.1', 'Host: a.example', 'Content-Length: 5');
  t.same(parse(`${head}hello`), complete('a.example', '/upload'), 'the body (or a pipelined request) after the head is not looked at');
});

t.test('hosts: names, addresses and ports', async (t) => {
  const hosts: Array<[string, string | null]> = [
    ['a.example', 'a.example'],
    ['A-B_c.Example:443', 'a-b_c.example'],
    ['a.example:', 'a.example'],
    ['localhost', 'localhost'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['192.0.2.7', '192.0.2.7'],
    ['192.0.2.7.:80', '192.0.2.7'],
    ['[::1]', '[::1]'],
    ['[2001:DB8::1]:8080', '[2001:db8::1]'],
    ['', null],
    ['.', null],
    ['a..example', null],
    ['-a.example', null],
    ['a.example:http', null],
    ['a.example:123456', null],
    ['a.example:80:80', null],
    ['user@a.example', null],
    ['a example', null],
    ['bücher.example', null],
    ['a.1', null],
    ['1.2.3', null],
    ['[::1', null],
    ['[a.example]', null],
    ['[::1]80', null],
    [`${'a'.repeat(63)}.example`, `${'a'.repeat(63)}.example`],
    [`${'a'.repeat(64)}.example`, null],
    [`${'a.'.repeat(125)}bc`, `${'a.'.repeat(125)}bc`],
    [`${'a.'.repeat(126)}bc`, null],
  ];
  for (const [value, expected] of hosts) t.equal(normalizeHost(value), expected, JSON.stringify(value));
});

t.test('absolute-form targets: the path, and the same host as the Host header', async (t) => {
  t.same(parse(request('GET http://a.example/x?y HTTP/1.1', 'Host: a.example')), complete('a.example', '/x?y'));
  t.same(parse(request('GET HTTPS://A.example:443 HTTP/1.1', 'Host: a.example')), complete('a.example', '/'), 'no path: "/"');
  t.same(parse(request('GET http://a.example?q HTTP/1.1', 'Host: a.example:80')), complete('a.example', '/?q'), 'a query without a path');
  t.same(parse(request('GET http://b.example/ HTTP/1.1', 'Host: a.example')), rejected('bad_host'), 'a backend would take the host from the target');
  t.same(parse(request('GET http://user@a.example/ HTTP/1.1', 'Host: a.example')), rejected('bad_host'), 'user info');
  t.same(parse(request('GET ftp://a.example/ HTTP/1.1', 'Host: a.example')), rejected('malformed'), 'another scheme');
  t.same(parse(request('CONNECT a.example:443 HTTP/1.1', 'Host: a.example:443')), rejected('malformed'), 'authority-form: not a forward proxy');
  t.same(parse(request('GET * HTTP/1.1', 'Host: a.example')), rejected('malformed'), '"*" is for OPTIONS only');
});

t.test('requests without a usable Host', async (t) => {
  t.same(parse(request('GET / HTTP/1.1')), rejected('no_host'), 'none');
  t.same(parse(request('GET / HTTP/1.0')), rejected('no_host'), 'none, HTTP/1.0');
  t.same(parse(request('GET / HTTP/1.1', 'Host:')), rejected('no_host'), 'empty');
  t.same(parse(request('GET / HTTP/1.1', 'Host:   ')), rejected('no_host'), 'blank');
  t.same(parse(request('GET / HTTP/1.1', 'Hostname: a.example')), rejected('no_host'), 'a longer field name is not Host');
  t.same(parse(request('GET / HTTP/1.1', 'Host: a.example', 'HOST: b.example')), rejected('bad_host'), 'two Host fields');
  t.same(parse(request('GET / HTTP/1.1', 'Host: a.example', 'Host: a.example')), rejected('bad_host'), 'two, even equal');
  t.same(parse(request('GET / HTTP/1.1', 'Host: a.example, b.example')), rejected('bad_host'), 'a list');
  t.same(parse(request('GET / HTTP/1.1', 'Host: a.example\x80')), rejected('bad_host'), 'a byte above ASCII');
});

t.test('malformed request lines and header fields', async (t) => {
  const malformed: Array<[string, string]> = [
    ['GET / HTTP/1.1\nHost: a.example\n\n', 'bare LF line ends'],
    ['GET / HTTP/1.1\r\nHost: a.example\nX-A: 1\r\n\r\n', 'a bare LF in the headers'],
    [request('GET / http/1.1', 'Host: a.example'), 'a lower-case version'],
    [request('GET / HTTP/2.0', 'Host: a.example'), 'HTTP/2'],
    [request('GET / HTTP/1.10', 'Host: a.example'), 'a two-digit minor version'],
    [request('GET / HTTP/1.x', 'Host: a.example'), 'a letter for a version'],
    [request('GET /  HTTP/1.1', 'Host: a.example'), 'two spaces'],
    [request('GET / HTTP/1.1 ', 'Host: a.example'), 'a space at the end'],
    [request(' GET / HTTP/1.1', 'Host: a.example'), 'a space in front'],
    [request('GET /', 'Host: a.example'), 'no version'],
    [request('GET\t/ HTTP/1.1', 'Host: a.example'), 'a tab for a space'],
    [request('G(T / HTTP/1.1', 'Host: a.example'), 'a separator in the method'],
    [request('GET /a\x7fb HTTP/1.1', 'Host: a.example'), 'DEL in the target'],
    [request('GET /ä HTTP/1.1', 'Host: a.example'), 'a byte above ASCII in the target'],
    [request('GET a HTTP/1.1', 'Host: a.example'), 'a relative target'],
    [request('GET / HTTP/1.1', 'Host : a.example'), 'a space before the colon'],
    [request('GET / HTTP/1.1', 'Host: a.example', 'X-A: 1', ' folded'), 'a folded line (obs-fold)'],
    [request('GET / HTTP/1.1', ' Host: a.example'), 'whitespace before the first field'],
    [request('GET / HTTP/1.1', 'Host: a.example', 'no colon'), 'a line without a colon'],
    [request('GET / HTTP/1.1', 'Host: a.example', ': empty name'), 'an empty field name'],
    [request('GET / HTTP/1.1', 'Host: a.example', 'X-A: a\x00b'), 'NUL in a value'],
    [request('GET / HTTP/1.1', 'Host: a.example', 'X-A: a\rb'), 'a bare CR in a value'],
    [request('GET / HTTP/1.1', 'Host: a.ex\x01ample'), 'a control byte in the Host'],
    [`${'\r\n'.repeat(5)}${request('GET / HTTP/1.1', 'Host: a.example')}`, 'more than four empty lines first'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'the HTTP/2 connection preface'],
  ];
  for (const [text, name] of malformed) t.same(parse(text), rejected('malformed'), name);
  t.same(parse(request('GET / HTTP/1.1', 'Host: a.example', 'X-A: a\tb \x80\xff')), complete('a.example', '/'), 'tabs and bytes above ASCII in other values');
});

t.test('what is plainly not HTTP is refused from its first bytes', async (t) => {
  t.same(parse(Buffer.from([0x16, 0x03, 0x01])), rejected('malformed'), 'a TLS record');
  t.same(parse('\x00'), rejected('malformed'), 'NUL');
  t.same(parse('GET /\x01'), rejected('malformed'), 'a control byte in the target');
  t.same(parse('GET / HTTX'), rejected('malformed'), 'a wrong protocol name');
  t.same(parse('GET / HTTP/1.1x'), rejected('malformed'), 'a byte after the version');
  t.same(parse('GET / HTTP/1.1\r\nHost: a.example\r\n'), { status: 'incomplete', need: 34 }, 'the blank line is awaited');
  for (const prefix of ['', '\r', '\r\n', 'G', 'GET', 'GET ', 'GET /', 'GET / ', 'GET / HTTP/1', 'GET / HTTP/1.1', 'GET / HTTP/1.1\r']) {
    t.same(parse(prefix), { status: 'incomplete', need: prefix.length + 1 }, `${JSON.stringify(prefix)}: more is needed`);
  }
});

t.test('16 KiB for the whole head', async (t) => {
  const filler = (length: number): string => `X-Filler: ${'a'.repeat(length - 'X-Filler: '.length)}`;
  const base = request('GET / HTTP/1.1', 'Host: a.example', '');
  const exact = request('GET / HTTP/1.1', 'Host: a.example', filler(MAX_HEAD_BYTES - base.length));
  t.equal(exact.length, MAX_HEAD_BYTES);
  t.same(parse(exact), complete('a.example', '/'), 'exactly 16 KiB');
  const over = request('GET / HTTP/1.1', 'Host: a.example', filler(MAX_HEAD_BYTES - base.length + 1));
  t.same(parse(over), rejected('headers_too_large'), 'one byte more');
  t.same(parse(over.slice(0, MAX_HEAD_BYTES)), rejected('headers_too_large'), 'known before the blank line arrives');
  t.same(parse(over.slice(0, MAX_HEAD_BYTES - 1)), { status: 'incomplete', need: MAX_HEAD_BYTES }, 'not a byte earlier');
  const longLine = `GET /${'a'.repeat(MAX_HEAD_BYTES)} HTTP/1.1`;
  t.same(parse(longLine.slice(0, MAX_HEAD_BYTES)), rejected('uri_too_long'), 'a request line that does not end within 16 KiB');
  t.same(parse(request(longLine, 'Host: a.example')), rejected('uri_too_long'), 'the same, whole');
  t.same(parse(`GET /${'a'.repeat(100)}\x01 HTTP/1.1\r\n`), { status: 'incomplete', need: 118 }, 'a long line is checked whole once the head is');
  t.same(parse(request(`GET /${'a'.repeat(100)}\x01 HTTP/1.1`, 'Host: a.example')), rejected('malformed'));
});

// ---- properties ----

const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9_-]{0,10}[a-z0-9])?$/);
const hostName = fc.tuple(fc.array(label, { maxLength: 3 }), fc.stringMatching(/^[a-z]{1,8}$/)).map(([labels, last]) => [...labels, last].join('.'));
const hostArb = fc.oneof(
  hostName.map((name) => ({ expected: name, sent: name })),
  fc.ipV4().map((address) => ({ expected: address, sent: address })),
  fc.ipV6().map((address) => ({ expected: `[${address.toLowerCase()}]`, sent: `[${address}]` })),
);
const fieldValue = fc.stringMatching(/^([!-~]([ \t!-~]*[!-~])?)?$/);
const field = fc
  .tuple(
    token.filter((name) => name.toLowerCase() !== 'host'),
    fieldValue,
  )
  .map(([name, value]) => `${name}: ${value}`);
/** A valid request head with what it should parse to. */
const requestArb = fc
  .record({
    method: token,
    path: fc.stringMatching(/^\/[!-~]{0,40}$/),
    minor: fc.constantFrom('0', '1'),
    host: hostArb,
    upper: fc.boolean(),
    port: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: null }),
    rooted: fc.boolean(),
    before: fc.array(field, { maxLength: 5 }),
    after: fc.array(field, { maxLength: 5 }),
    body: fc.uint8Array({ maxLength: 40 }),
  })
  .map((parts) => {
    const { host } = parts;
    const isName = !host.sent.startsWith('[');
    let sent = isName && parts.rooted ? `${host.sent}.` : host.sent;
    if (parts.upper) sent = sent.toUpperCase();
    if (parts.port !== null) sent = `${sent}:${parts.port}`;
    const head = request(`${parts.method} ${parts.path} HTTP/1.${parts.minor}`, ...parts.before, `Host: ${sent}`, ...parts.after);
    return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), parts.body]), expected: complete(host.expected, parts.path) };
  });

t.test('property: a valid request parses to its Host and path, whole or byte by byte', async (t) => {
  fc.assert(
    fc.property(
      requestArb,
      ({ bytes, expected }) => isDeepStrictEqual(parseRequestHead(bytes), expected) && isDeepStrictEqual(trickle(bytes).result, expected),
    ),
    { numRuns: 300 },
  );
  t.pass('every generated request parsed as expected');
});

/** Bytes that are often almost a request: a valid one with a few bytes changed, cut, or random bytes. */
const mutatedArb = fc.oneof(
  requestArb.chain(({ bytes }) =>
    fc.array(fc.tuple(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }).map((changes) => {
      const copy = Buffer.from(bytes);
      for (const [position, byte] of changes) copy[position] = byte;
      return copy;
    }),
  ),
  requestArb.chain(({ bytes }) => fc.nat({ max: bytes.length }).map((length) => bytes.subarray(0, length))),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
);

t.test('property: however the bytes are split, the first answer is the answer for them all', async (t) => {
  fc.assert(
    fc.property(mutatedArb, fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => {
      const whole = parseRequestHead(bytes);
      for (const cut of cuts) {
        const length = cut % (bytes.length + 1);
        const prefix = parseRequestHead(bytes.subarray(0, length));
        if (prefix.status === 'incomplete' ? prefix.need !== length + 1 : !isDeepStrictEqual(prefix, whole)) return false;
      }
      return isDeepStrictEqual(trickle(bytes).result, whole);
    }),
    { numRuns: 500 },
  );
  t.pass('every prefix was undecided (asking for one more byte) or decided as the whole');
});

t.test('property: the parser never throws, and by 16 KiB it has decided', async (t) => {
  const large = fc.tuple(mutatedArb, fc.integer({ min: 0, max: 300 })).map(([bytes, extra]) => {
    const kept = bytes.subarray(0, MAX_HEAD_BYTES);
    return Buffer.concat([kept, Buffer.alloc(MAX_HEAD_BYTES + extra - kept.length, 'a')]);
  });
  fc.assert(
    fc.property(large, (bytes) => parseRequestHead(bytes).status !== 'incomplete'),
    { numRuns: 100 },
  );
  t.pass('decided for every input of 16 KiB or more');
});
