// Socket activation (lib/runtime/socket-activation.ts): reading systemd's
// LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES, and pairing inherited listening
// sockets with the config's listeners by name or by address.
import t, { type Test } from 'tap';
import net from 'node:net';
import { parseConfig } from '../../lib/config/load.js';
import type { ListenAddress, ListenerConfig } from '../../lib/config/types.js';
import { matchInheritedSockets, passedDescriptors, type InheritedSocket } from '../../lib/runtime/socket-activation.js';

const PID = 4242;

t.test('passedDescriptors', async (t) => {
  t.test('nothing passed: no LISTEN_PID, or it is another process', async (t) => {
    t.same(passedDescriptors({}, PID), []);
    t.same(passedDescriptors({ LISTEN_FDS: '2' }, PID), [], 'LISTEN_FDS without LISTEN_PID');
    t.same(passedDescriptors({ LISTEN_PID: '4243', LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b' }, PID), [], 'LISTEN_PID of another process (a parent’s leftovers)');
    t.same(passedDescriptors({ LISTEN_PID: '', LISTEN_FDS: '1' }, PID), [], 'empty LISTEN_PID');
    t.same(passedDescriptors({ LISTEN_PID: 'abc', LISTEN_FDS: '1' }, PID), [], 'LISTEN_PID not a number');
  });

  t.test('bad or empty counts: nothing', async (t) => {
    for (const count of [undefined, '', '0', '-1', '1.5', 'two']) {
      const env: NodeJS.ProcessEnv = { LISTEN_PID: String(PID) };
      if (count !== undefined) env.LISTEN_FDS = count;
      t.same(passedDescriptors(env, PID), [], `LISTEN_FDS=${JSON.stringify(count)}`);
    }
  });

  t.test('descriptors from 3 on, named by LISTEN_FDNAMES', async (t) => {
    t.same(passedDescriptors({ LISTEN_PID: String(PID), LISTEN_FDS: '1', LISTEN_FDNAMES: 'public' }, PID), [{ fd: 3, name: 'public' }]);
    t.same(passedDescriptors({ LISTEN_PID: String(PID), LISTEN_FDS: '3', LISTEN_FDNAMES: 'public:internal:admin' }, PID), [
      { fd: 3, name: 'public' },
      { fd: 4, name: 'internal' },
      { fd: 5, name: 'admin' },
    ]);
  });

  t.test('names missing: null', async (t) => {
    t.same(
      passedDescriptors({ LISTEN_PID: String(PID), LISTEN_FDS: '2' }, PID),
      [
        { fd: 3, name: null },
        { fd: 4, name: null },
      ],
      'no LISTEN_FDNAMES',
    );
    t.same(
      passedDescriptors({ LISTEN_PID: String(PID), LISTEN_FDS: '3', LISTEN_FDNAMES: 'public' }, PID),
      [
        { fd: 3, name: 'public' },
        { fd: 4, name: null },
        { fd: 5, name: null },
      ],
      'fewer names than descriptors',
    );
    t.same(
      passedDescriptors({ LISTEN_PID: String(PID), LISTEN_FDS: '3', LISTEN_FDNAMES: 'a::c' }, PID),
      [
        { fd: 3, name: 'a' },
        { fd: 4, name: null },
        { fd: 5, name: 'c' },
      ],
      'an empty name in the middle',
    );
  });

  t.test('more names than descriptors: only LISTEN_FDS count', async (t) => {
    t.same(passedDescriptors({ LISTEN_PID: String(PID), LISTEN_FDS: '1', LISTEN_FDNAMES: 'a:b:c' }, PID), [{ fd: 3, name: 'a' }]);
  });

  t.test('reads only the environment it is given', async (t) => {
    t.same(passedDescriptors({ LISTEN_PID: String(process.pid), LISTEN_FDS: '1' }, process.pid), [{ fd: 3, name: null }]);
  });
});

/** Inherited sockets as adoptPassedSockets describes them (matching only looks at name and address). */
async function inherited(t: Test, name: string | null, address?: ListenAddress): Promise<InheritedSocket> {
  const handle = new net.Socket();
  t.teardown(() => handle.destroy());
  return { fd: -1, handle, name, address: address ?? { host: '127.0.0.1', port: 9100 } };
}

function listeners(yaml: string[]): ListenerConfig[] {
  return parseConfig(`listeners:\n${yaml.join('\n')}\n`, 'sockets.yaml').listeners;
}

const route = ['    default:', '      backends: [127.0.0.1:9]'];

t.test('matchInheritedSockets', async (t) => {
  t.test('no sockets: nothing matched, no error', async (t) => {
    const config = listeners(['  - name: public', '    listen: 127.0.0.1:8443', ...route]);
    t.same([...matchInheritedSockets(config, []).entries()], []);
  });

  t.test('by name (LISTEN_FDNAMES = listener name), whatever the address', async (t) => {
    const config = listeners(['  - name: public', '    listen: :443', ...route, '  - name: internal', '    listen: 127.0.0.1:8443', ...route]);
    const pub = await inherited(t, 'public');
    const internal = await inherited(t, 'internal');
    const matched = matchInheritedSockets(config, [internal, pub]);
    t.equal(matched.size, 2);
    t.equal(matched.get('public'), pub.handle);
    t.equal(matched.get('internal'), internal.handle);
  });

  t.test('by address when the name matches no listener', async (t) => {
    const socket = await inherited(t, 'sni-passthrough.socket', { host: '127.0.0.1', port: 8443 });
    const config = listeners(['  - name: other', '    listen: 127.0.0.1:9443', ...route, '  - name: public', '    listen: 127.0.0.1:8443', ...route]);
    const matched = matchInheritedSockets(config, [socket]);
    t.same([...matched.keys()], ['public']);
    t.equal(matched.get('public'), socket.handle);
  });

  t.test('by address without a name', async (t) => {
    const socket = await inherited(t, null, { host: '::1', port: 8443 });
    const config = listeners(['  - name: v4', '    listen: 127.0.0.1:8443', ...route, '  - name: v6', '    listen: "[::1]:8443"', ...route]);
    t.same([...matchInheritedSockets(config, [socket]).keys()], ['v6'], 'the same port on another host is not a match');
  });

  t.test('all interfaces: a listener on ":443" takes a socket on a specific address, and the reverse', async (t) => {
    const specific = await inherited(t, null, { host: '192.0.2.10', port: 443 });
    t.same([...matchInheritedSockets(listeners(['  - name: public', '    listen: :443', ...route]), [specific]).keys()], ['public']);
    const wildcard = await inherited(t, null, { host: null, port: 443 });
    t.same([...matchInheritedSockets(listeners(['  - name: public', '    listen: 127.0.0.1:443', ...route]), [wildcard]).keys()], ['public']);
    t.same([...matchInheritedSockets(listeners(['  - name: public', '    listen: :443', ...route]), [wildcard]).keys()], ['public']);
  });

  t.test('a name beats an address', async (t) => {
    // The socket is on 127.0.0.1:8443, which is listener "a"'s address, but it is named "b".
    const socket = await inherited(t, 'b', { host: '127.0.0.1', port: 8443 });
    const config = listeners(['  - name: a', '    listen: 127.0.0.1:8443', ...route, '  - name: b', '    listen: 127.0.0.1:9443', ...route]);
    t.same([...matchInheritedSockets(config, [socket]).keys()], ['b']);
  });

  t.test('two sockets, two listeners: each listener takes one', async (t) => {
    const first = await inherited(t, null, { host: null, port: 443 });
    const second = await inherited(t, null, { host: null, port: 443 });
    const config = listeners(['  - name: a', '    listen: 127.0.0.1:443', ...route, '  - name: b', '    listen: "[::1]:443"', ...route]);
    const matched = matchInheritedSockets(config, [first, second]);
    t.equal(matched.get('a'), first.handle);
    t.equal(matched.get('b'), second.handle);
  });

  t.test('a socket no listener claims is an error naming it', async (t) => {
    const config = listeners(['  - name: public', '    listen: 127.0.0.1:8443', ...route]);
    const stray = await inherited(t, 'metrics', { host: '127.0.0.1', port: 9100 });
    t.throws(() => matchInheritedSockets(config, [stray]), { message: /inherited socket "metrics" on 127\.0\.0\.1:9100 matches no listener/ });

    const unnamed = await inherited(t, null, { host: '::1', port: 9100 });
    t.throws(() => matchInheritedSockets(config, [unnamed]), {
      message: /^inherited socket on \[::1\]:9100 matches no listener: name the listener like the socket's FileDescriptorName or give it that address/,
    });

    const wildcard = await inherited(t, null, { host: null, port: 9100 });
    t.throws(
      () => matchInheritedSockets(config, [wildcard]),
      { message: /inherited socket on :9100 matches no listener/ },
      'all interfaces printed as ":port"',
    );
  });

  t.test('more sockets than listeners: the extra one is an error', async (t) => {
    const config = listeners(['  - name: public', '    listen: 127.0.0.1:8443', ...route]);
    const first = await inherited(t, 'public', { host: '127.0.0.1', port: 8443 });
    const second = await inherited(t, 'public', { host: '127.0.0.1', port: 8443 });
    t.throws(
      () => matchInheritedSockets(config, [first, second]),
      { message: /inherited socket "public" on 127\.0\.0\.1:8443 matches no listener/ },
      'one listener cannot take two sockets',
    );
  });

  t.test('a port-0 listener is matched by name only', async (t) => {
    const socket = await inherited(t, 'dev');
    const config = listeners(['  - name: dev', '    listen: 127.0.0.1:0', ...route]);
    t.same([...matchInheritedSockets(config, [socket]).keys()], ['dev']);
    const unnamed = await inherited(t, null);
    t.throws(() => matchInheritedSockets(config, [unnamed]), { message: /matches no listener/ }, 'port 0 is not the socket’s address');
  });

  t.test('the matched handle is the inherited one', async (t) => {
    const socket = await inherited(t, 'public');
    const matched = matchInheritedSockets(listeners(['  - name: public', '    listen: 127.0.0.1:0', ...route]), [socket]);
    t.equal(matched.get('public'), socket.handle);
  });
});
