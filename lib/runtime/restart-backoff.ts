/** Crashes older than this no longer slow a worker's restart. */
export const CRASH_WINDOW_MS = 60_000;
/** The longest wait before restarting a worker that keeps crashing. */
export const MAX_RESTART_DELAY_MS = 30_000;
/** The wait after the second crash in the window; it doubles with each further one. */
const FIRST_BACKOFF_MS = 500;

/**
 * How long to wait before starting a worker again, given the times (ms,
 * monotonic) its slot crashed, the last one `now`: at once after a first
 * crash, then 0.5 s, 1 s, 2 s ... up to 30 s while crashes keep coming
 * within a minute of each other, so a worker that dies on start does not
 * spin the CPU and fill the log.
 */
export function restartDelay(crashes: readonly number[], now: number): number {
  const recent = crashes.filter((time) => now - time < CRASH_WINDOW_MS).length;
  if (recent <= 1) return 0;
  return Math.min(MAX_RESTART_DELAY_MS, FIRST_BACKOFF_MS * 2 ** (recent - 2));
}
