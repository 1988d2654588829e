/**
 * SIGTERM/SIGINT start a graceful shutdown; a second one of either forces
 * the exit at once. SIGHUP asks for a reload.
 */
export function onSignals(handlers: { shutdown(signal: string): void; forceExit(signal: string): void; reload(): void }): () => void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) handlers.forceExit(signal);
    else {
      stopping = true;
      handlers.shutdown(signal);
    }
  };
  const reload = (): void => handlers.reload();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', reload);
  return () => {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    process.off('SIGHUP', reload);
  };
}
