import { chmod, mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** When new content took a path's place (taken just before the committing call): monotonic and wall clock. */
export interface Commit {
  at: number;
  wallClock: number;
}

export function commitTime(): Commit {
  return { at: performance.now(), wallClock: Date.now() };
}

/**
 * A Kubernetes ConfigMap volume, laid out as the kubelet lays it out:
 * `dir/FILE` → `..data/FILE`, `..data` → `..vN`. An update writes `..vN+1`,
 * points a `..tmp` symlink at it, renames that over `..data` (atomic) and
 * deletes the old version.
 */
export class ConfigMapVolume {
  private version = 0;
  constructor(
    readonly dir: string,
    readonly file: string,
  ) {}

  /** The path a pod reads the config at. */
  get path(): string {
    return join(this.dir, this.file);
  }

  /** `file` holding `text` in a fresh temp directory (its name starts with `prefix`). */
  static async create(text: string, { file = 'proxy.yaml', prefix = 'sni-passthrough-configmap-' } = {}): Promise<ConfigMapVolume> {
    const volume = new ConfigMapVolume(await mkdtemp(join(tmpdir(), prefix)), file);
    // Readable by any user, as the kubelet's volumes are: a container's non-root user reads it through a bind mount.
    await chmod(volume.dir, 0o755);
    const first = await volume.writeVersion(text);
    await symlink(first, join(volume.dir, '..data'));
    await symlink(join('..data', file), volume.path);
    return volume;
  }

  async swap(text: string): Promise<Commit> {
    const previous = await readlink(join(this.dir, '..data'));
    const next = await this.writeVersion(text);
    await symlink(next, join(this.dir, '..tmp'));
    const commit = commitTime();
    await rename(join(this.dir, '..tmp'), join(this.dir, '..data'));
    await rm(join(this.dir, previous), { recursive: true, force: true });
    return commit;
  }

  private async writeVersion(text: string): Promise<string> {
    const name = `..v${++this.version}`;
    await mkdir(join(this.dir, name));
    await writeFile(join(this.dir, name, this.file), text);
    return name;
  }
}
