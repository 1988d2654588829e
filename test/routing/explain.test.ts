// explainRoute() (lib/routing/explain.ts): pure, from a listener's config and what a client
// would send to the route that wins, the rule that decided, every other pattern that matches,
// the access verdicts and the target. One test per precedence rule, then a cross-check against
// match(), which the proxy runs for real connections.
import t from 'tap';
import { BackendRegistry } from '../../lib/backends/health.js';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { parseConfig } from '../../lib/config/load.js';
import type { ListenerConfig } from '../../lib/config/types.js';
import { listenerSettings } from '../../lib/listeners/settings.js';
import { match } from '../../lib/pipeline/match.js';
import { explainRoute, type RouteQuery } from '../../lib/routing/explain.js';
import { NO_HTTP_ROUTE, REFUSE_BY_ROUTE_ACCESS_LIST, UNRECOGNIZED_NAME } from '../../lib/targets/refuse.js';
import { NO_TLS_MATERIAL } from '../../lib/tls/certificates.js';
import { RecordingObserver } from '../helpers/observer.js';

const config = parseConfig(
  `
listeners:
  - name: public
    listen: 127.0.0.1:8443
    routes:
      - hostnames: [app.example.com]
        backends: [127.0.0.1:1001, { address: 127.0.0.1:1002, weight: 3, proxyProtocol: v2 }]
      - hostnames: [app.example.com]
        alpn: [acme-tls/1]
        backends: [127.0.0.1:1010]
      - hostnames: [h2only.example.com]
        alpn: [h2]
        backends: [127.0.0.1:1011]
      - hostnames: ["*.example.com"]
        balance: leastconn
        backends: [127.0.0.1:1003]
      - hostnames: ["*.b.example.com"]
        backends: [127.0.0.1:1004]
      - hostnames: [private.example.com]
        allow: [10.0.0.0/8]
        deny: [10.9.0.0/16]
        backends: [127.0.0.1:1005]
      - hostnames: [local.example.com]
        tls: internal
        backends: [127.0.0.1:1006]
  - name: guarded
    listen: 127.0.0.1:8444
    allow: [192.0.2.0/24]
    routes:
      - hostnames: [app.example.com]
        backends: [127.0.0.1:1007]
    default:
      backends: [127.0.0.1:1008]
  - name: web
    listen: 127.0.0.1:8080
    protocol: http
    routes:
      - hostnames: [app.example.com]
        acmeChallenge: [127.0.0.1:8089]
        backends: [127.0.0.1:9000]
      - hostnames: ["*.example.com"]
        redirect: https
        redirectPort: 8443
`,
  'explain.yaml',
);
const [publicListener, guarded, web] = config.listeners as [ListenerConfig, ListenerConfig, ListenerConfig];

const query = (serverName: string | null, alpn: string[] = [], client: string | null = null): RouteQuery => ({ serverName, alpn, client });
const patterns = (listener: ListenerConfig, q: RouteQuery): string[] =>
  explainRoute(listener, q).candidates.map((candidate) => (candidate.alpn.length > 0 ? `${candidate.pattern} [${candidate.alpn}]` : candidate.pattern));

t.test('an exact name wins, and outranks the wildcards that also match', async (t) => {
  const explanation = explainRoute(publicListener, query('app.example.com'));
  t.equal(explanation.rule, 'exact');
  t.equal(explanation.result, 'routed');
  t.equal(explanation.answer, null);
  t.strictSame(explanation.candidates, [
    { route: 0, pattern: 'app.example.com', alpn: [] },
    { route: 3, pattern: '*.example.com', alpn: [] },
  ]);
  t.strictSame(explanation.target, {
    kind: 'passthrough',
    certificates: null,
    backendTls: false,
    redirectPort: null,
    balance: 'roundrobin',
    backends: [
      { address: '127.0.0.1:1001', weight: 1, proxyProtocol: null },
      { address: '127.0.0.1:1002', weight: 3, proxyProtocol: 'v2' },
    ],
    acmeChallenge: [],
  });
  t.strictSame(explanation.listenerAccess, { lists: false });
  t.strictSame(explanation.routeAccess, { lists: false });
});

t.test('the longest wildcard wins over shorter ones', async (t) => {
  const explanation = explainRoute(publicListener, query('x.b.example.com'));
  t.equal(explanation.rule, 'wildcard');
  t.strictSame(patterns(publicListener, query('x.b.example.com')), ['*.b.example.com', '*.example.com']);
  t.strictSame(patterns(publicListener, query('b.example.com')), ['*.example.com'], 'a wildcard never matches its own suffix');
  t.equal(explanation.target?.backends[0]?.address, '127.0.0.1:1004');
});

t.test('ALPN: a route limited to a protocol the client offers beats the same name without ALPN', async (t) => {
  const explanation = explainRoute(publicListener, query('app.example.com', ['acme-tls/1']));
  t.equal(explanation.rule, 'exact');
  t.strictSame(patterns(publicListener, query('app.example.com', ['acme-tls/1'])), ['app.example.com [acme-tls/1]', 'app.example.com', '*.example.com']);
  t.strictSame(explanation.skippedForAlpn, []);
  t.equal(explanation.target?.backends[0]?.address, '127.0.0.1:1010');
});

t.test('ALPN: routes for protocols the client does not offer are skipped, and said so', async (t) => {
  const plain = explainRoute(publicListener, query('app.example.com', ['h2']));
  t.strictSame(plain.skippedForAlpn, [{ route: 1, pattern: 'app.example.com', alpn: ['acme-tls/1'] }]);
  t.equal(plain.candidates[0]?.route, 0, 'the route without ALPN');

  const fellThrough = explainRoute(publicListener, query('h2only.example.com'));
  t.equal(fellThrough.rule, 'wildcard', 'a name whose only route needs ALPN h2 falls to the wildcard');
  t.strictSame(fellThrough.skippedForAlpn, [{ route: 2, pattern: 'h2only.example.com', alpn: ['h2'] }]);
  t.equal(explainRoute(publicListener, query('h2only.example.com', ['h2'])).rule, 'exact', 'offered, it wins');
});

t.test('the default route: for no server name and for a name no route matches', async (t) => {
  const none = explainRoute(guarded, query(null, [], '192.0.2.7'));
  t.equal(none.rule, 'default');
  t.strictSame(none.candidates, [{ route: null, pattern: 'default', alpn: [] }]);
  const other = explainRoute(guarded, query('other.example.org', [], '192.0.2.7'));
  t.equal(other.rule, 'default');
  t.equal(other.target?.backends[0]?.address, '127.0.0.1:1008');
  t.strictSame(patterns(guarded, query('app.example.com')), ['app.example.com', 'default'], 'the default outranked by a name');
});

t.test('no route and no default: the answer the listener kind gives', async (t) => {
  const tls = explainRoute(publicListener, query('example.org'));
  t.equal(tls.rule, 'none');
  t.equal(tls.result, 'no_route');
  t.equal(tls.answer, 'the client gets a fatal unrecognized_name alert');
  t.equal(tls.target, null);
  t.equal(explainRoute(publicListener, query(null)).result, 'no_route', 'no SNI either');
  const http = explainRoute(web, query('example.org'));
  t.equal(http.result, 'no_route');
  t.equal(http.answer, 'the client gets 404 Not Found');
});

t.test("a route's allow/deny: allowed, denied (deny wins over allow), or depends on the client", async (t) => {
  const allowed = explainRoute(publicListener, query('private.example.com', [], '10.1.2.3'));
  t.equal(allowed.result, 'routed');
  t.strictSame(allowed.routeAccess, { lists: true, allow: ['10.0.0.0/8'], deny: ['10.9.0.0/16'], allowed: true });
  const denied = explainRoute(publicListener, query('private.example.com', [], '10.9.1.1'));
  t.equal(denied.result, 'route_access_list');
  t.equal(denied.answer, 'the connection is closed without an answer');
  t.equal(denied.target?.backends[0]?.address, '127.0.0.1:1005', 'the route that refused is still named');
  const unknown = explainRoute(publicListener, query('private.example.com'));
  t.equal(unknown.result, 'routed', 'without a client address the route is found');
  t.equal(unknown.routeAccess.lists && unknown.routeAccess.allowed, null);
});

t.test("the listener's allow/deny comes first: a refused client is never routed", async (t) => {
  const refused = explainRoute(guarded, query('app.example.com', [], '198.51.100.1'));
  t.equal(refused.result, 'listener_access_list');
  t.strictSame(refused.listenerAccess, { lists: true, allow: ['192.0.2.0/24'], deny: [], allowed: false });
  t.equal(refused.answer, 'the connection is closed without an answer');
  t.equal(explainRoute(guarded, query('app.example.com', [], '192.0.2.1')).result, 'routed');
});

t.test('target kinds: terminate (local CA), redirect, and ACME challenge backends', async (t) => {
  const terminate = explainRoute(publicListener, query('local.example.com'));
  t.equal(terminate.target?.kind, 'terminate');
  t.equal(terminate.target?.certificates, 'internal');
  const redirect = explainRoute(web, query('www.example.com'));
  t.equal(redirect.target?.kind, 'redirect');
  t.equal(redirect.target?.redirectPort, 8443);
  t.strictSame(redirect.target?.backends, []);
  const acme = explainRoute(web, query('app.example.com'));
  t.strictSame(acme.target?.acmeChallenge, ['127.0.0.1:8089']);
});

t.test('plain-HTTP listeners ignore ALPN: their clients send none', async (t) => {
  const explanation = explainRoute(web, query('app.example.com', ['h2']));
  t.strictSame(explanation.alpn, []);
  t.equal(explanation.protocol, 'http');
  t.equal(explanation.rule, 'exact');
});

t.test('agrees with match(), which routes real connections, on every name, ALPN and client', async (t) => {
  const registry = new BackendRegistry(new RecordingObserver());
  const names = [null, 'app.example.com', 'x.b.example.com', 'b.example.com', 'h2only.example.com', 'private.example.com', 'local.example.com', 'example.org'];
  const offers = [[], ['h2'], ['acme-tls/1'], ['h2', 'acme-tls/1']];
  const clients = ['10.1.2.3', '10.9.1.1', '192.0.2.1'];
  const disagreements: string[] = [];
  let checked = 0;
  for (const listener of [publicListener, web]) {
    const settings = listenerSettings(listener, { registry, tls: NO_TLS_MATERIAL, resolver: new HostResolver() });
    for (const serverName of names) {
      for (const alpn of offers) {
        for (const client of clients) {
          const actual = match(settings, { serverName, alpn: listener.protocol === 'http' ? [] : alpn, path: null }, client);
          const explained = explainRoute(listener, { serverName, alpn, client });
          const refusedByRoute = actual.target === REFUSE_BY_ROUTE_ACCESS_LIST;
          const noRoute = actual.target === UNRECOGNIZED_NAME || actual.target === NO_HTTP_ROUTE;
          const expected = `${actual.route} ${refusedByRoute ? 'route_access_list' : noRoute ? 'no_route' : 'routed'}`;
          const got = `${explained.candidates[0]?.pattern ?? null} ${explained.result}`;
          if (got !== expected) disagreements.push(`${listener.name} ${serverName} [${alpn}] ${client}: match ${expected}, explain ${got}`);
          checked++;
        }
      }
    }
  }
  t.equal(checked, 2 * names.length * offers.length * clients.length, 'every combination checked');
  t.strictSame(disagreements, [], 'the same pattern and the same outcome each time');
});
