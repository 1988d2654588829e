import t from 'tap';
import { CRASH_WINDOW_MS, MAX_RESTART_DELAY_MS, restartDelay } from '../../lib/runtime/restart-backoff.js';

t.test('a first crash restarts at once; crashes that keep coming back off, up to a cap', async (t) => {
  const now = 1_000_000;
  t.equal(restartDelay([now], now), 0, 'first crash: at once');
  t.equal(restartDelay([now - 5_000, now], now), 500);
  t.equal(restartDelay([now - 9_000, now - 5_000, now], now), 1_000);
  t.equal(restartDelay([now - 9_000, now - 7_000, now - 5_000, now], now), 2_000, 'doubling');
  const many = Array.from({ length: 20 }, (_, index) => now - index * 100);
  t.equal(restartDelay(many, now), MAX_RESTART_DELAY_MS, 'capped');
});

t.test('crashes older than the window are forgiven', async (t) => {
  const now = 5_000_000;
  t.equal(restartDelay([now - CRASH_WINDOW_MS - 1, now - CRASH_WINDOW_MS - 2, now], now), 0);
  t.equal(restartDelay([now - CRASH_WINDOW_MS + 1, now], now), 500);
});
