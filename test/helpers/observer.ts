// One observer for tests that look at what the pipeline reports: every event
// is kept, in arrays by kind.
import type { HealthChange } from '../../lib/backends/health.js';
import type { DatagramDropReason, DropReason, ProxyObserver } from '../../lib/pipeline/observer.js';
import type { ConnectionRecord } from '../../lib/pipeline/record.js';

/** Records every observer event (logs and metrics implement the same interface). */
export class RecordingObserver implements ProxyObserver {
  accepted: string[] = [];
  closed: ConnectionRecord[] = [];
  connected: string[] = [];
  connectFailures: string[] = [];
  health: HealthChange[] = [];
  listenerErrors: Array<{ listener: string; error: Error }> = [];
  dropped: Array<{ listener: string; reason: DropReason }> = [];
  datagramDrops: Array<{ listener: string; reason: DatagramDropReason }> = [];
  panics: Array<{ listener: string; route: string }> = [];
  handshakeFailures: Array<{ listener: string; route: string; reason: string }> = [];
  connectionAccepted(listener: string): void {
    this.accepted.push(listener);
  }
  connectionClosed(closed: ConnectionRecord): void {
    this.closed.push(closed);
  }
  backendConnected(_listener: string, backend: string): void {
    this.connected.push(backend);
  }
  backendConnectFailed(_listener: string, backend: string, reason: string): void {
    this.connectFailures.push(`${backend} ${reason}`);
  }
  backendHealthChanged(change: HealthChange): void {
    this.health.push(change);
  }
  listenerError(listener: string, error: Error): void {
    this.listenerErrors.push({ listener, error });
  }
  connectionDropped(listener: string, reason: DropReason): void {
    this.dropped.push({ listener, reason });
  }
  datagramDropped(listener: string, reason: DatagramDropReason): void {
    this.datagramDrops.push({ listener, reason });
  }
  panicRouting(listener: string, route: string): void {
    this.panics.push({ listener, route });
  }
  tlsHandshakeFailed(listener: string, route: string, reason: string): void {
    this.handshakeFailures.push({ listener, route, reason });
  }
}
