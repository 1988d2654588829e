// match() (lib/pipeline/match.ts): pure, from settings and what a client asked for to a target.
import t from 'tap';
import { BackendRegistry } from '../../lib/backends/health.js';
import { parseConfig } from '../../lib/config/load.js';
import { listenerSettings } from '../../lib/listeners/settings.js';
import { match } from '../../lib/pipeline/match.js';
import { matchRoute } from '../../lib/routing/route-table.js';
import { REFUSE_BY_ROUTE_ACCESS_LIST, UNRECOGNIZED_NAME } from '../../lib/targets/refuse.js';
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
const [publicSettings, strictSettings] = config.listeners.map((listener) => listenerSettings(listener, { registry, tls: NO_TLS_MATERIAL })) as [
  ReturnType<typeof listenerSettings>,
  ReturnType<typeof listenerSettings>,
];

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
