import type { z } from 'zod';

export interface DecodeLogger {
  warn(obj: object, msg: string): void;
}

/**
 * Parse one etcd value with a record schema. Returns undefined (and logs the key and the reason)
 * for a value that is not JSON or does not match: a bad record is skipped, never fatal to a loop.
 */
export function decodeRecord<S extends z.ZodType>(
  schema: S,
  key: string,
  raw: string | Buffer | null | undefined,
  log?: DecodeLogger,
): z.output<S> | undefined {
  if (raw === null || raw === undefined) return undefined;
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    log?.warn({ key, err: (err as Error).message }, 'skipping etcd value that is not JSON');
    return undefined;
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    log?.warn({ key, issues: parsed.error.issues.slice(0, 5) }, 'skipping etcd value that does not match its schema');
    return undefined;
  }
  return parsed.data;
}

export function encodeRecord(value: unknown): string {
  return JSON.stringify(value);
}
