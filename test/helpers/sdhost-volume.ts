import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface VolumeImageOptions {
  /** Directory for the image file. */
  dir: string;
  /** File name of the image. */
  fileName?: string;
  /** Size in MiB (default 16: mkfs.ext4's smallest comfortable size, quick to create). */
  sizeMiB?: number;
  /** ext4 label (`mkfs.ext4 -L`). */
  label?: string;
  /** Files to put on the filesystem, path relative to its root → content. */
  files?: Record<string, string>;
  /** No filesystem at all (zeros): what a corrupt or never-formatted volume looks like. */
  corrupt?: boolean;
}

/** A "volume": an image file, ext4 with a label and some files (mkfs.ext4 -d, nothing mounted here). */
export async function makeVolumeImage(opts: VolumeImageOptions): Promise<string> {
  const img = join(opts.dir, opts.fileName ?? `vol-${randomBytes(4).toString('hex')}.img`);
  await execFileP('truncate', ['-s', `${opts.sizeMiB ?? 16}M`, img]);
  if (opts.corrupt) return img;
  const staging = mkdtempSync(join(opts.dir, 'staging-'));
  try {
    for (const [path, content] of Object.entries(opts.files ?? {})) {
      const abs = join(staging, path);
      await mkdir(dirname(abs), { recursive: true });
      await writeFile(abs, content);
    }
    const args = ['-q', '-F', '-d', staging];
    if (opts.label) args.push('-L', opts.label);
    await execFileP('mkfs.ext4', [...args, img]);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return img;
}
