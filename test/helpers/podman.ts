import { existsSync } from 'node:fs';
import { chown, copyFile, cp, lstat, mkdir, mkdtemp, readFile, readlink, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { type ProgramResult, runProgram, which } from './programs.js';

/** Pulls and builds download and compile; these are guards against a hang, not measurements. */
export const PULL_GUARD_MS = 180_000;
export const BUILD_GUARD_MS = 900_000;
const COMMAND_GUARD_MS = 120_000;

/** The first line of podman's output that says what went wrong. */
export function podmanError(result: ProgramResult): string {
  const lines = `${result.stderr}\n${result.stdout}`.split('\n').map((line) => line.trim());
  return lines.find((line) => /^Error/i.test(line)) ?? lines.find((line) => line !== '') ?? `exit ${result.code}`;
}

/** `label`, and on failure what podman said: an assertion message. */
export function outcome(label: string, result: ProgramResult): string {
  return result.code === 0 ? label : `${label}: ${podmanError(result)}`;
}

/**
 * `--ulimit` flags asking for the limits this process already has (open
 * files capped at 65536, processes at 4096). Without them podman asks the
 * runtime for 1048576 open files, which a root without CAP_SYS_RESOURCE (a
 * CI machine that is itself a container or a locked-down VM) may not set:
 * "crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted". Keeping a
 * limit or lowering it always works.
 */
export async function inheritedLimits(): Promise<string[]> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const soft = (name: string): number => Number(new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  const files = Math.min(soft('Max open files'), 65_536);
  const processes = Math.min(soft('Max processes'), 4_096);
  return [
    ...(Number.isFinite(files) ? ['--ulimit', `nofile=${files}:${files}`] : []),
    ...(Number.isFinite(processes) ? ['--ulimit', `nproc=${processes}:${processes}`] : []),
  ];
}

/** podman with the global flags that work on this machine (an OCI runtime that can start containers here). */
export class Podman {
  constructor(
    readonly binary: string,
    readonly globalArgs: string[],
    /** For `run` and `build`: see `inheritedLimits`. */
    readonly limits: string[],
  ) {}

  /** Which runtime: podman's default, or `--runtime runc`. */
  describe(): string {
    return this.globalArgs.length === 0 ? "podman's default OCI runtime" : this.globalArgs.join(' ');
  }

  command(args: string[], guardMs = COMMAND_GUARD_MS): Promise<ProgramResult> {
    return runProgram(this.binary, [...this.globalArgs, ...args], '', guardMs);
  }

  /** The argument list that runs `podman run` with this machine's flags, for a caller that spawns it itself. */
  runCommand(args: string[]): string[] {
    return [this.binary, ...this.globalArgs, 'run', ...this.limits, ...args];
  }

  run(args: string[], guardMs = COMMAND_GUARD_MS): Promise<ProgramResult> {
    return this.command(['run', ...this.limits, ...args], guardMs);
  }

  build(args: string[]): Promise<ProgramResult> {
    return this.command(['build', ...this.limits, ...args], BUILD_GUARD_MS);
  }

  async imageExists(image: string): Promise<boolean> {
    return (await this.command(['image', 'exists', image])).code === 0;
  }
}

/**
 * A Podman whose runtime can start `image` here, or the reason none can.
 * Tried in order: podman's default (crun on Debian), then runc when
 * installed. crun refuses hosts with cgroup controllers on both hierarchies
 * ("cgroups in hybrid mode not supported"), which runc accepts.
 */
export async function workingPodman(binary: string, image: string): Promise<{ podman: Podman; tried: string[] } | { reason: string }> {
  const limits = await inheritedLimits();
  const candidates: string[][] = [[]];
  const runc = await which('runc');
  if (runc) candidates.push(['--runtime', 'runc']);
  const tried: string[] = [];
  for (const globalArgs of candidates) {
    const podman = new Podman(binary, globalArgs, limits);
    const result = await podman.run(['--rm', '--network', 'none', '--entrypoint', 'node', image, '-e', 'process.exit(0)']);
    if (result.code === 0) return { podman, tried };
    tried.push(`${podman.describe()}: ${podmanError(result)}`);
  }
  return { reason: `podman cannot start a container here (${tried.join('; ')})${runc ? '' : '; runc is not installed'}` };
}

/** Library paths `ldd` lists for `binary`. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const result = await runProgram('ldd', [binary]);
  return [...result.stdout.matchAll(/(\/\S+) \(0x[0-9a-f]+\)/g)].map((match) => match[1]!);
}

/**
 * Copies `path` to the same place under `root`, keeping the symlinks on the
 * way as symlinks (`/lib64/ld-linux-x86-64.so.2` must still be found by that
 * name). Directories are resolved first: on a merged-/usr system `/bin/sh`
 * lands in `usr/bin/sh`, reached through the `bin` symlink `mirrorTopLevelLinks` made.
 */
async function copyInto(root: string, path: string): Promise<void> {
  const directory = await realpath(dirname(path));
  const source = join(directory, basename(path));
  const target = join(root, source);
  const copied = await lstat(target).then(
    () => true,
    () => false,
  );
  if (copied) return;
  await mkdir(dirname(target), { recursive: true });
  if ((await lstat(source)).isSymbolicLink()) {
    const link = await readlink(source);
    await symlink(link, target);
    await copyInto(root, resolve(directory, link));
  } else {
    await copyFile(source, target);
  }
}

/** The merged-/usr links (`bin` → `usr/bin`, ...) this machine has, made under `root` too. */
async function mirrorTopLevelLinks(root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const name of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const stat = await lstat(join('/', name)).catch(() => null);
    if (stat?.isSymbolicLink()) await symlink(await readlink(join('/', name)), join(root, name));
  }
}

/**
 * Imports a stand-in for node:20-bookworm-slim, made of this machine's own
 * Node and npm, for machines that cannot pull images: the Containerfile's
 * steps then run as they would on the real base. It holds what that image
 * offers the Containerfile (node, npm, a POSIX shell, env, sleep, the `node`
 * user 1000) plus this machine's CA bundle, which npm needs where the
 * registry is reached through a TLS-inspecting proxy, and npm's
 * prefer-offline, so a build with the host's npm cache mounted reads from it.
 */
export async function importStandInNodeImage(podman: Podman, tag: string): Promise<ProgramResult> {
  const work = await mkdtemp(join(tmpdir(), 'sni-passthrough-node-image-'));
  try {
    const root = join(work, 'root');
    await mirrorTopLevelLinks(root);
    const programs = [process.execPath];
    for (const name of ['sh', 'env', 'sleep']) {
      const path = await which(name);
      if (!path) throw new Error(`cannot make the stand-in Node image: no ${name} on this machine`);
      programs.push(path);
    }
    for (const program of programs) {
      await copyInto(root, program);
      for (const library of await sharedLibraries(program)) await copyInto(root, library);
    }
    const npmCli = await which('npm');
    if (!npmCli) throw new Error('cannot make the stand-in Node image: no npm on this machine');
    const npmDirectory = dirname(dirname(await realpath(npmCli)));
    await cp(npmDirectory, join(root, 'usr/local/lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
    await mkdir(join(root, 'usr/local/bin'), { recursive: true });
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n');
    await writeFile(join(root, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
    for (const directory of ['root', 'tmp', 'home/node']) await mkdir(join(root, directory), { recursive: true });
    await runProgram('chmod', ['1777', join(root, 'tmp')]);
    await chown(join(root, 'home/node'), 1000, 1000).catch(() => {});
    const changes = ['ENV PATH=/usr/local/bin:/usr/bin:/bin', 'ENV npm_config_prefer_offline=true'];
    const bundle = '/etc/ssl/certs/ca-certificates.crt';
    if (existsSync(bundle)) {
      await copyInto(root, bundle);
      changes.push(`ENV NODE_EXTRA_CA_CERTS=${bundle}`);
    }
    const tarball = join(work, 'root.tar');
    const tar = await runProgram('tar', ['-C', root, '-cf', tarball, '.'], '', COMMAND_GUARD_MS);
    if (tar.code !== 0) return tar;
    return await podman.command(['import', ...changes.flatMap((change) => ['--change', change]), tarball, tag]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
