// match() (lib/pipeline/match.ts): pure, from settings and what a client asked for to a target
// (TLS: server name and ALPN; HTTP: Host and path).
import t from 'tap';
import { BackendRegistry } from '../../lib/backends/health.js';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { parseConfig } from '../../lib/config/load.js';
import { listenerSettings } from '../../lib/listeners/settings.js';
import { match } from '../../lib/pipeline/match.js';
import { matchRoute } from '../../lib/routing/route-table.js';
import { NO_HTTP_ROUTE, REFUSE_BY_ROUTE_ACCESS_LIST, UNRECOGNIZED_NAME } from '../../lib/targets/refuse.js';
import type { ClientRequest } from '../../lib/pipeline/preamble.js';
import { NO_TLS_MATERIAL } from '../../lib/tls/certificates.js';
import { RecordingObserver } from '../helpers/observer.js';

const config = parseConfig(
  `
listeners:
  - name: public
    listen: 127.0.0.1:0
    routes:
      - hostnames: [app.example.com]
        backends: [127.0.0.1:1001]
      - hostnames: [app.example.com]
        alpn: [acme-tls/1]
        backends: [127.0.0.1:1002]
      - hostnames: ["*.example.com"]
        backends: [127.0.0.1:1003]
      - hostnames: [private.example.com]
        allow: [10.0.0.0/8]
        backends: [127.0.0.1:1004]
  - name: strict
    listen: 127.0.0.1:0
    routes:
      - hostnames: [only.example.com]
        backends: [127.0.0.1:1005]
    default:
      backends: [127.0.0.1:1006]
`,
  'match.yaml',
);
const registry = new BackendRegistry(new RecordingObserver());
const [publicSettings, strictSettings] = config.listeners.map((listener) =>
  listenerSettings(listener, { registry, tls: NO_TLS_MATERIAL, resolver: new HostResolver() }),
) as [ReturnType<typeof listenerSettings>, ReturnType<typeof listenerSettings>];

const request = (serverName: string | null, alpn: string[] = []): ClientRequest => ({ serverName, alpn, path: null });
/** The target of the route that `pattern` names (a wildcard is looked up with a name below it). */
const targetOf = (pattern: string, alpn: string[] = []) => matchRoute(publicSettings.routes, pattern.replace(/^\*\./, 'x.'), alpn)?.route.target;

t.test('each route’s own target, with the pattern that decided', async (t) => {
  t.same(match(publicSettings, request('app.example.com'), '192.0.2.1'), { target: targetOf('app.example.com'), route: 'app.example.com' });
  t.same(match(publicSettings, request('app.example.com', ['acme-tls/1']), '192.0.2.1'), {
    target: targetOf('app.example.com', ['acme-tls/1']),
    route: 'app.example.com',
  });
  t.same(match(publicSettings, request('a.b.example.com'), '192.0.2.1'), { target: targetOf('*.example.com'), route: '*.example.com' });
  t.not(targetOf('app.example.com'), targetOf('*.example.com'), 'routes have targets of their own');
});

t.test('no route and no default: the unrecognized_name answer, no pattern', async (t) => {
  t.same(match(publicSettings, request('example.org'), '192.0.2.1'), { target: UNRECOGNIZED_NAME, route: null });
  t.same(match(publicSettings, request(null), '192.0.2.1'), { target: UNRECOGNIZED_NAME, route: null }, 'no SNI either');
});

t.test('the default route for no SNI or no match', async (t) => {
  const fallback = strictSettings.routes.fallback!.route.target;
  t.same(match(strictSettings, request(null), '192.0.2.1'), { target: fallback, route: 'default' });
  t.same(match(strictSettings, request('other.example.com'), '192.0.2.1'), { target: fallback, route: 'default' });
});

t.test('a route’s access list: refused with the route still named', async (t) => {
  t.same(match(publicSettings, request('private.example.com'), '192.0.2.1'), { target: REFUSE_BY_ROUTE_ACCESS_LIST, route: 'private.example.com' });
  t.same(match(publicSettings, request('private.example.com'), '10.1.2.3'), { target: targetOf('private.example.com'), route: 'private.example.com' });
});

t.test('pure: the same inputs give the same answer, and nothing is built per call', async (t) => {
  const first = match(publicSettings, request('x.example.com'), '192.0.2.1');
  const second = match(publicSettings, request('x.example.com'), '192.0.2.1');
  t.equal(first.target, second.target, 'the same target object');
});

// ---- plain-HTTP listeners: the Host routes, an ACME challenge path picks the certificate manager ----

const httpConfig = parseConfig(
  `
listeners:
  - name: web
    listen: 127.0.0.1:0
    protocol: http
    routes:
      - hostnames: [app.example.com]
        acmeChallenge: [127.0.0.1:2001]
        backends: [127.0.0.1:2002]
      - hostnames: ["*.example.com"]
        redirect: https
      - hostnames: [private.example.com]
        allow: [10.0.0.0/8]
        acmeChallenge: [127.0.0.1:2001]
        backends: [127.0.0.1:2003]
    default:
      redirect: https
      acmeChallenge: [127.0.0.1:2004]
  - name: web-strict
    listen: 127.0.0.1:0
    protocol: http
    routes:
      - hostnames: [only.example.com]
        backends: [127.0.0.1:2005]
`,
  'match-http.yaml',
);
const [webSettings, webStrictSettings] = httpConfig.listeners.map((listener) =>
  listenerSettings(listener, { registry, tls: NO_TLS_MATERIAL, resolver: new HostResolver() }),
) as [ReturnType<typeof listenerSettings>, ReturnType<typeof listenerSettings>];
const get = (host: string, path: string): ClientRequest => ({ serverName: host, alpn: [], path });
const webRoute = (pattern: string) => matchRoute(webSettings.routes, pattern.replace(/^\*\./, 'x.'), [])!.route;

t.test('http: the Host picks the route by the same rules (exact, longest wildcard, default)', async (t) => {
  t.same(match(webSettings, get('app.example.com', '/'), '192.0.2.1'), { target: webRoute('app.example.com').target, route: 'app.example.com' });
  t.same(match(webSettings, get('www.example.com', '/'), '192.0.2.1'), { target: webRoute('*.example.com').target, route: '*.example.com' });
  const fallback = webSettings.routes.fallback!.route;
  t.same(match(webSettings, get('example.org', '/'), '192.0.2.1'), { target: fallback.target, route: 'default' });
  t.same(match(webSettings, get('192.0.2.80', '/'), '192.0.2.1'), { target: fallback.target, route: 'default' }, 'an IPv4 address');
  t.same(match(webSettings, get('[2001:db8::1]', '/'), '192.0.2.1'), { target: fallback.target, route: 'default' }, 'an IPv6 address');
  t.same(match(webStrictSettings, get('example.org', '/'), '192.0.2.1'), { target: NO_HTTP_ROUTE, route: null }, 'no route, no default: 404');
});

t.test('http: ACME challenges go to the route’s certificate manager, everything else follows the route', async (t) => {
  const app = webRoute('app.example.com');
  t.ok(app.acmeChallenge && app.acmeChallenge !== app.target, 'a target of its own');
  const challenge = '/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';
  t.same(match(webSettings, get('app.example.com', challenge), '192.0.2.1'), { target: app.acmeChallenge, route: 'app.example.com' });
  for (const path of ['/', '/.well-known/acme-challenge', '/.well-known/other', '/x/.well-known/acme-challenge/t', '/.WELL-KNOWN/acme-challenge/t', '*']) {
    t.same(match(webSettings, get('app.example.com', path), '192.0.2.1'), { target: app.target, route: 'app.example.com' }, path);
  }
  const fallback = webSettings.routes.fallback!.route;
  t.same(match(webSettings, get('other.org', challenge), '192.0.2.1'), { target: fallback.acmeChallenge, route: 'default' }, 'beside a redirect');
  t.same(match(webSettings, get('other.org', '/page'), '192.0.2.1'), { target: fallback.target, route: 'default' }, 'the rest is redirected');
  t.same(
    match(webSettings, get('www.example.com', challenge), '192.0.2.1'),
    { target: webRoute('*.example.com').target, route: '*.example.com' },
    'a route without acmeChallenge redirects challenges too',
  );
  t.same(
    match(webSettings, get('private.example.com', challenge), '192.0.2.1'),
    { target: REFUSE_BY_ROUTE_ACCESS_LIST, route: 'private.example.com' },
    "the route's access list applies to challenges as well",
  );
  t.same(match(publicSettings, { serverName: 'app.example.com', alpn: [], path: null }, '192.0.2.1').route, 'app.example.com', 'no path (TLS): the route');
});
