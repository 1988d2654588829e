// Backend names made from the name a route matched (lib/routing/backend-names.ts):
// the wildcard's labels, placeholders filled in, and every name that is not a
// plain DNS name refused, whatever bytes a ClientHello carried.
import t from 'tap';
import { parseHostTemplate } from '../../lib/config/values.js';
import { expandHostTemplate, wildcardLabels } from '../../lib/routing/backend-names.js';

t.test('the labels "*" matched, from the left', async (t) => {
  t.same(wildcardLabels('app.example.com', '*.example.com'), ['app']);
  t.same(wildcardLabels('a.b.example.com', '*.example.com'), ['a', 'b']);
  t.same(wildcardLabels('example.com', '*.example.com'), [], 'the suffix itself is not matched');
  t.same(wildcardLabels('app.example.com', 'app.example.com'), [], 'an exact pattern has none');
  t.same(wildcardLabels('app.example.org', '*.example.com'), [], 'another name');
  t.same(wildcardLabels('xexample.com', '*.example.com'), [], 'a suffix without its dot');
});

const fill = (template: string, serverName: string, pattern: string): string | null =>
  expandHostTemplate(parseHostTemplate(template), serverName, wildcardLabels(serverName, pattern));

t.test('placeholders filled in', async (t) => {
  t.equal(fill('{1}.internal', 'app.example.com', '*.example.com'), 'app.internal');
  t.equal(fill('{sni}', 'app.example.com', '*.example.com'), 'app.example.com');
  t.equal(fill('{sni}', 'exact.example.com', 'exact.example.com'), 'exact.example.com', '{sni} on an exact route');
  t.equal(fill('{2}.{1}.svc.cluster.local', 'web.shop.example.com', '*.example.com'), 'shop.web.svc.cluster.local');
  t.equal(fill('app-{1}.internal', 'blue.example.com', '*.example.com'), 'app-blue.internal', 'part of a label');
  t.equal(fill('{1}.internal', 'a.b.example.com', '*.example.com'), 'a.internal', 'labels past the highest placeholder are not used');
  t.equal(fill('{1}.internal', '0x7f000001.example.com', '*.example.com'), '0x7f000001.internal', 'a numeric-looking label is fine before a name');
});

t.test('a name that cannot fill the template is refused (null), never passed on', async (t) => {
  t.equal(fill('{2}.internal', 'app.example.com', '*.example.com'), null, '{2} where "*" matched one label');
  t.equal(fill('{1}.internal', 'app.example.com', 'app.example.com'), null, 'no wildcard labels at all');
  // The ClientHello parser allows any printable ASCII in a label: none of it may reach a resolver or a dial.
  for (const label of ['a:1', 'a/b', 'a%2f', 'a@b', 'a\\b', 'a*b', '{1}', 'a b', '-a', 'a-', 'a+b', 'a?b', 'a#b']) {
    t.equal(fill('{1}.internal', `${label}.example.com`, '*.example.com'), null, `label ${JSON.stringify(label)}`);
    t.equal(fill('{sni}', `${label}.example.com`, '*.example.com'), null, `{sni} with label ${JSON.stringify(label)}`);
  }
  t.equal(fill('{1}.internal', 'app.x:1.example.com', '*.example.com'), null, 'a bad label the template does not use still refuses the name');
  t.equal(fill('{1}', `${'a'.repeat(64)}.example.com`, '*.example.com'), null, 'a label longer than 63');
  t.equal(fill('{sni}.internal', `${'a.'.repeat(120)}example.com`, '*.example.com'), null, 'a name longer than 253');
});

t.test('a name the system resolver would read as an IPv4 address is refused', async (t) => {
  // getaddrinfo falls back to inet_aton: "0x7f000001" and "0x7f.1" are 127.0.0.1 to it.
  for (const name of ['2130706433.ip.example.com', '0x7f000001.ip.example.com', '0x7f.0x1.ip.example.com']) {
    const labels = wildcardLabels(name, '*.ip.example.com');
    const last = `{${labels.length}}`;
    const template = labels.map((_, index) => `{${index + 1}}`).join('.');
    t.equal(fill(template, name, '*.ip.example.com'), null, `${name} through ${template}`);
    t.equal(fill(last, name, '*.ip.example.com'), null, `${name} through ${last}`);
  }
  t.equal(fill('{1}.{2}.{3}.{4}', '10.0.0.5.ip.example.com', '*.ip.example.com'), null, 'four labels making an address');
  t.equal(fill('{1}.internal', '10.ip.example.com', '*.ip.example.com'), '10.internal', 'digits within a name are fine');
});
