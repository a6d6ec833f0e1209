/**
 * Secret files (the TLS private key, the etcd password file) must be readable only by their owner, as
 * ssh insists for private keys: a key or password that any local user can read is anyone's identity,
 * and with it anyone's ability to move a database. A too-open file is refused at start-up, naming the
 * file, its mode and the fix; `etcd.allowInsecureFileModes` (env `EBS_FAILOVER_ETCD_ALLOW_INSECURE_FILE_MODES`)
 * turns the refusal into a warning for setups that cannot help it.
 */
import { readFileSync, statSync } from 'node:fs';

/** A secret file is readable or writable by group or others (mode & 077 ≠ 0). */
export class InsecureFileModeError extends Error {
  override readonly name = 'InsecureFileModeError';
  constructor(
    readonly field: string,
    readonly file: string,
    readonly mode: number,
  ) {
    super(
      `${field} ${file} is accessible by group/others (mode ${octal(mode)}); it must be readable only by its owner: ` +
        `run \`chmod 600 ${file}\`, or set etcd.allowInsecureFileModes (EBS_FAILOVER_ETCD_ALLOW_INSECURE_FILE_MODES=true) to start anyway`,
    );
  }
}

/** A secret file could not be read (missing, not permitted). */
export class SecretFileError extends Error {
  override readonly name = 'SecretFileError';
  constructor(
    readonly field: string,
    readonly file: string,
    reason: string,
  ) {
    super(`${field} ${file}: ${reason}`);
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/** The permission bits of a mode that no secret file may have: anything for group or others. */
export const GROUP_OTHER_BITS = 0o077;

/**
 * Checks that `file` is accessible by its owner only. Returns a warning (text) instead of throwing when
 * `allowInsecure`; null when the mode is fine.
 */
export function checkSecretFileMode(field: string, file: string, allowInsecure: boolean): string | null {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new SecretFileError(field, file, `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if ((mode & GROUP_OTHER_BITS) === 0) return null;
  const error = new InsecureFileModeError(field, file, mode);
  if (!allowInsecure) throw error;
  return `${error.message.split(';')[0] ?? error.message}; started anyway because etcd.allowInsecureFileModes is set`;
}

/**
 * Reads the etcd password from `file` (mode checked first). One trailing newline is dropped (what
 * `echo secret > file` leaves); an empty password is refused. The password itself never appears in
 * an error.
 */
export function readPasswordFile(file: string, allowInsecure: boolean): { password: string; warning: string | null } {
  const warning = checkSecretFileMode('etcd.passwordFile', file, allowInsecure);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SecretFileError('etcd.passwordFile', file, `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new SecretFileError('etcd.passwordFile', file, 'is empty');
  return { password, warning };
}
