import { invalidParameter } from './errors.js';
import type { Filter } from './protocol.js';

/**
 * For one resource, the values a filter name sees (undefined: this resource type has no such filter).
 * `tag:<key>` and `tag-key` are handled here for every resource.
 */
export type FilterValues = (name: string) => string[] | undefined;

export function tagFilterValues(name: string, tags: Record<string, string>): string[] | undefined {
  if (name === 'tag-key') return Object.keys(tags);
  if (name.startsWith('tag:')) {
    const value = tags[name.slice(4)];
    return value === undefined ? [] : [value];
  }
  return undefined;
}

/** Compiled patterns, reused: a filter of 200 values over thousands of resources would compile them per resource. */
const compiled = new Map<string, RegExp>();

/** EC2 filter values may use `*` (any run) and `?` (one character) wildcards. */
function wildcard(pattern: string): RegExp {
  const hit = compiled.get(pattern);
  if (hit !== undefined) return hit;
  if (compiled.size >= 50_000) compiled.clear();
  const re = compile(pattern);
  compiled.set(pattern, re);
  return re;
}

function compile(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 's');
}

/**
 * True when every filter has a value matching one of the resource's values (filters AND, values OR).
 * An unknown filter name is an error, as on EC2.
 */
export function matchesAll(filters: Filter[], valuesOf: FilterValues): boolean {
  return filters.every((filter) => {
    const actual = valuesOf(filter.name);
    if (actual === undefined) throw invalidParameter(`The filter '${filter.name}' is invalid`);
    const patterns = filter.values.map(wildcard);
    return actual.some((value) => patterns.some((re) => re.test(value)));
  });
}

/** Checks filter names up front, so an unknown filter fails even when there are no resources. */
export function checkFilterNames(filters: Filter[], known: readonly string[]): void {
  for (const filter of filters) {
    if (filter.name === 'tag-key' || filter.name.startsWith('tag:')) continue;
    if (!known.includes(filter.name)) throw invalidParameter(`The filter '${filter.name}' is invalid`);
  }
}
