import type { Etcd3 } from 'etcd3';
import type { Ec2ErrorIds } from '../ec2/errors.js';
import { FailoverJournal, decodeRecord, type Keyspace } from '../keyspace/index.js';
import { etcdCall } from '../locks/index.js';
import type { Logger } from '../log/logger.js';
import { isActiveJournal } from './observed.js';

/**
 * The volumes a previous term may still have an EC2 call in flight for: those whose running failover's
 * journal records, as its `intent`, a call of another term. Every controller mutation is journalled
 * that way before it is sent (act.ts, recordIntent), and a failover's journal finishes only after its
 * calls have settled, so a volume outside this set had no call of a previous term that EC2 has not
 * answered, or whose effect the finished failover did not already observe (and a late repeat of such a
 * call names the instance it was for, so it cannot touch a newer attachment).
 */
export function volumesInFlight(journals: Iterable<FailoverJournal>, term: string): Map<string, Intent> {
  const out = new Map<string, Intent>();
  for (const j of journals) if (isActiveJournal(j) && j.intent !== null && j.intent.term !== term) out.set(j.volumeId, j.intent);
  return out;
}

/** A journalled EC2 call (FailoverJournal.intent). */
export type Intent = NonNullable<FailoverJournal['intent']>;

/**
 * Whether a call (the EC2 gate's ids: action, volume, instance, device) could race `intent`, the call a
 * previous term may still have in flight for that volume, were it to reach EC2 late. Every attach and
 * detach names its volume AND its instance, and EC2 refuses a detach naming an instance the volume is
 * not attached to (InvalidAttachment.NotFound) and an attach of a volume attached elsewhere
 * (VolumeInUse): a late call can only act on the attachment it names. So only a call naming the same
 * instance can race it — above all an attach to the instance a late forced detach names, which would
 * detach the new attachment — unless it repeats the very call (EC2 applies one, the other finds the
 * work done).
 */
export function racesIntent(intent: Intent, ids: Ec2ErrorIds): boolean {
  return ids.instanceId === intent.instanceId && !repeatsIntent(intent, ids);
}

/** The same call as `intent`: a detach (graceful or forced) from the same instance, or an attach to the same instance and device. */
export function repeatsIntent(intent: Intent, ids: Ec2ErrorIds): boolean {
  if (ids.instanceId !== intent.instanceId) return false;
  if (intent.action === 'detach') return ids.action === 'DetachVolume';
  if (intent.action === 'attach') return ids.action === 'AttachVolume' && ids.device === intent.device;
  return false;
}

/**
 * `volumesInFlight` over the journals as etcd holds them now: one linearizable read, made after the
 * election, so it sees every write a predecessor could make (its writes are guarded by its leader key,
 * gone before we were elected); the watch-fed mirror might still lag behind them. Null when the read
 * fails or a journal does not decode: then nothing can be ruled out, and every call waits the quiet.
 */
export async function readVolumesInFlight(etcd: Etcd3, ks: Keyspace, term: string, log: Logger): Promise<Map<string, Intent> | null> {
  try {
    const res = await etcdCall(etcd, 'read journals at election', () => etcd.getAll().prefix(ks.journalPrefix()).exec());
    const journals: FailoverJournal[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      const j = decodeRecord(FailoverJournal, key, kv.value, log);
      if (j === undefined) return null;
      journals.push(j);
    }
    return volumesInFlight(journals, term);
  } catch (err) {
    log.warn({ err }, 'reading the journals at election failed: every EC2 mutation waits the quiet period');
    return null;
  }
}
