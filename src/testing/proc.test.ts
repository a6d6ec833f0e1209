import { describe, expect, it } from 'vitest';
import { compactLogLine } from './proc.js';

describe('compactLogLine', () => {
  it('keeps time, level, message, ids and the error message of a pino line', () => {
    const line = JSON.stringify({
      level: 50,
      time: Date.UTC(2026, 10, 23, 9, 1, 2, 345),
      pid: 1,
      name: 'failover-agent',
      instanceId: 'i-0aaaaaaaaaaaaaaa1',
      volumeId: 'vol-0abc12345def67890',
      err: { type: 'Error', message: 'mount failed', stack: 'Error: mount failed\n    at …' },
      msg: 'placement failed',
    });
    expect(compactLogLine(line)).toBe('09:01:02.345 ERROR placement failed volumeId=vol-0abc12345def67890 instanceId=i-0aaaaaaaaaaaaaaa1 err="mount failed"');
  });

  it('returns other lines unchanged', () => {
    expect(compactLogLine('error: Cannot find module x')).toBe('error: Cannot find module x');
    expect(compactLogLine('{"no":"msg"}')).toBe('{"no":"msg"}');
    expect(compactLogLine('42')).toBe('42');
  });
});
