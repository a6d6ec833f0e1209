import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient } from '../../src/fleet/index.js';
import { dropinMetadata, FleetRestartRefusedError } from '../../src/host/fleet-metadata.js';
import { DbusSystemd } from '../../src/host/systemd/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { bootRealHost, realFleetAvailable, realHostsAvailable, type RealHost } from '../helpers/realhost.js';

/**
 * The FLEET_METADATA drop-in fallback against the REAL fleetd v1.0.0: fleetd stops every fleet unit of
 * its host when it is restarted, so the drop-in mode must never restart it while a fleet unit runs.
 * It refuses (FleetRestartRefusedError), writes nothing, and the running unit is untouched.
 */
const skip = realHostsAvailable() ?? realFleetAvailable();
const UNIT = 'busy@vol-0abc12345def67890.service';

describe.skipIf(skip !== undefined)(`FLEET_METADATA drop-in with real fleetd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let etcd: EtcdServer;
  let host: RealHost;
  let systemd: DbusSystemd;
  let fleet: FleetClient;

  beforeAll(async () => {
    etcd = await startEtcd({ extraArgs: ['--enable-v2=true'] });
    host = await bootRealHost({ name: 'fleet-dropin-real', ipIndex: 41, fleet: { etcdServers: [etcd.endpoint], metadata: 'az=us-east-1a' } });
    systemd = await DbusSystemd.connect({ busAddress: host.busAddress, journal: false });
    fleet = new FleetClient({ socketPath: host.fleetSocket as string, unavailableRetryMs: 60_000 });
    await fleet.waitForMetadata(host.machineId, 'az', 'us-east-1a', { timeoutMs: 60_000 });
  }, 180_000);
  afterAll(async () => {
    await systemd?.close();
    await host?.stop();
    await etcd?.stop();
  }, 60_000);

  const fleetInvocation = async (): Promise<string> => (await host.systemctl('show', '-p', 'InvocationID', 'fleet.service')).trim();

  it('refuses to restart fleet while a fleet unit runs, and leaves both running', async () => {
    await fleet.putUnit(UNIT, 'launched', [
      { section: 'Service', name: 'ExecStart', value: '/bin/sleep infinity' },
      { section: 'X-Fleet', name: 'MachineMetadata', value: 'az=us-east-1a' },
    ]);
    await fleet.waitForUnitOn(UNIT, host.machineId, { timeoutMs: 60_000 });
    const before = await fleetInvocation();
    const pid = (await host.systemctl('show', '-p', 'MainPID', UNIT)).trim();

    const port = dropinMetadata({ systemd, rootDir: host.rootDir, base: 'az=us-east-1a' });
    const err = await port.set('postgres', 'vol-0abc12345def67890').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FleetRestartRefusedError);
    expect((err as FleetRestartRefusedError).runningUnits).toEqual([UNIT]);
    expect((await port.current()).has('postgres')).toBe(false);
    expect(await fleetInvocation()).toBe(before);
    expect((await host.systemctl('show', '-p', 'MainPID', UNIT)).trim()).toBe(pid);
    expect((await host.systemctl('is-active', UNIT)).trim()).toBe('active');

    // With no fleet unit running, the fallback may restart fleet (nothing of fleet's to stop).
    await fleet.putUnit(UNIT, 'inactive');
    await fleet.waitForUnitOn(UNIT, null, { timeoutMs: 60_000 });
    await host.exec(['sh', '-c', `until ! systemctl is-active -q ${UNIT}; do sleep 0.2; done`], 60_000);
    await port.set('postgres', 'vol-0abc12345def67890');
    expect(await fleetInvocation()).not.toBe(before);
    expect((await port.current()).get('postgres')).toBe('vol-0abc12345def67890');
  }, 240_000);
});
