// The local certificate authority behind `tls: internal`: created once in the
// state directory (private to its user), loaded on every later start, and
// issuing short-lived leaf certificates in memory. The CA key is read from and
// written to that directory only; no message or error carries it.

import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { type Stats, promises as fs } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { normalizeHostnamePattern } from '../config/values.js';
import { CertificateHostnameError, LocalCaError, StateDirectoryError, ValueError } from '../errors.js';
import { caCertificate, certificateSubject, keyIdentifier, leafCertificate } from './x509.js';

/** The CA certificate, public: what `trust` installs and what clients may be given. */
export const CA_CERTIFICATE_FILE = 'ca.pem';
/** The CA key followed by its certificate, one file so it is created in one atomic step (mode 0600). */
export const CA_KEY_FILE = 'ca-key.pem';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const CA_VALIDITY_YEARS = 10;
/** Leaves live a week: short enough that a leaked one soon expires, long enough to outlast a laptop's sleep. */
const LEAF_VALIDITY = 7 * DAY;
/** notBefore this far back, so a client whose clock runs behind still accepts a fresh leaf. */
const BACKDATE = HOUR;
/** A cached leaf with less than this left is replaced on the next request for its names. */
export const LEAF_RENEW_BEFORE = 2 * DAY;
/** Distinct hostname sets kept; the oldest unused is dropped past this (a bound, should a caller pass names from clients). */
const LEAF_CACHE_LIMIT = 1024;

/** Why a file others can reach is unsafe for the CA, or null: it must belong to this user and grant nothing to group or others. */
function exposure(stats: Stats): string | null {
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) return `is owned by uid ${stats.uid}, not by this user (uid ${uid})`;
  if (stats.mode & 0o077) return `is open to group or others (mode ${(stats.mode & 0o777).toString(8).padStart(3, '0')})`;
  return null;
}

const describeError = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/** Creates `directory` (0700) if needed; refuses one that is not private to this user. */
async function prepareStateDirectory(directory: string): Promise<void> {
  let stats: Stats;
  try {
    await fs.mkdir(directory, { recursive: true, mode: 0o700 });
    stats = await fs.stat(directory);
  } catch (error) {
    throw new StateDirectoryError('SNIP_STATE_DIR_UNUSABLE', directory, `cannot create state directory ${directory}: ${describeError(error)}`);
  }
  if (!stats.isDirectory()) throw new StateDirectoryError('SNIP_STATE_DIR_UNUSABLE', directory, `state directory ${directory} is not a directory`);
  const problem = exposure(stats);
  if (problem) {
    throw new StateDirectoryError(
      'SNIP_STATE_DIR_UNSAFE',
      directory,
      `state directory ${directory} ${problem}; it holds the local CA key: use a directory only you can open (chmod 700), or another one with --state-dir`,
    );
  }
}

/** A leaf certificate: `cert` is the leaf then the CA (PEM), `key` the leaf's private key (PKCS#8 PEM). */
export interface IssuedCertificate {
  cert: string;
  key: string;
  notAfter: Date;
}

interface CachedLeaf extends IssuedCertificate {
  notBefore: Date;
}

/**
 * The names of a leaf certificate from route hostnames: DNS names and
 * `*.suffix` wildcards normalized as routes are (lower-case, punycode), IP
 * addresses (IPv6 bare or in brackets) as they are; duplicates dropped, order
 * kept. Throws CertificateHostnameError for a name no certificate can carry.
 */
export function certificateHostnames(hostnames: readonly string[]): string[] {
  if (hostnames.length === 0) throw new CertificateHostnameError('a certificate needs at least one hostname');
  const names = hostnames.map((name) => {
    const bare = name.replace(/^\[(.*)\]$/, '$1');
    if (isIPv4(bare)) return bare;
    if (isIPv6(bare)) return bare.toLowerCase();
    try {
      return normalizeHostnamePattern(name);
    } catch (error) {
      if (error instanceof ValueError) throw new CertificateHostnameError(`cannot issue a certificate for "${name}": ${error.message}`);
      throw error;
    }
  });
  return [...new Set(names)];
}

interface CaMaterial {
  certificate: X509Certificate;
  privateKey: KeyObject;
}

function createCaMaterial(now: Date): CaMaterial {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const host = hostname();
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for this uid (some containers): the name only describes the CA.
  }
  const id = keyIdentifier(publicKey).subarray(0, 4).toString('hex');
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  const der = caCertificate({
    // The key's id in the name tells CAs apart: a new CA after the old one was deleted gets another name (and NSS nickname).
    name: {
      organization: 'sni-passthrough',
      organizationalUnit: `${user}@${host}`.slice(0, 64),
      commonName: `sni-passthrough local CA ${id} (${host.slice(0, 28)})`,
    },
    publicKey,
    privateKey,
    notBefore: new Date(now.getTime() - BACKDATE),
    notAfter,
  });
  return { certificate: new X509Certificate(der), privateKey };
}

const PEM_BLOCK = (label: string): RegExp => new RegExp(`-----BEGIN ${label}-----[A-Za-z0-9+/=\\s]+-----END ${label}-----\\n?`);

/** The key and certificate from the key file's text; errors name the file, never its content. */
function parseCaMaterial(text: string, file: string, now: Date): CaMaterial {
  const keyPem = PEM_BLOCK('PRIVATE KEY').exec(text)?.[0];
  const certificatePem = PEM_BLOCK('CERTIFICATE').exec(text)?.[0];
  if (!keyPem || !certificatePem)
    throw new LocalCaError(`${file} does not hold a private key and a certificate: move the state directory away to create a new CA`);
  let material: CaMaterial;
  try {
    material = { certificate: new X509Certificate(certificatePem), privateKey: createPrivateKey(keyPem) };
  } catch {
    throw new LocalCaError(`${file} holds a key or certificate that does not parse: move the state directory away to create a new CA`);
  }
  if (!material.certificate.ca || !material.certificate.checkPrivateKey(material.privateKey) || material.privateKey.asymmetricKeyType !== 'ec') {
    throw new LocalCaError(`${file} does not hold a matching EC CA key and certificate: move the state directory away to create a new CA`);
  }
  if (new Date(material.certificate.validTo) <= now) {
    throw new LocalCaError(
      `the local CA in ${file} expired on ${material.certificate.validTo}: move the state directory away, then run \`sni-passthrough trust\` for a new one`,
    );
  }
  return material;
}

/** Writes `content` to `file` through a temp file in the same directory and a rename, so readers see the old or the new file whole. */
async function writeAtomically(file: string, content: string, mode: number): Promise<void> {
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeDurably(temporary, content, mode);
    await fs.rename(temporary, file);
  } finally {
    await fs.rm(temporary, { force: true });
  }
}

async function writeDurably(file: string, content: string, mode: number): Promise<void> {
  const handle = await fs.open(file, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Reads the CA from `keyFile`, or creates it there: the key file is written to
 * a temp file and hard-linked into place, which fails if it exists, so two
 * processes starting at once end up with the same CA.
 */
async function loadOrCreate(directory: string, keyFile: string, now: Date): Promise<{ material: CaMaterial; created: boolean }> {
  for (let attempt = 0; ; attempt++) {
    let stats: Stats | null = null;
    try {
      stats = await fs.stat(keyFile);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new StateDirectoryError('SNIP_STATE_DIR_UNUSABLE', directory, `cannot read ${keyFile}: ${describeError(error)}`);
      }
    }
    if (stats) {
      const problem = exposure(stats);
      if (problem) throw new StateDirectoryError('SNIP_STATE_DIR_UNSAFE', directory, `the CA key ${keyFile} ${problem}: chmod 600 ${keyFile}`);
      let text: string;
      try {
        text = await fs.readFile(keyFile, 'utf8');
      } catch (error) {
        throw new StateDirectoryError('SNIP_STATE_DIR_UNUSABLE', directory, `cannot read ${keyFile}: ${describeError(error)}`);
      }
      return { material: parseCaMaterial(text, keyFile, now), created: false };
    }
    if (attempt > 0) throw new StateDirectoryError('SNIP_STATE_DIR_UNUSABLE', directory, `${keyFile} vanished while the CA was being created`);
    const material = createCaMaterial(now);
    const text = material.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() + material.certificate.toString();
    const temporary = join(directory, `.${CA_KEY_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await writeDurably(temporary, text, 0o600);
      await fs.link(temporary, keyFile);
      return { material, created: true };
    } catch (error) {
      // Another process created it first: use theirs (the next pass reads it).
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StateDirectoryError('SNIP_STATE_DIR_UNUSABLE', directory, `cannot write ${keyFile}: ${describeError(error)}`);
      }
    } finally {
      await fs.rm(temporary, { force: true });
    }
  }
}

/** Keeps `ca.pem` equal to the certificate in the key file (it is derived; a deleted or stale copy is rewritten). */
async function syncCertificateFile(directory: string, file: string, pem: string): Promise<void> {
  const current = await fs.readFile(file, 'utf8').catch(() => null);
  if (current === pem) return;
  try {
    await writeAtomically(file, pem, 0o644);
  } catch (error) {
    throw new StateDirectoryError('SNIP_STATE_DIR_UNUSABLE', directory, `cannot write ${file}: ${describeError(error)}`);
  }
}

export class LocalCertificateAuthority {
  /** The CA certificate (PEM), as in `ca.pem`. */
  readonly certificatePem: string;
  readonly certificate: X509Certificate;
  readonly #issuer: { name: Buffer; publicKey: KeyObject; privateKey: KeyObject };
  readonly #leaves = new Map<string, CachedLeaf>();

  private constructor(
    /** The state directory it lives in. */
    readonly directory: string,
    material: CaMaterial,
    /** Whether this `open` created it (a new CA needs `trust` again). */
    readonly created: boolean,
  ) {
    this.certificate = material.certificate;
    this.certificatePem = material.certificate.toString();
    this.#issuer = { name: certificateSubject(material.certificate.raw), publicKey: material.certificate.publicKey, privateKey: material.privateKey };
  }

  /** The CA in `directory` (see defaultStateDirectory), created there on first use. */
  static async open(directory: string, now = new Date()): Promise<LocalCertificateAuthority> {
    await prepareStateDirectory(directory);
    const { material, created } = await loadOrCreate(directory, join(directory, CA_KEY_FILE), now);
    const ca = new LocalCertificateAuthority(directory, material, created);
    await syncCertificateFile(directory, join(directory, CA_CERTIFICATE_FILE), ca.certificatePem);
    return ca;
  }

  /**
   * A certificate for `hostnames` (see certificateHostnames), valid now:
   * the cached one for the same set of names while it has more than
   * LEAF_RENEW_BEFORE left, else a new one (new key) valid for a week.
   */
  leafFor(hostnames: readonly string[], now = new Date()): IssuedCertificate {
    const names = certificateHostnames(hostnames);
    const cacheKey = [...names].sort().join(' ');
    const cached = this.#leaves.get(cacheKey);
    this.#leaves.delete(cacheKey);
    if (cached && cached.notBefore <= now && cached.notAfter.getTime() - now.getTime() > LEAF_RENEW_BEFORE) {
      this.#leaves.set(cacheKey, cached);
      return { cert: cached.cert, key: cached.key, notAfter: cached.notAfter };
    }
    const caNotAfter = new Date(this.certificate.validTo);
    if (caNotAfter <= now)
      throw new LocalCaError(`the local CA in ${this.directory} expired on ${this.certificate.validTo}: move it away and run \`sni-passthrough trust\``);
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const notBefore = new Date(now.getTime() - BACKDATE);
    const notAfter = new Date(Math.min(now.getTime() + LEAF_VALIDITY, caNotAfter.getTime()));
    const leaf = new X509Certificate(leafCertificate({ hostnames: names, publicKey, issuer: this.#issuer, notBefore, notAfter }));
    // Certificate times have whole seconds: report what the certificate says.
    const issued: CachedLeaf = {
      cert: leaf.toString() + this.certificatePem,
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      notBefore: new Date(leaf.validFrom),
      notAfter: new Date(leaf.validTo),
    };
    this.#leaves.set(cacheKey, issued);
    if (this.#leaves.size > LEAF_CACHE_LIMIT) this.#leaves.delete(this.#leaves.keys().next().value!);
    return { cert: issued.cert, key: issued.key, notAfter: issued.notAfter };
  }
}
