// `sni-passthrough trust`: adds the local CA's certificate to the stores TLS
// clients read (the system store, an OpenSSL hashed directory, NSS databases
// of Chromium and Firefox), says what it did and how to undo it; `--uninstall`
// removes exactly those entries. Only the public certificate leaves the state
// directory.

import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { isOwnError } from '../errors.js';
import { CA_CERTIFICATE_FILE, LocalCertificateAuthority } from '../tls/local-ca.js';
import { defaultStateDirectory } from '../tls/state-directory.js';
import { keyIdentifier, opensslSubjectHash } from '../tls/x509.js';

export interface TrustOptions {
  stateDir: string;
  /** An OpenSSL CA directory to use instead of the system store. */
  caDir?: string;
  /** NSS databases to use instead of the ones found under HOME. */
  nssDb?: string[];
  uninstall: boolean;
}

export interface TrustEnvironment {
  env: NodeJS.ProcessEnv;
  isRoot: boolean;
  /** Progress, one line each (stdout). */
  print(line: string): void;
  /** Failures, one line each (stderr). */
  fail(line: string): void;
}

/** Debian's and Ubuntu's directory for local CAs, read by update-ca-certificates. */
const SYSTEM_CA_DIRECTORY = '/usr/local/share/ca-certificates';
/** Guard for one run of an external tool (a certutil waiting for a password must not hang `trust`). */
const TOOL_TIMEOUT_MS = 60_000;

/** The CA as the stores see it: its certificate and the names its entries get. */
interface TrustedCa {
  /** `ca.pem` in the state directory. */
  file: string;
  pem: string;
  certificate: X509Certificate;
  /** The certificate's commonName: the NSS nickname. */
  nickname: string;
  /** File name stem in CA directories, with the key id so two CAs never share it. */
  fileStem: string;
}

function trustedCa(file: string, pem: string): TrustedCa {
  const certificate = new X509Certificate(pem);
  const nickname = /^CN=(.*)$/m.exec(certificate.subject)?.[1] ?? 'sni-passthrough local CA';
  const id = keyIdentifier(certificate.publicKey).subarray(0, 4).toString('hex');
  return { file, pem, certificate, nickname, fileStem: `sni-passthrough-local-ca-${id}` };
}

/** One outcome per store: `failed` makes the exit code 1. */
interface StoreResult {
  failed: boolean;
  lines: string[];
  /** The store's tool is not installed (certutil). */
  toolMissing?: boolean;
}

const done = (...lines: string[]): StoreResult => ({ failed: false, lines });
const failed = (...lines: string[]): StoreResult => ({ failed: true, lines });

/** A word as sh reads it: as is when safe, else single-quoted. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

interface ToolResult {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** Runs a tool with stdin closed; `code` is its exit status, or the spawn error ('ENOENT' when it is not installed). */
function runTool(file: string, args: string[]): Promise<ToolResult> {
  return new Promise((resolvePromise) => {
    const child = execFile(file, args, { timeout: TOOL_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? ((error as NodeJS.ErrnoException).code ?? (error.killed ? 'timed out' : 1)) : 0;
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** The first line of what a tool printed on failure, for a one-line message. */
function toolFailure(tool: string, result: ToolResult): string {
  const said = `${result.stderr}\n${result.stdout}`.split('\n').find((line) => line.trim() !== '');
  return `${tool} exited with ${result.code}${said ? `: ${said.trim()}` : ''}`;
}

async function readText(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return null;
  }
}

/** Same certificate, whatever the PEM line breaks. */
function sameCertificate(pem: string | null, ca: TrustedCa): boolean {
  if (pem === null) return false;
  try {
    return new X509Certificate(pem).raw.equals(ca.certificate.raw);
  } catch {
    return false;
  }
}

// The system store (Debian, Ubuntu): a .crt under /usr/local/share/ca-certificates, then update-ca-certificates.

/** What to do where update-ca-certificates is not the system's tool. */
const otherSystems = (file: string): string =>
  `Fedora/RHEL: copy it to /etc/pki/ca-trust/source/anchors/ and run update-ca-trust; ` +
  `Arch: trust anchor ${file}; ` +
  `macOS: security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${file} (each with sudo); or use --ca-dir`;

/** The path of an executable on PATH or in the sbin folders (a user's PATH on Debian leaves them out), or null. */
async function findExecutable(name: string, env: NodeJS.ProcessEnv): Promise<string | null> {
  for (const directory of [...(env.PATH ?? '').split(delimiter).filter(isAbsolute), '/usr/local/sbin', '/usr/sbin', '/sbin']) {
    const candidate = join(directory, name);
    if (
      await fs.access(candidate, fsConstants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return null;
}

async function updateSystemStore(ca: TrustedCa, install: boolean, environment: TrustEnvironment): Promise<StoreResult> {
  const target = join(SYSTEM_CA_DIRECTORY, `${ca.fileStem}.crt`);
  const present = sameCertificate(await readText(target), ca);
  if (install === present) return done(`system store: ${install ? 'already has' : 'does not have'} ${target}`);
  const caFile = shellQuote(ca.file);
  const updateTool = await findExecutable('update-ca-certificates', environment.env);
  if (!updateTool) {
    return failed(
      `system store: no update-ca-certificates here (it is Debian's and Ubuntu's); ${install ? 'add' : 'remove'} ${caFile} by hand: ${otherSystems(caFile)}`,
    );
  }
  const command = install ? `sudo install -m 644 ${caFile} ${target} && sudo update-ca-certificates` : `sudo rm ${target} && sudo update-ca-certificates`;
  if (!environment.isRoot) {
    return failed(`system store: not changed, it needs root; run:`, `  ${command}`);
  }
  try {
    if (install) {
      await fs.mkdir(SYSTEM_CA_DIRECTORY, { recursive: true, mode: 0o755 });
      await fs.writeFile(target, ca.pem, { mode: 0o644 });
    } else {
      await fs.rm(target);
    }
  } catch (error) {
    return failed(`system store: cannot ${install ? 'write' : 'remove'} ${target}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const update = await runTool(updateTool, []);
  if (update.code !== 0) return failed(`system store: ${toolFailure('update-ca-certificates', update)}`);
  return done(`system store: ${install ? 'added' : 'removed'} ${target} (update-ca-certificates)`);
}

// An OpenSSL CA directory: the certificate as <stem>.pem plus the <subject-hash>.N link OpenSSL looks up (as c_rehash makes).

/** Hash links OpenSSL tries in order; a different CA with the same subject hash takes the next number. */
const MAX_HASH_LINKS = 16;

async function updateCaDirectory(directory: string, ca: TrustedCa, install: boolean): Promise<StoreResult> {
  const label = `CA directory ${directory}`;
  const pemName = `${ca.fileStem}.pem`;
  const hash = opensslSubjectHash(ca.certificate.raw);
  const changed: string[] = [];
  try {
    if (install) await fs.mkdir(directory, { recursive: true, mode: 0o755 });
    if (install && !sameCertificate(await readText(join(directory, pemName)), ca)) {
      await fs.writeFile(join(directory, pemName), ca.pem, { mode: 0o644 });
      changed.push(pemName);
    }
    let linked = false;
    for (let n = 0; n < MAX_HASH_LINKS; n++) {
      const link = join(directory, `${hash}.${n}`);
      const exists = await fs.lstat(link).then(
        () => true,
        () => false,
      );
      if (exists && sameCertificate(await readText(link), ca)) {
        if (install) linked = true;
        else {
          await fs.rm(link);
          changed.push(`${hash}.${n}`);
        }
      } else if (!exists && install && !linked) {
        await fs.symlink(pemName, link);
        changed.push(`${hash}.${n}`);
        linked = true;
      }
    }
    if (install && !linked) return failed(`${label}: ${hash}.0 to ${hash}.${MAX_HASH_LINKS - 1} are all taken by other certificates`);
    if (!install && sameCertificate(await readText(join(directory, pemName)), ca)) {
      await fs.rm(join(directory, pemName));
      changed.push(pemName);
    }
  } catch (error) {
    return failed(`${label}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (changed.length === 0) return done(`${label}: ${install ? 'already has' : 'does not have'} the CA`);
  return done(`${label}: ${install ? 'added' : 'removed'} ${changed.join(', ')}`);
}

// NSS databases (Chromium, Firefox): certutil from libnss3-tools.

interface NssDatabase {
  directory: string;
  /** Whose it is, for messages: "Chromium", "Firefox profile x.default". */
  owner: string | null;
}

/** Whether `directory` holds an NSS database in the SQL format (cert9.db) browsers use. */
const hasNssDatabase = (directory: string): Promise<boolean> =>
  fs.access(join(directory, 'cert9.db')).then(
    () => true,
    () => false,
  );

/** Chromium's database and Firefox profiles' (deb and snap installs) that exist under `home`. */
async function findNssDatabases(home: string): Promise<NssDatabase[]> {
  const found: NssDatabase[] = [];
  for (const directory of [join(home, '.pki', 'nssdb'), join(home, 'snap', 'chromium', 'current', '.pki', 'nssdb')]) {
    if (await hasNssDatabase(directory)) found.push({ directory, owner: 'Chromium' });
  }
  for (const profiles of [join(home, '.mozilla', 'firefox'), join(home, 'snap', 'firefox', 'common', '.mozilla', 'firefox')]) {
    const names = await fs.readdir(profiles).catch(() => [] as string[]);
    for (const name of names.sort()) {
      if (await hasNssDatabase(join(profiles, name))) found.push({ directory: join(profiles, name), owner: `Firefox profile ${name}` });
    }
  }
  return found;
}

async function updateNssDatabase(database: NssDatabase, ca: TrustedCa, install: boolean): Promise<StoreResult> {
  const label = `NSS database ${database.directory}${database.owner ? ` (${database.owner})` : ''}`;
  // certutil would create a new database in any directory: a mistyped path must fail instead.
  if (!(await hasNssDatabase(database.directory)))
    return failed(`${label}: no cert9.db there (create one with certutil -N -d sql:${shellQuote(database.directory)} --empty-password)`);
  const db = `sql:${database.directory}`;
  const listed = await runTool('certutil', ['-L', '-d', db, '-n', ca.nickname, '-a']);
  if (listed.code === 'ENOENT') return { ...failed(`${label}: certutil not found (Debian: apt-get install libnss3-tools)`), toolMissing: true };
  const present = listed.code === 0 && sameCertificate(listed.stdout, ca);
  if (install === present) return done(`${label}: ${install ? 'already has' : 'does not have'} "${ca.nickname}"`);
  // "C,," trusts it to issue TLS server certificates, and for nothing else.
  const change = install
    ? await runTool('certutil', ['-A', '-d', db, '-t', 'C,,', '-n', ca.nickname, '-i', ca.file])
    : await runTool('certutil', ['-D', '-d', db, '-n', ca.nickname]);
  if (change.code !== 0) return failed(`${label}: ${toolFailure('certutil', change)}`);
  return done(`${label}: ${install ? 'added' : 'removed'} "${ca.nickname}"`);
}

async function updateNssDatabases(options: TrustOptions, ca: TrustedCa, home: string): Promise<StoreResult[]> {
  const named = options.nssDb?.map((directory): NssDatabase => ({ directory: resolve(directory), owner: null }));
  const databases = named ?? (await findNssDatabases(home));
  if (databases.length === 0) {
    return [done(`NSS: no Chromium or Firefox database under ${home} (a browser creates its own on first start: run trust again after)`)];
  }
  const results: StoreResult[] = [];
  for (const database of databases) {
    const result = await updateNssDatabase(database, ca, !options.uninstall);
    // Browsers found but certutil not installed: a hint, not a failure of what was asked (--nss-db was).
    results.push(result.toolMissing && !named ? done(...result.lines) : result);
  }
  return results;
}

/** The command that undoes this one: the same stores, with --uninstall. */
function undoCommand(options: TrustOptions, defaultStateDir: string): string {
  const words = ['sni-passthrough', 'trust', '--uninstall'];
  if (options.stateDir !== defaultStateDir) words.push('--state-dir', options.stateDir);
  if (options.caDir) words.push('--ca-dir', options.caDir);
  for (const db of options.nssDb ?? []) words.push('--nss-db', db);
  return words.map(shellQuote).join(' ');
}

/** Runs `trust`; resolves with the exit code (0 every store done, 1 something failed: one line each on stderr). */
export async function trust(given: TrustOptions, environment: TrustEnvironment): Promise<number> {
  const { print, fail } = environment;
  const options = { ...given, stateDir: resolve(given.stateDir) };
  const caFile = join(options.stateDir, CA_CERTIFICATE_FILE);
  let ca: TrustedCa;
  try {
    if (options.uninstall) {
      const pem = await readText(caFile);
      if (pem === null) {
        print(`no local CA in ${options.stateDir}: nothing to remove`);
        return 0;
      }
      try {
        ca = trustedCa(caFile, pem);
      } catch {
        fail(`sni-passthrough: trust: ${caFile} is not a certificate: remove what trust added by hand`);
        return 1;
      }
      print(`local CA: ${caFile}`);
    } else {
      const authority = await LocalCertificateAuthority.open(options.stateDir);
      ca = trustedCa(caFile, authority.certificatePem);
      print(`local CA: ${caFile}${authority.created ? ' (created now)' : ''}`);
      print(`  "${ca.nickname}", valid until ${new Date(ca.certificate.validTo).toISOString().slice(0, 10)}, SHA-256 ${ca.certificate.fingerprint256}`);
    }
  } catch (error) {
    if (!isOwnError(error)) throw error;
    fail(`sni-passthrough: trust: ${error.message}`);
    return 1;
  }
  const defaultStateDir = defaultStateDirectory(environment.env);
  if (environment.isRoot && environment.env.SUDO_USER && options.stateDir === defaultStateDir) {
    print(
      `note: under sudo this is root's CA; the proxy run as ${environment.env.SUDO_USER} has its own: run trust as ${environment.env.SUDO_USER} (it prints the one step that needs sudo)`,
    );
  }
  const install = !options.uninstall;
  const results = [
    options.caDir ? await updateCaDirectory(resolve(options.caDir), ca, install) : await updateSystemStore(ca, install, environment),
    ...(await updateNssDatabases(options, ca, environment.env.HOME || homedir())),
  ];
  // A failure is one line on stderr (its command included), in its place among the others.
  for (const result of results) {
    if (result.failed) fail(`sni-passthrough: trust: ${result.lines.map((line) => line.trim()).join(' ')}`);
    else for (const line of result.lines) print(line);
  }
  const failures = results.filter((result) => result.failed);
  if (install) {
    print('Restart running browsers to pick up the change.');
    print(`Undo: ${undoCommand(options, defaultStateDir)}`);
  } else {
    print(`The CA itself stays in ${options.stateDir}; delete that directory to drop it for good (the next one needs trust again).`);
  }
  return failures.length > 0 ? 1 : 0;
}
