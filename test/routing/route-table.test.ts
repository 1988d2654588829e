import fc from 'fast-check';
import t from 'tap';
import { buildRouteTable, matchRoute, type RouteTable } from '../../lib/routing/route-table.js';

interface TestRoute {
  name: string;
  hostnames: string[];
  alpn: string[];
}

const route = (name: string, hostnames: string[], alpn: string[] = []): TestRoute => ({ name, hostnames, alpn });
const fallback = route('default', []);

/** The name of the route chosen for `serverName`, and the pattern that chose it; null when none. */
function lookup(table: RouteTable<TestRoute>, serverName: string | null, alpn: string[] = []): [string, string] | null {
  const match = matchRoute(table, serverName, alpn);
  return match && [match.route.name, match.pattern];
}

t.test('exact names', async (t) => {
  const table = buildRouteTable([route('app', ['app.example.com']), route('other', ['other.example.com', 'example.com'])], fallback);
  t.strictSame(lookup(table, 'app.example.com'), ['app', 'app.example.com']);
  t.strictSame(lookup(table, 'other.example.com'), ['other', 'other.example.com']);
  t.strictSame(lookup(table, 'example.com'), ['other', 'example.com'], 'the apex as an exact name');
  t.strictSame(lookup(table, 'nope.example.com'), ['default', 'default'], 'no match: default');
});

t.test('an exact name beats any wildcard, whatever the order', async (t) => {
  for (const routes of [
    [route('wild', ['*.example.com', '*.a.example.com']), route('exact', ['b.a.example.com'])],
    [route('exact', ['b.a.example.com']), route('wild', ['*.a.example.com', '*.example.com'])],
  ]) {
    const table = buildRouteTable(routes, fallback);
    t.strictSame(lookup(table, 'b.a.example.com'), ['exact', 'b.a.example.com']);
    t.strictSame(lookup(table, 'c.a.example.com'), ['wild', '*.a.example.com']);
  }
});

t.test('the longest matching wildcard wins', async (t) => {
  const table = buildRouteTable([route('short', ['*.example.com']), route('long', ['*.dev.example.com']), route('longest', ['*.x.dev.example.com'])], fallback);
  t.strictSame(lookup(table, 'a.example.com'), ['short', '*.example.com']);
  t.strictSame(lookup(table, 'a.dev.example.com'), ['long', '*.dev.example.com']);
  t.strictSame(lookup(table, 'a.b.dev.example.com'), ['long', '*.dev.example.com'], 'any depth below');
  t.strictSame(lookup(table, 'a.x.dev.example.com'), ['longest', '*.x.dev.example.com']);
  t.strictSame(lookup(table, 'dev.example.com'), ['short', '*.example.com'], '*.dev.example.com does not match its apex, *.example.com does');
  t.strictSame(lookup(table, 'x.dev.example.com'), ['long', '*.dev.example.com']);
});

t.test('*.example.com: one or more labels in front, never the apex', async (t) => {
  const table = buildRouteTable([route('wild', ['*.example.com'])], fallback);
  t.strictSame(lookup(table, 'a.example.com'), ['wild', '*.example.com'], 'one label');
  t.strictSame(lookup(table, 'a.b.example.com'), ['wild', '*.example.com'], 'two labels');
  t.strictSame(lookup(table, 'a.b.c.d.example.com'), ['wild', '*.example.com'], 'four labels');
  t.strictSame(lookup(table, 'example.com'), ['default', 'default'], 'not the apex');
  t.strictSame(lookup(table, 'com'), ['default', 'default'], 'not the parent');
});

t.test('whole names only: no partial labels, no unanchored matches', async (t) => {
  const table = buildRouteTable([route('exact', ['example.com']), route('wild', ['*.example.com']), route('short', ['*.ample.com'])], null);
  for (const name of [
    'myexample.com',
    'xexample.com',
    'example.com.evil',
    'example.com.evil.net',
    'myexample.com.evil',
    'a.example.com.evil',
    'example.co',
    'example.comm',
    'xample.com',
    'example',
    'com',
  ]) {
    t.equal(matchRoute(table, name), null, name);
  }
  t.strictSame(lookup(table, 'a.example.com'), ['wild', '*.example.com'], '*.ample.com does not match inside the label "example"');
  t.strictSame(lookup(table, 'a.ample.com'), ['short', '*.ample.com']);
});

t.test('no SNI goes to the default route', async (t) => {
  const table = buildRouteTable([route('app', ['app.example.com'])], fallback);
  const byNull = matchRoute(table, null);
  t.equal(byNull?.route, fallback, 'null: the default route object itself');
  t.equal(byNull?.pattern, 'default');
  t.strictSame(lookup(table, ''), ['default', 'default'], 'empty name');
});

t.test('without a default: null', async (t) => {
  const table = buildRouteTable([route('app', ['app.example.com']), route('wild', ['*.example.com'])], null);
  t.equal(matchRoute(table, null), null, 'no SNI');
  t.equal(matchRoute(table, ''), null, 'empty SNI');
  t.equal(matchRoute(table, 'example.org'), null, 'no route');
  t.equal(matchRoute(table, 'example.com'), null, 'apex of a wildcard');
  t.strictSame(lookup(table, 'app.example.com'), ['app', 'app.example.com'], 'routes still match');
});

t.test('no routes at all', async (t) => {
  t.equal(matchRoute(buildRouteTable([], null), 'a.example.com'), null);
  t.strictSame(lookup(buildRouteTable([], fallback), 'a.example.com'), ['default', 'default']);
});

t.test('a route with several patterns reports the one that matched', async (t) => {
  const table = buildRouteTable([route('multi', ['app.example.com', '*.dev.example.com', '*.example.org'])], null);
  t.strictSame(lookup(table, 'app.example.com'), ['multi', 'app.example.com']);
  t.strictSame(lookup(table, 'x.dev.example.com'), ['multi', '*.dev.example.com']);
  t.strictSame(lookup(table, 'a.b.example.org'), ['multi', '*.example.org']);
});

t.test('*.com-style short suffixes and single-label names', async (t) => {
  const table = buildRouteTable([route('tld', ['*.com']), route('local', ['localhost']), route('dev', ['*.localhost'])], null);
  t.strictSame(lookup(table, 'example.com'), ['tld', '*.com']);
  t.strictSame(lookup(table, 'localhost'), ['local', 'localhost']);
  t.strictSame(lookup(table, 'app.localhost'), ['dev', '*.localhost']);
  t.equal(matchRoute(table, 'com'), null);
});

t.test('ALPN-limited routes (issue 4)', async (t) => {
  const acme = route('acme', ['app.example.com'], ['acme-tls/1']);
  const app = route('app', ['app.example.com']);
  const wildAcme = route('wild-acme', ['*.example.com'], ['acme-tls/1']);
  const table = buildRouteTable([app, acme, wildAcme], fallback);
  t.strictSame(lookup(table, 'app.example.com', ['acme-tls/1']), ['acme', 'app.example.com'], 'beats the same name without ALPN');
  t.strictSame(lookup(table, 'app.example.com', ['h2', 'acme-tls/1']), ['acme', 'app.example.com'], 'any offered protocol counts');
  t.strictSame(lookup(table, 'app.example.com', ['h2', 'http/1.1']), ['app', 'app.example.com'], 'other protocols: the plain route');
  t.strictSame(lookup(table, 'app.example.com'), ['app', 'app.example.com'], 'no ALPN offered: the plain route');
  t.strictSame(lookup(table, 'x.example.com', ['acme-tls/1']), ['wild-acme', '*.example.com'], 'on a wildcard');
  t.strictSame(lookup(table, 'x.example.com', ['h2']), ['default', 'default'], 'a pattern whose only route needs ALPN the client lacks does not match');
  t.strictSame(lookup(table, 'x.example.com'), ['default', 'default'], '…nor without ALPN');

  t.test('a non-matching ALPN-only exact name falls through to wildcards', async (t) => {
    const table = buildRouteTable([route('acme', ['app.example.com'], ['acme-tls/1']), route('wild', ['*.example.com'])], null);
    t.strictSame(lookup(table, 'app.example.com', ['h2']), ['wild', '*.example.com']);
    t.strictSame(lookup(table, 'app.example.com', ['acme-tls/1']), ['acme', 'app.example.com']);
  });

  t.test('a shorter wildcard with matching ALPN beats a longer one without it only if the longer has no plain route', async (t) => {
    const table = buildRouteTable(
      [route('long-acme', ['*.dev.example.com'], ['acme-tls/1']), route('short', ['*.example.com']), route('long', ['*.dev.example.com'])],
      null,
    );
    t.strictSame(lookup(table, 'x.dev.example.com', ['acme-tls/1']), ['long-acme', '*.dev.example.com']);
    t.strictSame(lookup(table, 'x.dev.example.com', ['h2']), ['long', '*.dev.example.com']);
  });
});

// Server names with empty labels (".example.com", "a..example.com") never reach the route table: the
// ClientHello parser rejects them as bad_server_name (see test/tls/client-hello.test.ts).

t.test('matches a tiny reference matcher on random names and patterns (property)', async (t) => {
  /** Obviously correct: exact first, else the longest wildcard suffix with at least one non-empty label in front, else the default. */
  function reference(routes: TestRoute[], serverName: string | null): [string, string] | null {
    if (serverName === null || serverName === '') return ['default', 'default'];
    let best: [string, string] | null = null;
    let bestLength = -1;
    for (const candidate of routes) {
      for (const pattern of candidate.hostnames) {
        if (pattern === serverName) return [candidate.name, pattern];
        if (pattern.startsWith('*.')) {
          const suffix = pattern.slice(1); // ".example.com"
          const front = serverName.slice(0, serverName.length - suffix.length);
          if (serverName.endsWith(suffix) && front.length > 0 && !front.startsWith('.') && !front.endsWith('.') && suffix.length > bestLength) {
            best = [candidate.name, pattern];
            bestLength = suffix.length;
          }
        }
      }
    }
    return best ?? ['default', 'default'];
  }

  // Few, short labels so names and patterns collide often.
  const label = fc.constantFrom('a', 'b', 'ab', 'ba', 'x');
  const name = fc.array(label, { minLength: 1, maxLength: 5 }).map((labels) => labels.join('.'));
  const pattern = fc.tuple(fc.boolean(), name).map(([wildcard, base]) => (wildcard ? `*.${base}` : base));
  const routes = fc.uniqueArray(pattern, { minLength: 0, maxLength: 12 }).chain((patterns) =>
    fc.array(fc.integer({ min: 0, max: 3 }), { minLength: patterns.length, maxLength: patterns.length }).map((owners) =>
      [0, 1, 2, 3]
        .map((owner) =>
          route(
            `r${owner}`,
            patterns.filter((_, index) => owners[index] === owner),
          ),
        )
        .filter((candidate) => candidate.hostnames.length > 0),
    ),
  );
  const serverName = fc.oneof(name, name, name, fc.constant(null), fc.constant(''));

  fc.assert(
    fc.property(routes, fc.array(serverName, { minLength: 1, maxLength: 10 }), (routeList, names) => {
      const forwards = buildRouteTable(routeList, fallback);
      const backwards = buildRouteTable([...routeList].reverse(), fallback);
      for (const candidate of names) {
        const expected = reference(routeList, candidate);
        const actual = lookup(forwards, candidate);
        if (actual?.[0] !== expected?.[0] || actual?.[1] !== expected?.[1]) {
          throw new Error(`${JSON.stringify(candidate)}: got ${JSON.stringify(actual)}, reference ${JSON.stringify(expected)}`);
        }
        const reversed = lookup(backwards, candidate);
        if (reversed?.[1] !== expected?.[1]) throw new Error(`${JSON.stringify(candidate)}: depends on route order (${JSON.stringify(reversed)})`);
      }
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass('matchRoute agrees with the reference on 2000 random route sets');
});

t.test('100,000 routes: every name found, with one probe per label whatever the number of routes', async (t) => {
  const count = 100_000;
  const routes = Array.from({ length: count }, (_, index) => route(`r${index}`, [`h${index}.example.com`, `*.w${index}.example.org`]));
  const big = buildRouteTable(routes, fallback);
  const small = buildRouteTable(routes.slice(0, 1), fallback);
  for (const index of [0, 1, 4_999, 50_000, count - 1]) {
    t.strictSame(lookup(big, `h${index}.example.com`), [`r${index}`, `h${index}.example.com`]);
    t.strictSame(lookup(big, `a.b.w${index}.example.org`), [`r${index}`, `*.w${index}.example.org`]);
  }
  t.strictSame(lookup(big, `h${count}.example.com`), ['default', 'default']);

  /** Map lookups for one match: wraps the table's maps' `get`. */
  const probes = (table: RouteTable<TestRoute>, serverName: string): number => {
    let calls = 0;
    for (const map of [table.exact, table.wildcard]) {
      const get = map.get.bind(map);
      map.get = (key) => {
        calls++;
        return get(key);
      };
    }
    matchRoute(table, serverName);
    for (const map of [table.exact, table.wildcard]) delete (map as Partial<Map<string, unknown>>).get;
    return calls;
  };
  const name = 'x.y.z.nowhere.example.net';
  t.equal(probes(big, name), probes(small, name), 'as many probes with 100,000 routes as with one');
  t.equal(probes(big, name), 1 + name.split('.').length - 1, 'the exact name, then each suffix');
});
