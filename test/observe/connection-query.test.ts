// The admin endpoint's connection queries (lib/observe/connection-query.ts),
// pure: strict parsing of filters, page size and cursor; the close request's
// required reason and filter; filter matching; paging over a set that changes
// between pages.
import fc from 'fast-check';
import t from 'tap';
import {
  connectionPage,
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  matchesFilter,
  parseCloseRequest,
  parseConnectionQuery,
} from '../../lib/observe/connection-query.js';
import type { ConnectionSnapshot } from '../../lib/pipeline/record.js';

function snapshot(id: number, fields: Partial<ConnectionSnapshot> = {}): ConnectionSnapshot {
  return {
    id,
    listener: 'public',
    client: '192.0.2.1:50000',
    sni: 'app.example.com',
    alpn: ['h2'],
    route: 'app.example.com',
    backend: '10.0.0.1:443',
    state: 'relaying',
    bytesFromClient: 0,
    bytesToClient: 0,
    ageMs: 0,
    ...fields,
  };
}

const params = (text: string): URLSearchParams => new URLSearchParams(text);

t.test('parseConnectionQuery', async (t) => {
  t.same(parseConnectionQuery(params('')), { filter: {}, limit: DEFAULT_PAGE_SIZE, after: 0 }, 'defaults: the first page of 100');
  t.same(parseConnectionQuery(params('listener=public&sni=App.Example.COM.&backend=10.0.0.1:443&route=*.example.com&id=12&limit=1000&after=40')), {
    filter: { id: 12, listener: 'public', backend: '10.0.0.1:443', route: '*.example.com', sni: 'app.example.com' },
    limit: MAX_PAGE_SIZE,
    after: 40,
  });
  t.equal(parseConnectionQuery(params('limit=0')).limit, 0, 'limit 0: counts only');
  for (const [query, message] of [
    ['limit=1001', /limit must be an integer from 0 to 1000/],
    ['limit=', /limit must be/],
    ['limit=1e3', /limit must be/],
    ['after=-5', /after must be/],
    ['id=0x10', /id must be/],
    ['state=relaying', /unknown parameter "state"/],
    ['listener=a&listener=b', /given more than once/],
    ['reason=why', /unknown parameter "reason"/],
  ] as const) {
    t.throws(() => parseConnectionQuery(params(query)), { name: 'AdminRequestError', code: 'SNIP_ADMIN_BAD_REQUEST', message }, query);
  }
});

t.test('parseCloseRequest: a reason (trimmed, bounded) and at least one filter', async (t) => {
  t.same(parseCloseRequest(params('backend=10.0.0.2:443&reason=%20disk%20replacement%20')), {
    filter: { backend: '10.0.0.2:443' },
    reason: 'disk replacement',
  });
  for (const [query, message] of [
    ['sni=app.example.com', /reason is required/],
    ['sni=app.example.com&reason=', /reason is required/],
    [`sni=app.example.com&reason=${'r'.repeat(201)}`, /longer than 200/],
    ['reason=all%20of%20them', /at least one filter/],
    ['sni=app.example.com&reason=x&after=3', /unknown parameter "after"/],
    ['sni=app.example.com&reason=x&reason=y', /more than once/],
  ] as const) {
    t.throws(() => parseCloseRequest(params(query)), { code: 'SNIP_ADMIN_BAD_REQUEST', message }, query);
  }
});

t.test('matchesFilter: every field given must match; sni exact or *.suffix as routes read it', async (t) => {
  const connection = snapshot(5, { sni: 'api.eu.example.com', route: '*.example.com' });
  t.ok(matchesFilter(connection, {}), 'no filter: everything');
  t.ok(matchesFilter(connection, { listener: 'public', backend: '10.0.0.1:443', route: '*.example.com', id: 5 }));
  t.notOk(matchesFilter(connection, { listener: 'public', backend: '10.0.0.9:443' }), 'one field off: no match');
  t.notOk(matchesFilter(connection, { id: 6 }));
  t.ok(matchesFilter(connection, { sni: 'api.eu.example.com' }));
  t.notOk(matchesFilter(connection, { sni: 'eu.example.com' }), 'exact means exact');
  t.ok(matchesFilter(connection, { sni: '*.example.com' }), 'a wildcard: any depth below');
  t.ok(matchesFilter(connection, { sni: '*.eu.example.com' }));
  t.notOk(matchesFilter(snapshot(1, { sni: 'example.com' }), { sni: '*.example.com' }), 'never the suffix itself');
  t.notOk(matchesFilter(snapshot(1, { sni: 'badexample.com' }), { sni: '*.example.com' }), 'a label boundary, not a string suffix');
  t.notOk(matchesFilter(snapshot(1, { sni: null }), { sni: '*.example.com' }), 'no SNI matches no sni filter');
  t.notOk(matchesFilter(snapshot(1, { route: null }), { route: 'default' }), 'not routed yet: no route filter matches');
});

t.test('connectionPage: oldest first, `limit` per page, the cursor, the total and counts by route over all pages', async (t) => {
  const open = [snapshot(9, { route: 'default' }), snapshot(3), snapshot(7, { listener: 'internal' }), snapshot(4, { route: null })];
  const first = connectionPage(open, { filter: {}, limit: 2, after: 0 });
  t.same(
    first.connections.map((connection) => connection.id),
    [3, 4],
  );
  t.same([first.total, first.limit, first.next], [4, 2, 4]);
  t.same(first.routes, [
    { listener: 'internal', route: 'app.example.com', open: 1 },
    { listener: 'public', route: null, open: 1 },
    { listener: 'public', route: 'app.example.com', open: 1 },
    { listener: 'public', route: 'default', open: 1 },
  ]);
  const second = connectionPage(open, { filter: {}, limit: 2, after: first.next! });
  t.same(
    second.connections.map((connection) => connection.id),
    [7, 9],
  );
  t.equal(second.next, null, 'exactly filled: no further page');
  t.same(connectionPage([], { filter: {}, limit: 100, after: 0 }), { total: 0, limit: 100, connections: [], next: null, routes: [] });
});

t.test('following `next` visits every connection open throughout exactly once, whatever opens and closes between pages (property)', async (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 500 }), { maxLength: 60 }),
      fc.integer({ min: 1, max: 7 }),
      fc.array(fc.boolean(), { maxLength: 60 }),
      (ids, limit, closes) => {
        let open = ids.map((id) => snapshot(id));
        let nextId = 501;
        const seen: number[] = [];
        let after = 0;
        for (let page = 0; page < 200; page++) {
          const result = connectionPage(open, { filter: {}, limit, after });
          if (result.connections.length > limit) return false;
          seen.push(...result.connections.map((connection) => connection.id));
          // Between pages one connection closes (or not) and a new one opens.
          if (closes[page] && open.length > 0) open = open.slice(1);
          open = [...open, snapshot(nextId++)];
          if (result.next === null) break;
          after = result.next;
        }
        const stayed = ids.filter((id) => open.some((connection) => connection.id === id));
        return new Set(seen).size === seen.length && stayed.every((id) => seen.includes(id)) && seen.every((id, index) => index === 0 || seen[index - 1]! < id);
      },
    ),
  );
  t.pass('property held');
});
