// The `quic` key of a listener (issue 14): true, false or a mapping of
// limits; refused on http listeners with FILE:LINE:COL; shown by `check`.
import t from 'tap';
import { describeConfig } from '../../lib/config/describe.js';
import { DEFAULT_QUIC, parseConfig, parseConfigPrecisely } from '../../lib/config/load.js';
import { ConfigError } from '../../lib/errors.js';

const FILE = '/etc/sni-passthrough/proxy.yaml';

function listenerWith(quic: string, protocol = 'tls'): string {
  return ['listeners:', '  - listen: 127.0.0.1:8443', `    protocol: ${protocol}`, `    quic: ${quic}`, '    default: { backends: [127.0.0.1:9443] }', ''].join(
    '\n',
  );
}

function configError(text: string): ConfigError {
  try {
    parseConfigPrecisely(text, FILE);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

t.test('quic: true takes the default limits; false and absent are no QUIC', async (t) => {
  t.same(parseConfig(listenerWith('true'), FILE).listeners[0]!.quic, { maxFlows: 10_000, maxFlowsPerClient: 100, maxHelloBytes: 65_536 });
  t.same(DEFAULT_QUIC, { maxFlows: 10_000, maxFlowsPerClient: 100, maxHelloBytes: 65_536 });
  t.equal(parseConfig(listenerWith('false'), FILE).listeners[0]!.quic, null);
  t.equal(parseConfig(listenerWith('false').replace('    quic: false\n', ''), FILE).listeners[0]!.quic, null);
});

t.test('a mapping sets some limits, the rest keep their defaults', async (t) => {
  const config = parseConfig(listenerWith('{ maxFlows: 50, maxFlowsPerClient: 0 }'), FILE);
  t.same(config.listeners[0]!.quic, { maxFlows: 50, maxFlowsPerClient: 0, maxHelloBytes: 65_536 });
  t.same(parseConfig(listenerWith('{}'), FILE).listeners[0]!.quic, DEFAULT_QUIC, 'an empty mapping is quic: true');
});

t.test('errors point at the offending node', async (t) => {
  const cases: Array<{ quic: string; protocol?: string; at: string; message: RegExp }> = [
    { quic: 'true', protocol: 'http', at: 'true', message: /^"quic" routes QUIC by the TLS ClientHello .*needs a tls listener/ },
    { quic: 'yes', at: 'yes', message: /^expected true or false, got string "yes"/ },
    { quic: '{ maxFlows: 0 }', at: '0', message: /^0 is out of range \(1-10000000\)/ },
    { quic: '{ maxHelloBytes: 1000 }', at: '1000', message: /^1000 is out of range \(1200-1048576\)/ },
    { quic: '{ maxflows: 5 }', at: 'maxflows', message: /^unknown key "maxflows"/ },
    { quic: '[true]', at: '[true]', message: /^expected a value or a mapping, got a list/ },
  ];
  for (const { quic, protocol, at, message } of cases) {
    const text = listenerWith(quic, protocol);
    const error = configError(text);
    const quicLine = text.split('\n')[3]!;
    const position = { line: 4, col: quicLine.indexOf(at, quicLine.indexOf(':')) + 1 };
    t.equal(error.code, 'SNIP_CONFIG_INVALID', quic);
    t.same(error.position, position, `${quic}: position`);
    t.match(error.detail, message, `${quic}: message`);
  }
});

t.test('check describes the QUIC side with its limits and the flow idle timeout', async (t) => {
  t.match(
    describeConfig(parseConfig(listenerWith('true'), FILE)),
    /QUIC on UDP too: maxFlows 10000, maxFlowsPerClient 100, maxHelloBytes 65536, flow idleTimeout 1m/,
  );
  const withIdle = listenerWith('{ maxFlowsPerClient: 0 }').replace('    quic:', '    idleTimeout: 20s\n    quic:');
  t.match(describeConfig(parseConfig(withIdle, FILE)), /maxFlowsPerClient off, maxHelloBytes 65536, flow idleTimeout 20s/);
  t.notMatch(describeConfig(parseConfig(listenerWith('false'), FILE)), /QUIC/);
});
