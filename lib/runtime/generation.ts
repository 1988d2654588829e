import { type LoadedConfig, loadConfigFile } from '../config/loader.js';
import { type LeafIssuer, loadTlsMaterial, type TlsMaterial } from '../tls/certificates.js';

/** Everything one config generation runs on: the validated config, and the certificates its terminating routes serve. */
export interface Generation extends LoadedConfig {
  tls: TlsMaterial;
}

/**
 * Reads the config file, then every certificate it names; throws `ConfigError`
 * for either. `openInternalCa` gets the config's `stateDir` (null: not set).
 */
export async function loadGeneration(file: string, openInternalCa: (stateDir: string | null) => Promise<LeafIssuer>): Promise<Generation> {
  const loaded = await loadConfigFile(file);
  return { ...loaded, tls: await loadTlsMaterial(loaded.config, file, () => openInternalCa(loaded.config.stateDir)) };
}

/** Whether `next` changes nothing that `current` runs: the same config text and the same certificate files. */
export function sameGeneration(current: { text: string; tls: TlsMaterial }, next: Generation): boolean {
  return current.text === next.text && current.tls.digest === next.tls.digest;
}
