import type { BackendConfig } from '../config/types.js';

/**
 * Spreads new connections over a route's backends by weight (smooth weighted
 * round robin, as nginx does: weights 1 and 2 give A B B A B B..., interleaved
 * rather than in runs) and gives the order in which to try them when one
 * refuses or times out.
 */
export class BackendPool {
  readonly backends: readonly BackendConfig[];
  private readonly current: number[];
  private readonly totalWeight: number;

  constructor(backends: readonly BackendConfig[]) {
    this.backends = backends.filter((backend) => backend.weight > 0);
    this.current = this.backends.map(() => 0);
    this.totalWeight = this.backends.reduce((sum, backend) => sum + backend.weight, 0);
  }

  /** Backends to try for one connection: the balancer's choice first, then the others in config order. */
  connectionOrder(): BackendConfig[] {
    const count = this.backends.length;
    if (count <= 1) return this.backends.slice();
    let chosen = 0;
    for (let index = 0; index < count; index++) {
      this.current[index]! += this.backends[index]!.weight;
      if (this.current[index]! > this.current[chosen]!) chosen = index;
    }
    this.current[chosen]! -= this.totalWeight;
    const order = [this.backends[chosen]!];
    for (let index = 0; index < count; index++) if (index !== chosen) order.push(this.backends[index]!);
    return order;
  }
}
