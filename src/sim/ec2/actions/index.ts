import { describeInstanceStatus, describeInstances, stopInstances } from './instances.js';
import { createVolume } from './create-volume.js';
import { createSnapshot, deleteSnapshot, describeSnapshots } from './snapshots.js';
import { createTags, deleteTags } from './tags.js';
import type { ActionHandler } from './types.js';
import { attachVolume, describeVolumes, detachVolume } from './volumes.js';

export type { ActionHandler } from './types.js';

/** The EC2 actions the endpoint speaks; anything else is `InvalidAction`. */
export const ACTIONS: ReadonlyMap<string, ActionHandler> = new Map([
  ['DescribeInstances', describeInstances],
  ['DescribeInstanceStatus', describeInstanceStatus],
  ['StopInstances', stopInstances],
  ['DescribeVolumes', describeVolumes],
  ['AttachVolume', attachVolume],
  ['DetachVolume', detachVolume],
  ['CreateVolume', createVolume],
  ['CreateSnapshot', createSnapshot],
  ['DescribeSnapshots', describeSnapshots],
  ['DeleteSnapshot', deleteSnapshot],
  ['CreateTags', createTags],
  ['DeleteTags', deleteTags],
]);
