// One client flow's first flight, datagram by datagram, until its ClientHello
// is whole: the state decryptInitials needs between datagrams (the original
// Destination Connection ID the keys derive from, the largest packet number)
// and the CRYPTO stream's reassembly, kept together so a listener holds one
// object per flow.
import { type QuicHelloResult, readQuicClientHello } from './client-hello.js';
import { CryptoAssembler } from './crypto-assembler.js';
import { decryptInitials } from './initial.js';

export class QuicHelloReader {
  private readonly assembler: CryptoAssembler;
  private originalDcid: Buffer | undefined;
  private largestPacketNumber = -1;

  /** `maxCryptoBytes` bounds the CRYPTO stream held (see CryptoAssembler). */
  constructor(maxCryptoBytes: number) {
    this.assembler = new CryptoAssembler(maxCryptoBytes);
  }

  /** The Destination Connection ID of the flow's first Initial packet (its keys derive from it), once one has been read. */
  get clientDcid(): Buffer | undefined {
    return this.originalDcid;
  }

  /** Distinct CRYPTO bytes held so far. */
  get bufferedBytes(): number {
    return this.assembler.bufferedBytes;
  }

  /**
   * Reads the Initial packets of one datagram from the client and says whether
   * the hello is whole. Throws the QuicError of decryptInitials or
   * CryptoAssembler.add: the datagram cannot be part of this client's first
   * flight (what it added before the error stays, and was valid).
   */
  read(datagram: Buffer): QuicHelloResult {
    for (const packet of decryptInitials(datagram, this.originalDcid, this.largestPacketNumber)) {
      this.originalDcid ??= packet.dcid;
      this.largestPacketNumber = Math.max(this.largestPacketNumber, packet.packetNumber);
      for (const { offset, data } of packet.crypto) this.assembler.add(offset, data);
    }
    return readQuicClientHello(this.assembler.contiguous());
  }
}
