// Bounded waiting for unit and integration tests: a condition is polled until
// it holds or a guard time runs out. The guard only stops a hang; no test
// asserts on how long something took.

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once `condition()` is true; rejects with `what` after `timeoutMs` (a guard, not a measurement). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`waitFor: ${what} did not happen within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/** `promise`, or a rejection naming `what` after `ms` (a guard against hangs, never a measurement). */
export function guard<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`guard: ${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
