import type { z } from 'zod';

/** One bad config value: the dotted path, why, and where it came from (`file …`, `env EBS_FAILOVER_…`, `flags`). */
export interface ConfigProblem {
  field: string;
  reason: string;
  source?: string;
}

function problemLine(p: ConfigProblem): string {
  return `${p.field}: ${p.reason}${p.source ? ` (from ${p.source})` : ''}`;
}

/**
 * A config value failed validation; `field` is the dotted path (`etcd.endpoints[0]`) of the first
 * problem, `problems` all of them (an operator fixes everything in one go, not one per run).
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];
  constructor(
    readonly field: string,
    readonly reason: string,
    readonly source?: string,
    more: readonly ConfigProblem[] = [],
  ) {
    const problems = [{ field, reason, source }, ...more];
    super(problems.length === 1 ? `config error: ${problemLine({ field, reason, source })}` : `${problems.length} config errors:\n${problems.map((p) => `  ${problemLine(p)}`).join('\n')}`);
    this.problems = problems;
  }

  static of(problems: readonly ConfigProblem[]): ConfigError {
    const [first, ...rest] = problems;
    return new ConfigError(first?.field ?? '(root)', first?.reason ?? 'invalid', first?.source, rest);
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
