import { Ec2SimError, invalidParameter } from './errors.js';

/**
 * EC2 Query protocol input: a form-encoded body (`Action=…&Version=2016-11-15&VolumeId.1=…`) whose
 * lists are flattened into 1-based indexed keys (`Filter.1.Value.2`).
 */
export type QueryParams = ReadonlyMap<string, string>;

export function parseQuery(body: string): QueryParams {
  return new Map(new URLSearchParams(body));
}

/** `Prefix.1`, `Prefix.2`, … in index order (EC2 lists need not be dense, so sort by index). */
export function indexedList(params: QueryParams, prefix: string): string[] {
  const re = new RegExp(`^${escapeRe(prefix)}\\.(\\d+)$`);
  const found: [number, string][] = [];
  for (const [key, value] of params) {
    const match = re.exec(key);
    if (match?.[1] !== undefined) found.push([Number(match[1]), value]);
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, value]) => value);
}

/** The distinct indexes N of `Prefix.N.*` keys, ascending. */
function indexesOf(params: QueryParams, prefix: string): number[] {
  const re = new RegExp(`^${escapeRe(prefix)}\\.(\\d+)\\.`);
  const set = new Set<number>();
  for (const key of params.keys()) {
    const match = re.exec(key);
    if (match?.[1] !== undefined) set.add(Number(match[1]));
  }
  return [...set].sort((a, b) => a - b);
}

export interface Filter {
  name: string;
  values: string[];
}

/** `Filter.N.Name` / `Filter.N.Value.M`. */
export function filters(params: QueryParams): Filter[] {
  return indexesOf(params, 'Filter').map((n) => {
    const name = params.get(`Filter.${n}.Name`);
    if (name === undefined || name === '') throw invalidParameter(`Filter ${n} has no name`);
    return { name, values: indexedList(params, `Filter.${n}.Value`) };
  });
}

/** `Prefix.N.Key` / `Prefix.N.Value` pairs (value undefined when absent, as DeleteTags allows). */
export function tagList(params: QueryParams, prefix: string): { key: string; value?: string }[] {
  return indexesOf(params, prefix).map((n) => {
    const key = params.get(`${prefix}.${n}.Key`);
    if (key === undefined) throw invalidParameter(`${prefix}.${n}.Key is required`);
    const value = params.get(`${prefix}.${n}.Value`);
    return value === undefined ? { key } : { key, value };
  });
}

/** Tags from `TagSpecification.N.ResourceType` + `TagSpecification.N.Tag.M.*` for one resource type. */
export function tagSpecifications(params: QueryParams, resourceType: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const n of indexesOf(params, 'TagSpecification')) {
    const type = params.get(`TagSpecification.${n}.ResourceType`);
    if (type !== resourceType) throw invalidParameter(`'${type ?? ''}' is not a valid taggable resource type for this operation.`);
    for (const tag of tagList(params, `TagSpecification.${n}.Tag`)) tags[tag.key] = tag.value ?? '';
  }
  return tags;
}

export function boolParam(params: QueryParams, name: string): boolean {
  const value = params.get(name);
  if (value === undefined) return false;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalidParameter(`Invalid value '${value}' for ${name}: expected true or false`);
}

export function intParam(params: QueryParams, name: string): number | undefined {
  const value = params.get(name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw invalidParameter(`Invalid value '${value}' for ${name}`);
  return Number(value);
}

export function required(params: QueryParams, name: string): string {
  const value = params.get(name);
  if (value === undefined || value === '') throw new Ec2SimError('MissingParameter', `The request must contain the parameter ${name}`);
  return value;
}

function escapeRe(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
