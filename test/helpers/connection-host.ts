// A listener's part of the pipeline without a listening socket: settings from
// a YAML listener definition, every event recorded, every connection served
// from a socket given to it. For testing a connection, a target or a splice
// in this process, on real sockets (see socket-pair.ts).
import type net from 'node:net';
import type { Test } from 'tap';
import { BackendRegistry } from '../../lib/backends/health.js';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { parseConfig } from '../../lib/config/load.js';
import { listenerSettings } from '../../lib/listeners/settings.js';
import { Connection, type ConnectionHost, type Refusal } from '../../lib/pipeline/connection.js';
import type { ConnectionRecord } from '../../lib/pipeline/record.js';
import type { ListenerSettings } from '../../lib/pipeline/settings.js';
import type { ProxyConfig } from '../../lib/config/types.js';
import { type LeafIssuer, loadTlsMaterial, NO_TLS_MATERIAL, type TlsMaterial } from '../../lib/tls/certificates.js';
import { RecordingObserver } from './observer.js';
import { socketPair } from './socket-pair.js';
import { guard } from './wait.js';

export class TestConnectionHost implements ConnectionHost {
  readonly observer = new RecordingObserver();
  readonly registry = new BackendRegistry(this.observer);
  settings: ListenerSettings;
  /** Client addresses refused as if by an access list. */
  readonly refused = new Set<string>();
  readonly open = new Set<Connection>();
  private readonly waiters: Array<{ count: number; resolve: () => void }> = [];

  /**
   * `listenerYaml`: one listener's keys, as under `listeners:` (without the
   * dash), e.g. "listen: 127.0.0.1:0\ndefault: ...". `tls`: the certificates
   * of its terminating routes (see `withCertificates`).
   */
  constructor(listenerYaml: string, tls: TlsMaterial = NO_TLS_MATERIAL) {
    const config = TestConnectionHost.parse(listenerYaml);
    this.registry.sync(config);
    this.settings = listenerSettings(config.listeners[0]!, { registry: this.registry, tls, resolver: new HostResolver() });
  }

  /** A host whose routes may terminate TLS: their certificate files (absolute paths in the YAML) are loaded first. */
  static async withCertificates(listenerYaml: string, internalCa: LeafIssuer | null = null): Promise<TestConnectionHost> {
    const noCa = (): Promise<never> => Promise.reject(new Error('no local CA in this test'));
    const tls = await loadTlsMaterial(TestConnectionHost.parse(listenerYaml), 'test.yaml', internalCa ? () => Promise.resolve(internalCa) : noCa);
    return new TestConnectionHost(listenerYaml, tls);
  }

  private static parse(listenerYaml: string): ProxyConfig {
    const indented = listenerYaml
      .trim()
      .split('\n')
      .map((line, index) => (index === 0 ? `  - ${line}` : `    ${line}`))
      .join('\n');
    return parseConfig(`listeners:\n${indented}\n`, 'test.yaml');
  }

  /** A client connected to this host over a socket pair (both ends closed when `t` ends, the client's errors ignored). */
  async connect(t: Test): Promise<net.Socket> {
    const { accepted, peer } = await socketPair();
    t.teardown(() => {
      accepted.destroy();
      peer.destroy();
    });
    peer.on('error', () => {});
    this.serve(accepted);
    return peer;
  }

  /** Serves `socket` (the accepted end of a socket pair) as the listener would. */
  serve(socket: net.Socket): Connection {
    const connection = new Connection(socket, this);
    this.open.add(connection);
    connection.serve();
    return connection;
  }

  admitClient(clientAddress: string): Refusal | null {
    return this.refused.has(clientAddress) ? 'denied' : null;
  }

  releaseClient(): void {}

  connectionEnded(connection: Connection): void {
    this.open.delete(connection);
    for (const waiter of this.waiters.slice()) {
      if (this.observer.closed.length >= waiter.count) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }

  /** Resolves with the `count`th connection record (1-based) once it is written. */
  async record(count = 1): Promise<ConnectionRecord> {
    if (this.observer.closed.length < count) {
      await guard(new Promise<void>((resolve) => this.waiters.push({ count, resolve })), 10_000, `connection record ${count}`);
    }
    return this.observer.closed[count - 1]!;
  }
}
