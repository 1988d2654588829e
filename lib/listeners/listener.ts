import type { ListenerConfig } from '../config/types.js';
import type { LiveConnection, Outcome } from '../pipeline/record.js';
import type { TlsMaterial } from '../tls/certificates.js';

/**
 * A listening socket of one kind (TLS on TCP today) and the connections it
 * accepted. The supervisor drives it through a config apply as one
 * transaction: `listen` prepares (binds, serves nobody yet), then `open`
 * commits or `stopAccepting` + `terminateAll` roll back; `update` commits
 * new settings to a listener that stays.
 */
export interface Listener {
  readonly config: ListenerConfig;
  /** Binds (or takes the inherited socket); clients are held unread until `open`. Rejects with a `ListenError`. */
  listen(): Promise<string>;
  /** The address actually bound ("127.0.0.1:41234"): differs from the config when it asked for port 0. */
  boundAddress(): string;
  /** Starts serving the clients held since `listen` and those to come. */
  open(): void;
  /** New connections use `config` (and the generation's certificates) from now on; open ones keep theirs. */
  update(config: ListenerConfig, tls: TlsMaterial): void;
  /** Stops accepting at once; open connections go on. */
  stopAccepting(): void;
  /** Connections open now. */
  openConnections(): number;
  /** The connections open now, in the order they were accepted (for the admin endpoint: read-only views). */
  liveConnections(): Iterable<LiveConnection>;
  /** Resolves once no connection is open. */
  whenIdle(): Promise<void>;
  /** Ends every open connection now, recording `outcome`. */
  terminateAll(outcome: Outcome): void;
}
