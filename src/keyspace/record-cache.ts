import type { z } from 'zod';
import { decodeRecord, type DecodeLogger } from './decode.js';

/**
 * Each key's last decoded record and the raw value it came from, so that a record is decoded (JSON and
 * schema) once per change of its value, not on every look. At thousands of services a full decode per
 * look was most of the controller's garbage (bench/steady.ts) and most of an agent's CPU (every agent
 * decoded every service record on every service change: quadratic in a bulk registration, bench/failover.ts
 * az1000). The raw string is the mirror's own (shared, not copied); a record is reused only for the very
 * same raw value.
 */
export class RecordCache<S extends z.ZodType> {
  private readonly entries = new Map<string, { raw: string; value: z.output<S> | undefined }>();

  constructor(
    private readonly schema: S,
    private readonly log?: DecodeLogger,
  ) {}

  /** The record for `raw` under `key` (undefined for a missing or malformed value, logged once per value). */
  decode(key: string, raw: string | undefined): z.output<S> | undefined {
    if (raw === undefined) {
      this.entries.delete(key);
      return undefined;
    }
    const hit = this.entries.get(key);
    if (hit !== undefined && hit.raw === raw) return hit.value;
    const value = decodeRecord(this.schema, key, raw, this.log);
    this.entries.set(key, { raw, value });
    return value;
  }

  /** The record last decoded under `key`, whatever the key holds now (what a changed key held before). */
  previous(key: string): z.output<S> | undefined {
    return this.entries.get(key)?.value;
  }

  /** True when `view` holds exactly the cached keys, each with the raw value its record came from. */
  matches(view: ReadonlyMap<string, string>): boolean {
    if (this.entries.size !== view.size) return false;
    for (const [key, raw] of view) if (this.entries.get(key)?.raw !== raw) return false;
    return true;
  }

  /** Forgets keys no longer in `view`. */
  prune(view: ReadonlyMap<string, string>): void {
    if (this.entries.size > view.size) for (const key of this.entries.keys()) if (!view.has(key)) this.entries.delete(key);
  }
}
