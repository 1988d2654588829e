import t from 'tap';
import { UNRECOGNIZED_NAME_ALERT, alertRecord } from '../../lib/tls/alert.js';
import { parseClientHello } from '../../lib/tls/client-hello.js';

t.test('unrecognized_name alert record', async (t) => {
  // content type 21 (alert), version 0x0303, length 2, level fatal (2), description 112
  t.same([...UNRECOGNIZED_NAME_ALERT], [21, 3, 3, 0, 2, 2, 112]);
});

t.test('alertRecord builds a fatal alert with the given description', async (t) => {
  t.same([...alertRecord(40)], [21, 3, 3, 0, 2, 2, 40], 'handshake_failure');
});

t.test('an alert is not mistaken for a hello', async (t) => {
  t.same(parseClientHello(UNRECOGNIZED_NAME_ALERT), { status: 'invalid', reason: 'not_tls' });
});
