import { describe, expect, it } from 'vitest';
import { matchesAll, tagFilterValues } from './filters.js';
import { paginate } from './pagination.js';
import { filters, indexedList, parseQuery, tagList, tagSpecifications } from './protocol.js';
import { categorize, Throttle } from './throttle.js';
import { el, errorDocument, list, render, responseDocument } from './xml.js';
import { Ec2SimError } from './errors.js';

describe('query protocol parsing', () => {
  const params = parseQuery(
    'Action=DescribeVolumes&Version=2016-11-15&VolumeId.2=vol-b&VolumeId.1=vol-a&VolumeId.10=vol-j' +
      '&Filter.1.Name=tag%3AName&Filter.1.Value.1=x&Filter.1.Value.2=y*&Filter.2.Name=status&Filter.2.Value.1=in-use',
  );

  it('orders indexed lists numerically, not lexically', () => {
    expect(indexedList(params, 'VolumeId')).toEqual(['vol-a', 'vol-b', 'vol-j']);
  });

  it('reads filters with their values', () => {
    expect(filters(params)).toEqual([
      { name: 'tag:Name', values: ['x', 'y*'] },
      { name: 'status', values: ['in-use'] },
    ]);
  });

  it('reads tag specifications of the requested resource type only', () => {
    const spec = parseQuery('TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v&TagSpecification.1.Tag.2.Key=e');
    expect(tagSpecifications(spec, 'snapshot')).toEqual({ k: 'v', e: '' });
    expect(() => tagSpecifications(spec, 'volume')).toThrow(Ec2SimError);
  });

  it('keeps a DeleteTags tag without value distinct from one with an empty value', () => {
    expect(tagList(parseQuery('Tag.1.Key=a&Tag.2.Key=b&Tag.2.Value='), 'Tag')).toEqual([{ key: 'a' }, { key: 'b', value: '' }]);
  });
});

describe('filters', () => {
  const tags = { Name: 'db-1', role: 'postgres' };
  const valuesOf = (name: string): string[] | undefined => (name === 'status' ? ['in-use'] : tagFilterValues(name, tags));

  it.each([
    [[{ name: 'tag:Name', values: ['db-*'] }], true],
    [[{ name: 'tag:Name', values: ['db-?'] }], true],
    [[{ name: 'tag:Name', values: ['db'] }], false],
    [[{ name: 'tag-key', values: ['role'] }], true],
    [[{ name: 'tag:missing', values: ['*'] }], false],
    [[{ name: 'status', values: ['available', 'in-use'] }, { name: 'tag:role', values: ['postgres'] }], true],
    [[{ name: 'status', values: ['in-use'] }, { name: 'tag:role', values: ['mysql'] }], false],
  ])('%j → %s', (wanted, expected) => {
    expect(matchesAll(wanted, valuesOf)).toBe(expected);
  });

  it('rejects an unknown filter name', () => {
    expect(() => matchesAll([{ name: 'colour', values: ['red'] }], valuesOf)).toThrow(/filter 'colour' is invalid/);
  });
});

describe('pagination', () => {
  const ids = Array.from({ length: 12 }, (_, n) => `vol-${String(n).padStart(8, '0')}`);
  const page = (query: string) => paginate(ids, (x) => x, parseQuery(query), { min: 5, max: 500, idsParam: 'VolumeId' });

  it('walks all items exactly once with tokens', () => {
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const result = page(`MaxResults=5${token === undefined ? '' : `&NextToken=${token}`}`);
      seen.push(...result.page);
      token = result.nextToken;
    } while (token !== undefined);
    expect(seen).toEqual(ids);
  });

  it('returns everything without MaxResults, and checks its range and combination with ids', () => {
    expect(page('').page).toHaveLength(12);
    expect(() => page('MaxResults=4')).toThrow(/between 5 and 500/);
    expect(() => page('MaxResults=5&VolumeId.1=vol-00000001')).toThrow(expect.objectContaining({ code: 'InvalidParameterCombination' }));
    expect(() => page('MaxResults=5&NextToken=garbage')).toThrow(expect.objectContaining({ code: 'InvalidParameterValue' }));
  });
});

describe('xml', () => {
  it('escapes text and omits unset members', () => {
    expect(render(el('a', [el('b', 'x<&>"y'), el('c', undefined), list('set', [1, 2], (n) => [el('n', n)])]))).toBe(
      '<a><b>x&lt;&amp;&gt;&quot;y</b><set><item><n>1</n></item><item><n>2</n></item></set></a>',
    );
  });

  it('wraps responses and errors in the documents EC2 uses', () => {
    expect(responseDocument('DeleteTags', 'req-1', [el('return', true)])).toContain(
      '<DeleteTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId><return>true</return></DeleteTagsResponse>',
    );
    expect(errorDocument('IncorrectState', 'bad', 'req-2')).toContain(
      '<Response><Errors><Error><Code>IncorrectState</Code><Message>bad</Message></Error></Errors><RequestID>req-2</RequestID></Response>',
    );
  });
});

describe('throttle', () => {
  it('categorizes calls like EC2', () => {
    expect(categorize('DescribeVolumes', parseQuery(''))).toBe('describeUnfiltered');
    expect(categorize('DescribeVolumes', parseQuery('VolumeId.1=vol-1'))).toBe('describeFiltered');
    expect(categorize('DescribeInstances', parseQuery('Filter.1.Name=x'))).toBe('describeFiltered');
    expect(categorize('AttachVolume', parseQuery(''))).toBe('mutating');
    expect(categorize('CreateSnapshot', parseQuery(''))).toBe('snapshot');
    expect(categorize('DeleteTags', parseQuery(''))).toBe('tags');
  });

  it('allows the burst, refuses the next call, refills at the rate', () => {
    let now = 0;
    const throttle = new Throttle(() => now);
    throttle.configure({ buckets: { mutating: { burst: 3, perSecond: 2 } } });
    expect([1, 2, 3, 4].map(() => throttle.admit('mutating'))).toEqual([true, true, true, false]);
    now += 500; // one token at 2/s
    expect([throttle.admit('mutating'), throttle.admit('mutating')]).toEqual([true, false]);
    throttle.configure({ scale: 2 });
    expect(Array.from({ length: 7 }, () => throttle.admit('mutating')).filter(Boolean)).toHaveLength(6);
    throttle.configure({ enabled: false });
    expect(Array.from({ length: 100 }, () => throttle.admit('mutating')).every(Boolean)).toBe(true);
  });
});
