// DescriptorBudget (lib/listeners/descriptor-budget.ts): when a new connection
// is refused for the descriptor limit, with the count of open descriptors
// injected.
import t from 'tap';
import { DescriptorBudget, openFileCount, openFileLimit } from '../../lib/listeners/descriptor-budget.js';
import { sleep } from '../helpers/wait.js';

t.test('the soft limit is read from /proc/self/limits', async (t) => {
  const text = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
`;
  t.equal(openFileLimit(text), 1024);
  t.equal(openFileLimit('Max open files            unlimited            unlimited            files\n'), null, 'unlimited: nothing to keep clear of');
  t.equal(openFileLimit(null), null, 'unreadable');
  if (process.platform === 'linux') {
    t.type(openFileLimit(), 'number', 'this process has one');
    t.ok((openFileCount() ?? 0) > 3, 'and some descriptors open');
  }
});

/** A process with `elsewhere` descriptors open besides its connections' two each. */
function process_(elsewhere: number) {
  const state = { elsewhere, connections: 0 };
  return { state, count: () => state.elsewhere + 2 * state.connections };
}

/** Reserves until refused; counts the connections opened. */
function fill(budget: DescriptorBudget, state: { connections: number }): number {
  let admitted = 0;
  while (budget.reserve()) {
    admitted++;
    state.connections++;
  }
  return admitted;
}

t.test('connections reserve two descriptors each and keep a margin free', async (t) => {
  const { state, count } = process_(100);
  const budget = new DescriptorBudget(1000, count); // margin: max(16, 1000 / 50) = 20
  // 100 + 2 × (n - 1) + 2 <= 980 → n <= 440
  t.equal(fill(budget, state), 440, 'room for (limit - margin - others) / 2 connections');
  budget.release();
  state.connections--;
  t.ok(budget.reserve(), 'one released: one more fits');
  state.connections++;
  t.notOk(budget.reserve(), 'and then none');
});

t.test('near the limit, descriptors opened or closed elsewhere are counted again (at most every 100 ms)', async (t) => {
  const { state, count } = process_(900);
  const budget = new DescriptorBudget(1000, count);
  t.equal(fill(budget, state), 40, '900 open elsewhere: 40 connections');
  state.elsewhere -= 100;
  t.notOk(budget.reserve(), 'counted a moment ago: not seen yet');
  await sleep(150);
  t.equal(fill(budget, state), 50, 'counted again: the 100 freed descriptors take 50 more');
  state.elsewhere += 40;
  await sleep(150);
  budget.release();
  state.connections--;
  t.notOk(budget.reserve(), 'opened elsewhere meanwhile: a released slot is not enough');
});

t.test('a count that cannot be read: only the connections are counted', async (t) => {
  const budget = new DescriptorBudget(100, () => null); // margin 16
  // 2 × (n - 1) + 2 <= 84 → n <= 42
  t.equal(fill(budget, { connections: 0 }), 42);
});
