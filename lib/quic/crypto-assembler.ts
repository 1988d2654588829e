// Puts a flow's CRYPTO frames back in stream order. A client's ClientHello may
// span several Initial packets that arrive out of order, repeat (a client
// retransmits what it thinks lost) or overlap; what can be parsed is the
// contiguous run from offset 0. Memory is bounded: no byte past `maxBytes` is
// accepted, and storage grows only as far as the data reaches.
import { QuicError } from '../errors.js';

const INITIAL_CAPACITY = 2048;

export class CryptoAssembler {
  private data = Buffer.alloc(0);
  /** received[i] is 1 once byte i of the stream has arrived. */
  private received = new Uint8Array(0);
  private contiguousEnd = 0;
  private heldBytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Distinct stream bytes received so far (at most `maxBytes`). */
  get bufferedBytes(): number {
    return this.heldBytes;
  }

  /**
   * Adds the CRYPTO data at stream offset `offset`. Throws QuicError
   * QUIC_CRYPTO_TOO_LARGE when it reaches past `maxBytes` (the hello cannot be
   * read within the bound), and QUIC_MALFORMED when it contradicts bytes
   * already received at the same offsets: the stream's data must never change
   * (RFC 9000 section 2.2), and guessing which copy the backend keeps could
   * route on a name the backend never reads.
   */
  add(offset: number, data: Buffer): void {
    const end = offset + data.length;
    if (end > this.maxBytes) {
      throw new QuicError('QUIC_CRYPTO_TOO_LARGE', `CRYPTO data up to byte ${end} exceeds the ${this.maxBytes} bytes buffered before routing`);
    }
    if (data.length === 0) return;
    this.reserve(end);
    for (let runStart = offset; runStart < end; ) {
      const held = this.received[runStart]!;
      let runEnd = runStart + 1;
      while (runEnd < end && this.received[runEnd] === held) runEnd++;
      const incoming = data.subarray(runStart - offset, runEnd - offset);
      if (held === 0) {
        incoming.copy(this.data, runStart);
        this.received.fill(1, runStart, runEnd);
        this.heldBytes += runEnd - runStart;
      } else if (!incoming.equals(this.data.subarray(runStart, runEnd))) {
        throw new QuicError('QUIC_MALFORMED', `CRYPTO data at bytes ${runStart}-${runEnd - 1} differs from an earlier copy`);
      }
      runStart = runEnd;
    }
    while (this.contiguousEnd < this.received.length && this.received[this.contiguousEnd] === 1) this.contiguousEnd++;
  }

  /** The stream's bytes from offset 0 up to the first gap: a view, whose bytes never change (later data only extends the run). */
  contiguous(): Buffer {
    return this.data.subarray(0, this.contiguousEnd);
  }

  /** Grows storage to hold `end` bytes: doubling, so a hello arriving in pieces is copied a few times, never once per piece. */
  private reserve(end: number): void {
    if (end <= this.data.length) return;
    const capacity = Math.min(this.maxBytes, Math.max(end, INITIAL_CAPACITY, this.data.length * 2));
    const data = Buffer.alloc(capacity);
    this.data.copy(data);
    const received = new Uint8Array(capacity);
    received.set(this.received);
    this.data = data;
    this.received = received;
  }
}
