import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropinMetadata, FLEET_DROPIN_PATH } from '../../src/host/fleet-metadata.js';
import { DbusSystemd } from '../../src/host/systemd/index.js';
import { bootHost, type SdHost } from '../helpers/sdhost.js';

/**
 * fleet < 1.0 fallback in a REAL systemd: the drop-in for fleet.service carries FLEET_METADATA merged
 * from the base value and every key already there, and fleet.service is restarted only on a change.
 * fleet itself is a stand-in unit (`sleep infinity`): what matters is its environment and restarts.
 */
const VOL_A = 'vol-0abc12345def67890';
const VOL_B = 'vol-0abc12345def67891';

describe('fleet metadata drop-in (real systemd host)', () => {
  let host: SdHost;
  let systemd: DbusSystemd;

  beforeAll(async () => {
    host = await bootHost('fleet-dropin');
    await host.writeFile('/etc/systemd/system/fleet.service', '[Unit]\nDescription=fleet stand-in\n[Service]\nExecStart=/bin/sleep infinity\n');
    systemd = await DbusSystemd.connect({ busAddress: host.busAddress, journal: false });
    await systemd.reload();
    await systemd.startUnit('fleet.service', { timeoutMs: 30_000 });
  });
  afterAll(async () => {
    await systemd?.close();
    await host?.stop();
  });

  const fleetShow = async (): Promise<{ invocationId: string; mainPid: string; environment: string }> => {
    const { stdout } = await host.exec(['systemctl', 'show', '-p', 'InvocationID', '-p', 'MainPID', '-p', 'Environment', 'fleet.service']);
    const props = Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return { invocationId: props.InvocationID ?? '', mainPid: props.MainPID ?? '', environment: props.Environment ?? '' };
  };
  /** FLEET_METADATA as the running fleet process actually sees it. */
  const processMetadata = async (mainPid: string): Promise<string | undefined> => {
    const environ = await host.readFile(`/proc/${mainPid}/environ`);
    return environ.split('\0').find((e) => e.startsWith('FLEET_METADATA='))?.slice('FLEET_METADATA='.length);
  };

  it('merges with base and existing keys, and restarts fleet only when the value changes', async () => {
    const port = dropinMetadata({ systemd, rootDir: host.rootDir, base: 'role=db,az=us-east-1a' });
    const s0 = await fleetShow();

    await port.set('postgres', VOL_A);
    const s1 = await fleetShow();
    expect(s1.invocationId).not.toBe(s0.invocationId);
    expect(await processMetadata(s1.mainPid)).toBe(`role=db,az=us-east-1a,postgres=${VOL_A}`);
    expect(await host.readFile(FLEET_DROPIN_PATH)).toContain(`Environment=FLEET_METADATA=role=db,az=us-east-1a,postgres=${VOL_A}`);

    // Same value again (e.g. adoption after an agent restart): no restart.
    await port.set('postgres', VOL_A);
    const s2 = await fleetShow();
    expect(s2.invocationId).toBe(s1.invocationId);
    expect(s2.mainPid).toBe(s1.mainPid);

    // A second volume's key is merged with the first one's, from a fresh port (a restarted agent).
    const port2 = dropinMetadata({ systemd, rootDir: host.rootDir, base: 'role=db,az=us-east-1a' });
    await port2.set('mysql', VOL_B);
    const s3 = await fleetShow();
    expect(s3.invocationId).not.toBe(s2.invocationId);
    expect(await processMetadata(s3.mainPid)).toBe(`role=db,az=us-east-1a,postgres=${VOL_A},mysql=${VOL_B}`);

    // Removing: the key goes, base keys stay; removing an absent key changes nothing and restarts nothing.
    await port2.remove('postgres');
    const s4 = await fleetShow();
    expect(s4.invocationId).not.toBe(s3.invocationId);
    expect(await processMetadata(s4.mainPid)).toBe(`role=db,az=us-east-1a,mysql=${VOL_B}`);
    await port2.remove('postgres');
    await port2.remove('role'); // a base key is configuration: never removed
    const s5 = await fleetShow();
    expect(s5.invocationId).toBe(s4.invocationId);
    expect(await processMetadata(s5.mainPid)).toBe(`role=db,az=us-east-1a,mysql=${VOL_B}`);
  });

  it('serialises concurrent changes so that no key is lost', async () => {
    const port = dropinMetadata({ systemd, rootDir: host.rootDir });
    await Promise.all([port.set('a1', 'vol-00000001'), port.set('a2', 'vol-00000002'), port.remove('mysql')]);
    const show = await fleetShow();
    const value = await processMetadata(show.mainPid);
    expect(value?.split(',').sort()).toEqual(['a1=vol-00000001', 'a2=vol-00000002', 'az=us-east-1a', 'role=db']);
  });
});
