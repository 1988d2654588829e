import { createHash, X509Certificate } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import tls from 'node:tls';
import type { CertificateFiles, ConfigPosition, ProxyConfig, RouteConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';

/** Certificate, key and CA files are small; anything larger is not one. */
const MAX_PEM_BYTES = 1024 * 1024;

/** Issues leaf certificates for `tls: internal` routes (the local CA). */
export interface LeafIssuer {
  leafFor(hostnames: readonly string[]): { cert: string; key: string; notAfter: Date };
}

/**
 * The TLS material one config generation serves: a secure context per
 * terminating route's certificate set, the backends' CA bundles, and the
 * local CA when a route asks for it. Loaded all or nothing before a config is
 * applied, so a broken or mismatched pair refuses the reload and the running
 * certificates stay.
 */
export interface TlsMaterial {
  /** Secure contexts by `certificateSetKey`. */
  contexts: ReadonlyMap<string, tls.SecureContext>;
  /** CA bundles for `backendTls.ca`, by path. */
  backendCas: ReadonlyMap<string, Buffer>;
  internalCa: LeafIssuer | null;
  /** Every file read, for the watcher: a renewed certificate is picked up like an edited config. */
  files: string[];
  /** Over every file's path and bytes: the same config text and digest means nothing changed. */
  digest: string;
  /** Problems worth a warning that do not stop the certificate from being served (expired, names not covered). */
  warnings: string[];
}

export const NO_TLS_MATERIAL: TlsMaterial = { contexts: new Map(), backendCas: new Map(), internalCa: null, files: [], digest: '', warnings: [] };

/** Identifies a route's certificate files (the same files on several routes share one context). */
export function certificateSetKey(certificates: readonly CertificateFiles[]): string {
  return JSON.stringify(certificates.map(({ cert, key }) => [cert, key]));
}

function routesOf(config: ProxyConfig): RouteConfig[] {
  return config.listeners.flatMap((listener) => (listener.defaultRoute ? [...listener.routes, listener.defaultRoute] : listener.routes));
}

/** Reads a PEM file: a regular file of at most 1 MiB (a FIFO or device would block or never end). */
async function readPem(path: string): Promise<Buffer> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
    if (stats.size > MAX_PEM_BYTES) throw Object.assign(new Error(`larger than ${MAX_PEM_BYTES / 1024} KiB`), { code: 'EFBIG' });
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

const readReasons: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  ENOTFILE: 'not a regular file',
  EFBIG: 'too large for a PEM file',
};

/** OpenSSL's reason for a context it could not build, as a user reads it. */
function contextProblem(error: Error): string {
  const message = error.message;
  if (/key values mismatch/i.test(message)) return 'the key does not belong to the certificate';
  if (/no start line|bad base64|PEM/i.test(message)) return 'not a PEM certificate and key';
  return message.replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/i, '');
}

/** Over every file's path and bytes, in path order; '' when there are none (as for NO_TLS_MATERIAL). */
function digestOf(files: ReadonlyMap<string, Buffer>): string {
  if (files.size === 0) return '';
  const digest = createHash('sha256');
  for (const [path, bytes] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) digest.update(path).update('\0').update(bytes);
  return digest.digest('hex');
}

/**
 * Loads what `config`'s terminating routes need, reading every file once.
 * Throws `ConfigError` (SNIP_CONFIG_CERTIFICATE) naming the file and the
 * route's `tls` position; `openInternalCa` is called only when a route uses
 * `tls: internal`.
 */
export async function loadTlsMaterial(config: ProxyConfig, configFile: string, openInternalCa: () => Promise<LeafIssuer>): Promise<TlsMaterial> {
  const files = new Map<string, Buffer>();
  const read = async (path: string, position: ConfigPosition, what: string): Promise<Buffer> => {
    const known = files.get(path);
    if (known) return known;
    try {
      const bytes = await readPem(path);
      files.set(path, bytes);
      return bytes;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      throw new ConfigError(
        configFile,
        position,
        `${what} ${path}: cannot read it (${readReasons[code] ?? (error as Error).message})`,
        'SNIP_CONFIG_CERTIFICATE',
      );
    }
  };

  const contexts = new Map<string, tls.SecureContext>();
  const backendCas = new Map<string, Buffer>();
  const warnings: string[] = [];
  let internalCa: LeafIssuer | null = null;
  const now = Date.now();
  for (const route of routesOf(config)) {
    const { tls: terminate, backendTls } = route;
    if (backendTls?.ca) backendCas.set(backendTls.ca, await read(backendTls.ca, backendTls.position, 'backendTls CA file'));
    if (terminate === null) continue;
    if (terminate.certificates === 'internal') {
      internalCa ??= await openInternalCa();
      continue;
    }
    const key = certificateSetKey(terminate.certificates);
    if (contexts.has(key)) continue;
    const certs: Buffer[] = [];
    const keys: Buffer[] = [];
    for (const pair of terminate.certificates) {
      certs.push(await read(pair.cert, terminate.position, 'certificate'));
      keys.push(await read(pair.key, terminate.position, 'key'));
    }
    try {
      contexts.set(key, tls.createSecureContext({ cert: certs, key: keys }));
    } catch (error) {
      const names = terminate.certificates.map((pair) => `${pair.cert} + ${pair.key}`).join(', ');
      throw new ConfigError(configFile, terminate.position, `${names}: ${contextProblem(error as Error)}`, 'SNIP_CONFIG_CERTIFICATE');
    }
    for (const [index, pair] of terminate.certificates.entries()) {
      const certificate = new X509Certificate(certs[index]!);
      if (Date.parse(certificate.validTo) < now) warnings.push(`${pair.cert} expired on ${certificate.validTo}`);
      const uncovered = route.hostnames.filter((name) => certificate.checkHost(name.replace(/^\*\./, 'x.'), { wildcards: true }) === undefined);
      if (uncovered.length > 0) warnings.push(`${pair.cert} does not cover ${uncovered.join(', ')}`);
    }
  }
  return { contexts, backendCas, internalCa, files: [...files.keys()], digest: digestOf(files), warnings };
}
