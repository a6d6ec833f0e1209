/** A small in-memory Ec2Port with timed attach/detach for the controller loop's unit tests. Not used in production. */
import type { Ec2Port, InstanceInfo, MutatingOpts, MutationGuard, VolumeInfo } from '../ec2/types.js';

class IncorrectStateError extends Error {
  override readonly name = 'IncorrectStateError';
}

export class FakeEc2 implements Ec2Port {
  readonly volumes = new Map<string, VolumeInfo>();
  readonly instances = new Map<string, InstanceInfo>();
  /** Volumes whose device the OS holds open: a graceful detach stays `busy`. */
  readonly inUse = new Set<string>();
  readonly calls: string[] = [];
  /** Errors thrown once each by the next call whose log line starts with `prefix`. */
  readonly failures: { prefix: string; error: Error }[] = [];
  /** Runs inside each DescribeVolumes before it answers: the world may change while a tick waits on EC2. */
  beforeDescribe: (() => Promise<void>) | null = null;
  /** What a port made by withGuard carries (tests set it to see what the loop makes of a quiet period); never enforced here. */
  guard?: MutationGuard;
  constructor(private readonly latency = { attachMs: 30, detachMs: 30 }) {}

  addVolume(volumeId: string, az: string, attachedTo?: string): void {
    this.volumes.set(volumeId, { volumeId, az, state: attachedTo ? 'in-use' : 'available', sizeGiB: 10, tags: {}, attachments: attachedTo ? [{ instanceId: attachedTo, device: '/dev/xvdf', state: 'attached' }] : [] });
  }

  addInstance(instanceId: string, az: string): void {
    this.instances.set(instanceId, { instanceId, az, state: 'running', privateIp: '10.0.0.1', devices: ['/dev/xvda'], tags: {} });
  }

  private vol(volumeId: string): VolumeInfo {
    const v = this.volumes.get(volumeId);
    if (!v) throw new Error(`no ${volumeId}`);
    return v;
  }

  private call(line: string): void {
    this.calls.push(line);
    const i = this.failures.findIndex((f) => line.startsWith(f.prefix));
    const failure = this.failures[i];
    if (failure) {
      this.failures.splice(i, 1);
      throw failure.error;
    }
  }

  async describeVolumes(ids: string[]): Promise<VolumeInfo[]> {
    this.calls.push(`DescribeVolumes ${ids.length}`);
    await this.beforeDescribe?.();
    return ids.flatMap((id) => (this.volumes.has(id) ? [structuredClone(this.vol(id))] : []));
  }

  async describeInstances(ids: string[]): Promise<InstanceInfo[]> {
    return ids.flatMap((id) => (this.instances.has(id) ? [structuredClone(this.instances.get(id) as InstanceInfo)] : []));
  }

  async findInstances(): Promise<InstanceInfo[]> {
    return [...this.instances.values()];
  }

  async attachVolume(volumeId: string, instanceId: string, device: string, o?: MutatingOpts): Promise<void> {
    await o?.beforeSend?.();
    this.call(`AttachVolume ${volumeId} ${instanceId} ${device}`);
    const v = this.vol(volumeId);
    if (v.attachments.length > 0) throw new IncorrectStateError(`${volumeId} is in use`);
    v.attachments = [{ instanceId, device, state: 'attaching' }];
    v.state = 'in-use';
    setTimeout(() => {
      if (v.attachments[0]?.instanceId === instanceId) v.attachments[0].state = 'attached';
    }, this.latency.attachMs);
  }

  async detachVolume(volumeId: string, instanceId: string, force: boolean, o?: MutatingOpts): Promise<void> {
    await o?.beforeSend?.();
    this.call(`DetachVolume ${volumeId} ${instanceId}${force ? ' force' : ''}`);
    const v = this.vol(volumeId);
    const a = v.attachments[0];
    if (!a || a.instanceId !== instanceId) throw new IncorrectStateError(`${volumeId} not attached to ${instanceId}`);
    if (this.inUse.has(volumeId) && !force) {
      a.state = 'busy';
      return;
    }
    a.state = 'detaching';
    setTimeout(() => {
      v.attachments = [];
      v.state = 'available';
    }, this.latency.detachMs);
  }

  async waitAttached(volumeId: string): Promise<VolumeInfo> {
    return this.vol(volumeId);
  }

  async waitAvailable(volumeId: string): Promise<VolumeInfo> {
    return this.vol(volumeId);
  }

  async detachAndWait(volumeId: string): Promise<{ forced: boolean; volume: VolumeInfo }> {
    return { forced: false, volume: this.vol(volumeId) };
  }

  async stopInstance(instanceId: string): Promise<void> {
    this.calls.push(`StopInstances ${instanceId}`);
  }

  async createSnapshot(): Promise<never> {
    throw new Error('not used by the controller');
  }

  async listSnapshots(): Promise<never[]> {
    return [];
  }

  async deleteSnapshot(): Promise<void> {}

  async tagResources(): Promise<void> {}

  async untagResources(): Promise<void> {}
}
