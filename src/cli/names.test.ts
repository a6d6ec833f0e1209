import { describe, expect, it } from 'vitest';
import { UnitName } from '../keyspace/index.js';
import { didYouMean, shown, unitNameProblem } from './names.js';
import { parseUnitName } from './commands/service.js';

describe('unitNameProblem says which part is wrong', () => {
  it.each([
    ['postgres-vol-0abc12345def67890', /no "@"/],
    ['@vol-0abc12345def67890', /template before "@" is empty/],
    ['post gres@vol-0abc12345def67890', /template "post gres" has " "/],
    ['postgres@volume-1', /must be an EBS volume id starting with "vol-", got "volume-1"/],
    ['postgres@vol-XYZ', /"vol-XYZ" has characters other than 0-9 a-f/],
    ['postgres@vol-0abc', /has 4 hex digits after "vol-"; expected 8 to 17/],
  ])('%s', (unit, problem) => {
    expect(unitNameProblem(unit)).toMatch(problem);
    expect(UnitName.safeParse(unit).success).toBe(false);
  });

  it('agrees with the schema on good names', () => {
    for (const unit of ['postgres@vol-0abc12345def67890', 'pg.main:x_1@vol-0abc1234']) {
      expect(unitNameProblem(unit)).toBeNull();
      expect(UnitName.safeParse(unit).success).toBe(true);
    }
  });

  it('a 5,000-character name is cut in the error, with its length', () => {
    const err = (() => {
      try {
        parseUnitName('x'.repeat(5_000));
      } catch (e) {
        return e as Error;
      }
      throw new Error('no error');
    })();
    expect(err.message.length).toBeLessThan(300);
    expect(err.message).toContain('(5000 characters)');
    expect(shown('a\u001b[2Jb')).toBe('"a\\u001b[2Jb"');
  });
});

describe('didYouMean', () => {
  const commands = ['status', 'history', 'service', 'snapshot', 'cancel', 'agent', 'controller', 'help'];
  it.each([['stauts', ['status']], ['histroy', ['history']], ['servce', ['service']], ['snap', ['snapshot']], ['zzzzzz', []]])('%s → %j', (typo, expected) => {
    expect(didYouMean(typo, commands)).toEqual(expected);
  });
});
