import t from 'tap';
import fc from 'fast-check';
import { QuicError } from '../../lib/errors.js';
import { CryptoAssembler } from '../../lib/quic/crypto-assembler.js';

function thrownCode(fn: () => unknown): string {
  try {
    fn();
    return 'nothing thrown';
  } catch (error) {
    return error instanceof QuicError ? error.code : `not a QuicError: ${String(error)}`;
  }
}

t.test('in order: the contiguous run grows with each piece', async (t) => {
  const assembler = new CryptoAssembler(1000);
  t.same(assembler.contiguous(), Buffer.alloc(0));
  assembler.add(0, Buffer.from('hello '));
  t.equal(assembler.contiguous().toString(), 'hello ');
  assembler.add(6, Buffer.from('world'));
  t.equal(assembler.contiguous().toString(), 'hello world');
  t.equal(assembler.bufferedBytes, 11);
});

t.test('out of order: nothing past a gap until the gap is filled', async (t) => {
  const assembler = new CryptoAssembler(1000);
  assembler.add(10, Buffer.from('KLMNO'));
  assembler.add(5, Buffer.from('FGHIJ'));
  t.equal(assembler.contiguous().length, 0, 'offset 0 missing');
  t.equal(assembler.bufferedBytes, 10, 'but the bytes are held');
  assembler.add(0, Buffer.from('ABCDE'));
  t.equal(assembler.contiguous().toString(), 'ABCDEFGHIJKLMNO');
});

t.test('retransmissions and overlaps with the same bytes are absorbed', async (t) => {
  const assembler = new CryptoAssembler(1000);
  const data = Buffer.from('0123456789abcdefghij');
  assembler.add(0, data.subarray(0, 8));
  assembler.add(0, data.subarray(0, 8));
  assembler.add(4, data.subarray(4, 14));
  assembler.add(12, data.subarray(12, 20));
  assembler.add(2, data.subarray(2, 3));
  t.equal(assembler.contiguous().toString(), data.toString());
  t.equal(assembler.bufferedBytes, 20, 'each byte counted once');
});

t.test('data that contradicts an earlier copy is refused (RFC 9000 2.2): which one the backend keeps is unknown', async (t) => {
  const assembler = new CryptoAssembler(1000);
  assembler.add(0, Buffer.from('abcdef'));
  t.equal(
    thrownCode(() => assembler.add(3, Buffer.from('dXf'))),
    'QUIC_MALFORMED',
  );
  const gapped = new CryptoAssembler(1000);
  gapped.add(20, Buffer.from('zzzz'));
  t.equal(
    thrownCode(() => gapped.add(18, Buffer.from('..zy'))),
    'QUIC_MALFORMED',
    'past a gap too',
  );
  t.equal(assembler.contiguous().toString(), 'abcdef', 'what was held is unchanged');
});

t.test('bounded: nothing reaching past maxBytes is taken', async (t) => {
  const assembler = new CryptoAssembler(100);
  assembler.add(90, Buffer.alloc(10, 1));
  t.equal(
    thrownCode(() => assembler.add(95, Buffer.alloc(6, 1))),
    'QUIC_CRYPTO_TOO_LARGE',
    'one byte over',
  );
  t.equal(
    thrownCode(() => assembler.add(2 ** 40, Buffer.alloc(1))),
    'QUIC_CRYPTO_TOO_LARGE',
    'far away offset: nothing allocated for it',
  );
  t.equal(assembler.bufferedBytes, 10);
  assembler.add(0, Buffer.alloc(90, 1));
  t.equal(assembler.contiguous().length, 100, 'exactly maxBytes fits');
  assembler.add(100, Buffer.alloc(0));
  t.equal(assembler.contiguous().length, 100, 'an empty piece at the bound is harmless');
});

t.test('a view handed out earlier keeps its bytes when storage grows', async (t) => {
  const assembler = new CryptoAssembler(64 * 1024);
  assembler.add(0, Buffer.from('prefix'));
  const view = assembler.contiguous();
  assembler.add(6, Buffer.alloc(10_000, 7));
  t.equal(view.toString(), 'prefix');
  t.equal(assembler.contiguous().length, 10_006);
});

t.test('property: any split, order and repetition of the stream gives the stream back', async (t) => {
  const arb = fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 6 }))
    .chain(([data, cuts, repeats]) => {
      const points = [...new Set(cuts.map((cut) => cut % data.length))].sort((a, b) => a - b);
      const bounds = [0, ...points.filter((point) => point > 0), data.length];
      const pieces = bounds.slice(1).map((end, i) => ({ offset: bounds[i]!, end }));
      const withRepeats = [...pieces, ...repeats.map((which) => pieces[which % pieces.length]!)];
      return fc.tuple(fc.constant(Buffer.from(data)), fc.shuffledSubarray(withRepeats, { minLength: withRepeats.length, maxLength: withRepeats.length }));
    });
  fc.assert(
    fc.property(arb, ([data, pieces]) => {
      const assembler = new CryptoAssembler(data.length);
      for (const { offset, end } of pieces) assembler.add(offset, data.subarray(offset, end));
      return assembler.contiguous().equals(data) && assembler.bufferedBytes === data.length;
    }),
    { numRuns: 300 },
  );
  t.pass('300 streams');
});
