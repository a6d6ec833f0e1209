import type { z } from 'zod';

/** A config value failed validation; `field` is the dotted path (`etcd.endpoints[0]`). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly field: string,
    readonly reason: string,
    readonly source?: string,
  ) {
    super(`config error: ${field}: ${reason}${source ? ` (from ${source})` : ''}`);
  }
}

/** `['etcd', 'endpoints', 0]` → `etcd.endpoints[0]`. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

export function fromZodError(error: z.ZodError, source?: string): ConfigError {
  const issue = error.issues[0];
  if (!issue) return new ConfigError('(root)', 'invalid', source);
  const keys = issue.code === 'unrecognized_keys' ? `: ${issue.keys.join(', ')}` : '';
  return new ConfigError(fieldPath(issue.path), `${issue.message}${keys}`, source);
}
