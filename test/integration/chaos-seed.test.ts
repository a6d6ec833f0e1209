/**
 * One chaos seed end to end over the real processes (3-member etcd, the EC2 endpoint through the SDK,
 * agents and controllers as processes, the fault proxies): the run records a complete history — every
 * injected fault healed, EC2 requests with their caller, attachment changes, unit changes, journals and
 * the election — and the checker finds no violation in it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHistory, type FaultEvent } from '../../src/testing/chaos/history.js';
import { DEFAULT_CHAOS, runSeed } from '../../src/testing/chaos/runner.js';
import { generateSchedule } from '../../src/testing/chaos/schedule.js';
import { formatViolation } from '../../src/testing/chaos/checker.js';

const out = mkdtempSync(join(tmpdir(), 'chaos-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

// 25 s of faults: enough for a few process and network faults on a loaded 2-core machine.
const DURATION_MS = 25_000;

/** The first seed whose schedule has a process kill and a network fault but no long exclusive fault. */
function pickSeed(): number {
  for (let seed = 1; ; seed += 1) {
    const kinds = generateSchedule(seed, { durationMs: DURATION_MS, ttlMs: DEFAULT_CHAOS.leaseTtlMs }).steps.map((s) => s.fault.kind);
    if (kinds.includes('proc-kill') && kinds.some((k) => k === 'net' || k === 'net-member') && !kinds.includes('etcd-outage')) return seed;
  }
}

describe('chaos: one seed over the real processes', () => {
  it('records a complete history, heals every fault, and finds no violation', async () => {
    const seed = pickSeed();
    const r = await runSeed(seed, { ...DEFAULT_CHAOS, durationMs: DURATION_MS, outDir: out });
    expect(r.error).toBeUndefined();
    const history = parseHistory(readFileSync(r.historyPath, 'utf8'));
    const types = new Set(history.map((e) => e.type));
    for (const t of ['world', 'fault', 'ec2-request', 'ec2-change', 'unit', 'journal', 'placement', 'host', 'status', 'service', 'election', 'phase']) expect(types, t).toContain(t);
    const faults = history.filter((e): e is FaultEvent => e.type === 'fault');
    const injected = new Set(faults.filter((f) => f.phase === 'inject').map((f) => f.id));
    const healed = new Set(faults.filter((f) => f.phase === 'heal').map((f) => f.id));
    expect(injected.size).toBeGreaterThan(0);
    expect([...injected].filter((id) => !healed.has(id))).toEqual([]);
    expect(history.map((e) => (e.type === 'phase' ? e.name : null)).filter((x) => x !== null)).toEqual(['faults-start', 'healed', 'end']);
    expect(r.result.notCheckable).toEqual([]);
    expect(r.result.violations.map((v) => formatViolation(v))).toEqual([]);
    expect(r.result.recoveryMs).not.toBeNull();
  }, 300_000);
});
