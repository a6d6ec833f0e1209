import { describe, expect, it } from 'vitest';
import { JobTracker } from './jobs.js';

describe('JobTracker', () => {
  it('delivers a JobRemoved that arrives after the wait began', async () => {
    const jobs = new JobTracker();
    jobs.begin();
    const done = jobs.wait('/org/freedesktop/systemd1/job/7');
    jobs.end();
    jobs.removed('/org/freedesktop/systemd1/job/6', 'failed'); // another client's job
    jobs.removed('/org/freedesktop/systemd1/job/7', 'done');
    expect(await done).toBe('done');
    expect(jobs.pending).toBe(0);
  });

  it('keeps a JobRemoved that arrives before the call returned', async () => {
    const jobs = new JobTracker();
    jobs.begin();
    jobs.removed('/org/freedesktop/systemd1/job/9', 'dependency');
    const done = jobs.wait('/org/freedesktop/systemd1/job/9');
    jobs.end();
    expect(await done).toBe('dependency');
  });

  it('drops results nobody asked for once no call is in flight', async () => {
    const jobs = new JobTracker();
    jobs.begin();
    jobs.removed('/j/1', 'done');
    jobs.end();
    jobs.begin();
    let settled = false;
    void jobs.wait('/j/1').then(() => (settled = true));
    jobs.end();
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    jobs.forget('/j/1');
    expect(jobs.pending).toBe(0);
  });
});
