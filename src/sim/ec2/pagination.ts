import { Ec2SimError, invalidParameter } from './errors.js';
import { intParam, type QueryParams } from './protocol.js';

/**
 * MaxResults/NextToken paging over items sorted by id. The token is the last id returned (opaque to
 * callers), so items added or removed between pages neither repeat nor shift the rest.
 */
export function paginate<T>(
  items: T[],
  idOf: (item: T) => string,
  params: QueryParams,
  limits: { min: number; max: number; idsParam: string },
): { page: T[]; nextToken?: string } {
  const maxResults = intParam(params, 'MaxResults');
  const token = params.get('NextToken');
  if (maxResults !== undefined) {
    if (params.has(`${limits.idsParam}.1`)) {
      throw new Ec2SimError('InvalidParameterCombination', `The parameter ${limits.idsParam}s cannot be used with the parameter maxResults`);
    }
    if (maxResults < limits.min || maxResults > limits.max) {
      throw invalidParameter(`Value ( ${maxResults} ) for parameter maxResults is invalid. Expecting a value between ${limits.min} and ${limits.max}.`);
    }
  }
  const sorted = [...items].sort((a, b) => idOf(a).localeCompare(idOf(b)));
  let start = 0;
  if (token !== undefined && token !== '') {
    const after = decodeToken(token);
    start = sorted.findIndex((item) => idOf(item) > after);
    if (start < 0) start = sorted.length;
  }
  if (maxResults === undefined) return { page: sorted.slice(start) };
  const page = sorted.slice(start, start + maxResults);
  const last = page[page.length - 1];
  return start + maxResults < sorted.length && last !== undefined ? { page, nextToken: encodeToken(idOf(last)) } : { page };
}

function encodeToken(lastId: string): string {
  return Buffer.from(JSON.stringify({ after: lastId })).toString('base64url');
}

function decodeToken(token: string): string {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'after' in parsed && typeof parsed.after === 'string') return parsed.after;
  } catch {
    // fall through: malformed token
  }
  throw invalidParameter(`Invalid NextToken: ${token}`);
}
